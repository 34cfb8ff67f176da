//! Saved repositories: `[repositories.NAME]` tables and a top-level
//! `default-repository` key in the configuration file shared with profiles
//! (`$XDG_CONFIG_HOME/cellar/cellar.toml`, or CELLAR_CONFIG), so `-r NAME`, or
//! no `-r` at all, reaches a repository with its password source.
//!
//! Only these keys are read or written here; every other table of the file is
//! kept as it is (the document goes through `toml::Table`, so comments and key
//! order of the rest are not preserved). Passwords are never stored: only
//! where they come from (a file's path, or a command whose output is never
//! written anywhere).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A configuration file larger than this is refused (it would only cost memory).
const MAX_CONFIG_BYTES: u64 = 4 << 20;

const TABLE: &str = "repositories";
const DEFAULT_KEY: &str = "default-repository";

/// One saved repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    pub repository: String,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub cache_dir: Option<PathBuf>,
}

/// Where the configuration is written: CELLAR_CONFIG, else the user's file.
pub fn config_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CELLAR_CONFIG").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(x).join("cellar/cellar.toml"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(h).join(".config/cellar/cellar.toml"));
    }
    bail!("no configuration file: set CELLAR_CONFIG, XDG_CONFIG_HOME or HOME")
}

/// Where the configuration is read from: the user's file, else the system's.
fn read_path() -> Option<PathBuf> {
    let user = config_path().ok();
    if std::env::var_os("CELLAR_CONFIG").is_some_and(|s| !s.is_empty()) {
        return user;
    }
    [user, Some(PathBuf::from("/etc/cellar/cellar.toml"))]
        .into_iter()
        .flatten()
        .find(|p| p.exists())
}

/// The whole configuration document (empty if there is no file).
pub fn load_document(path: &Path) -> Result<toml::Table> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(toml::Table::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut text = String::new();
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        bail!(
            "{}: larger than 4 MiB, not a configuration file",
            path.display()
        );
    }
    text.parse::<toml::Table>()
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message().trim()))
}

/// Writes the document atomically, readable by the user only.
pub fn save_document(path: &Path, doc: &toml::Table) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .with_context(|| format!("creating {}", d.display()))?;
    }
    let text = toml::to_string(doc).context("serializing the configuration")?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cellar.toml".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn str_of(t: &toml::Table, key: &str) -> Option<String> {
    t.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

/// The saved repositories and the default's name, as the document has them.
pub fn saved(doc: &toml::Table, path: &Path) -> Result<(BTreeMap<String, Saved>, Option<String>)> {
    let mut out = BTreeMap::new();
    if let Some(v) = doc.get(TABLE) {
        let Some(t) = v.as_table() else {
            bail!("{}: [{TABLE}] must be a table", path.display());
        };
        for (name, v) in t {
            let Some(r) = v.as_table() else {
                bail!("{}: [{TABLE}.{name}] must be a table", path.display());
            };
            let Some(repository) = str_of(r, "repository") else {
                bail!(
                    "{}: [{TABLE}.{name}] has no repository = \"...\"",
                    path.display()
                );
            };
            out.insert(
                name.clone(),
                Saved {
                    repository,
                    password_file: str_of(r, "password-file").map(PathBuf::from),
                    password_command: str_of(r, "password-command"),
                    cache_dir: str_of(r, "cache-dir").map(PathBuf::from),
                },
            );
        }
    }
    Ok((out, str_of(doc, DEFAULT_KEY)))
}

pub fn set_saved(doc: &mut toml::Table, name: &str, s: &Saved) {
    let mut t = toml::Table::new();
    t.insert("repository".into(), s.repository.clone().into());
    if let Some(f) = &s.password_file {
        t.insert(
            "password-file".into(),
            f.to_string_lossy().into_owned().into(),
        );
    }
    if let Some(c) = &s.password_command {
        t.insert("password-command".into(), c.clone().into());
    }
    if let Some(d) = &s.cache_dir {
        t.insert("cache-dir".into(), d.to_string_lossy().into_owned().into());
    }
    let all = doc
        .entry(TABLE)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !all.is_table() {
        *all = toml::Value::Table(toml::Table::new());
    }
    if let Some(all) = all.as_table_mut() {
        all.insert(name.to_string(), toml::Value::Table(t));
    }
}

pub fn remove_saved(doc: &mut toml::Table, name: &str) -> bool {
    let removed = doc
        .get_mut(TABLE)
        .and_then(|v| v.as_table_mut())
        .and_then(|t| t.remove(name))
        .is_some();
    if doc.get(DEFAULT_KEY).and_then(|v| v.as_str()) == Some(name) {
        doc.remove(DEFAULT_KEY);
    }
    removed
}

pub fn set_default(doc: &mut toml::Table, name: &str) {
    doc.insert(DEFAULT_KEY.into(), name.to_string().into());
}

/// Names of saved repositories: letters, digits, '-', '_' and '.', so a name
/// can never be mistaken for a path or a URL (those have '/' or ':').
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The saved repository `-r` names, or the default one when there is no `-r`.
/// `Ok(None)`: `given` is a location, not a name (or nothing is given and there
/// is no default).
pub fn lookup(given: Option<&str>) -> Result<Option<(String, Saved)>> {
    let looks_like_name = given.is_none_or(valid_name);
    if !looks_like_name {
        return Ok(None);
    }
    let Some(path) = read_path() else {
        return Ok(None);
    };
    let doc = load_document(&path)?;
    let (all, default) = saved(&doc, &path)?;
    let name = match given {
        Some(n) => n.to_string(),
        None => match default {
            Some(d) => d,
            None => return Ok(None),
        },
    };
    match all.get(&name) {
        Some(s) => Ok(Some((name, s.clone()))),
        None if given.is_none() => bail!(
            "{}: default-repository = {name:?}, but there is no [repositories.{name}]",
            path.display()
        ),
        // A plain directory name in the current directory.
        None => Ok(None),
    }
}

/// The location `-r` (or the default) means, without opening anything.
pub fn resolve_location(given: Option<&str>) -> Result<Option<String>> {
    let given = given.filter(|s| !s.is_empty());
    Ok(match lookup(given)? {
        Some((_, s)) => Some(s.repository),
        None => given.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_other_tables() {
        let mut doc: toml::Table = "[profiles.nightly]\nrepository = \"/r\"\n[profiles.nightly.backup]\npaths = [\"/a\"]\n"
            .parse()
            .unwrap();
        set_saved(
            &mut doc,
            "offsite",
            &Saved {
                repository: "s3://b/p".into(),
                password_command: Some("pass show x".into()),
                ..Saved::default()
            },
        );
        set_default(&mut doc, "offsite");
        let text = toml::to_string(&doc).unwrap();
        let back: toml::Table = text.parse().unwrap();
        assert_eq!(
            back["profiles"]["nightly"]["backup"]["paths"][0].as_str(),
            Some("/a")
        );
        let (all, d) = saved(&back, Path::new("c.toml")).unwrap();
        assert_eq!(d.as_deref(), Some("offsite"));
        assert_eq!(all["offsite"].repository, "s3://b/p");
        assert!(remove_saved(&mut doc, "offsite"));
        assert!(doc.get(DEFAULT_KEY).is_none());
    }

    #[test]
    fn names_are_not_paths() {
        assert!(valid_name("offsite-2"));
        assert!(!valid_name("/srv/repo"));
        assert!(!valid_name("s3://b"));
        assert!(!valid_name("local:x"));
        assert!(!valid_name(".."));
    }
}

//! Which paths a backup leaves out. Name-based rules are decided from the
//! directory listing alone, so nothing below an excluded folder is ever stat()ed.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// The content every CACHEDIR.TAG starts with (https://bford.info/cachedir/).
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

#[derive(Clone, Debug, Default)]
pub struct ExcludeOptions {
    /// gitignore-style patterns, matched against absolute paths ("/" is the root).
    pub patterns: Vec<String>,
    /// The same, case-insensitive.
    pub ipatterns: Vec<String>,
    /// Leave out a directory that contains a file of one of these names.
    pub if_present: Vec<String>,
    /// Leave out directories tagged with a valid CACHEDIR.TAG.
    pub caches: bool,
    /// Leave out files larger than this many bytes.
    pub larger_than: Option<u64>,
    /// Do not cross into other file systems (mount points are left out).
    pub one_file_system: bool,
}

pub struct Excluder {
    cs: Gitignore,
    ci: Gitignore,
    pub opts: ExcludeOptions,
}

fn build(patterns: &[String], insensitive: bool) -> Result<Gitignore> {
    let mut b = GitignoreBuilder::new("/");
    b.case_insensitive(insensitive)
        .map_err(|e| Error::InvalidArgument(format!("exclude patterns: {e}")))?;
    for p in patterns {
        b.add_line(None, p)
            .map_err(|e| Error::InvalidArgument(format!("exclude pattern {p:?}: {e}")))?;
    }
    b.build()
        .map_err(|e| Error::InvalidArgument(format!("exclude patterns: {e}")))
}

impl Excluder {
    pub fn new(opts: ExcludeOptions) -> Result<Excluder> {
        Ok(Excluder {
            cs: build(&opts.patterns, false)?,
            ci: build(&opts.ipatterns, true)?,
            opts,
        })
    }

    /// Decided from the name (and the d_type of the listing) only.
    pub fn excludes_path(&self, path: &Path, is_dir: bool) -> bool {
        (!self.cs.is_empty() && self.cs.matched(path, is_dir).is_ignore())
            || (!self.ci.is_empty() && self.ci.matched(path, is_dir).is_ignore())
    }

    /// Tag files inside a directory that mark it as not to be backed up.
    pub fn excludes_dir_contents(&self, dir: &Path) -> bool {
        for name in &self.opts.if_present {
            if std::fs::symlink_metadata(dir.join(name)).is_ok() {
                return true;
            }
        }
        if self.opts.caches {
            if let Ok(mut f) = std::fs::File::open(dir.join("CACHEDIR.TAG")) {
                let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
                if std::io::Read::read_exact(&mut f, &mut head).is_ok()
                    && head == CACHEDIR_SIGNATURE
                {
                    return true;
                }
            }
        }
        false
    }
}

/// Parses sizes such as 500, 10K, 2.5M, 1G, 3TiB (binary units).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("size {s:?}: expected e.g. 500M or 2G")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(Error::InvalidArgument(format!(
                "size {s:?}: unknown unit {unit:?}"
            )));
        }
    };
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_semantics_on_absolute_paths() {
        let ex = Excluder::new(ExcludeOptions {
            patterns: vec!["*.log".into(), "/srv/cells/logs/".into(), "cache/".into()],
            ipatterns: vec!["*.TMP".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(ex.excludes_path(Path::new("/srv/cells/a/x.log"), false));
        assert!(ex.excludes_path(Path::new("/srv/cells/logs"), true));
        assert!(!ex.excludes_path(Path::new("/srv/other/logs"), true));
        assert!(ex.excludes_path(Path::new("/a/cache"), true));
        assert!(!ex.excludes_path(Path::new("/a/cache"), false));
        assert!(ex.excludes_path(Path::new("/a/b.tmp"), false));
        assert!(!ex.excludes_path(Path::new("/a/b.txt"), false));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500").unwrap(), 500);
        assert_eq!(parse_size("10K").unwrap(), 10240);
        assert_eq!(parse_size("1.5M").unwrap(), 1572864);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
    }
}

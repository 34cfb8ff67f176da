//! Shell completion: `cellar completion bash|zsh|fish` prints a script (clap's
//! static completion of subcommands and flags, wrapped so that snapshot
//! arguments call back into `cellar __complete`), and `cellar __complete`
//! answers those call-backs: snapshot ids, `latest`, and paths inside a
//! snapshot (`restore latest:/data/pers<TAB>`).
//!
//! The answers come from the local cache only (the snapshot list in
//! index.sqlite, the trees in catalog.sqlite), opened read-only: no password,
//! no Argon2, no request to the repository, so a TAB costs milliseconds. The
//! repository id that names the cache folder is encrypted in the repository's
//! config, so opening a repository also records location -> id in
//! `<cache root>/locations.json` (mode 0600); a repository never opened on this
//! machine (or a tree never browsed) simply completes nothing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{GlobalArgs, exit};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  cellar completion bash > ~/.local/share/bash-completion/completions/cellar
  cellar completion zsh > \"${fpath[1]}/_cellar\"
  cellar completion fish > ~/.config/fish/completions/cellar.fish")]
pub struct CompletionArgs {
    /// The shell to write a completion script for
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct CompleteArgs {
    /// The command line so far, the word being completed last (possibly empty)
    #[arg(last = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// The map file in the cache root: repository location -> repository id.
const LOCATIONS: &str = "locations.json";
/// A map bigger than this is not ours; completion ignores it.
const MAX_LOCATIONS_BYTES: u64 = 1 << 20;
/// Candidates printed at most: a shell cannot show more usefully.
const MAX_CANDIDATES: usize = 500;

// ---------------------------------------------------------------------------
// Location map

/// The key a location is remembered under: local directories absolute and
/// canonical, so `./repo`, `local:repo` and `/srv/repo` are one repository.
pub fn location_key(loc: &str) -> String {
    if loc.contains("://") {
        return loc.trim_end_matches('/').to_string();
    }
    let path = loc.strip_prefix("local:").unwrap_or(loc);
    match std::fs::canonicalize(path) {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(_) => path.to_string(),
    }
}

fn read_locations(root: &Path) -> BTreeMap<String, String> {
    let Ok(f) = std::fs::File::open(root.join(LOCATIONS)) else {
        return BTreeMap::new();
    };
    let mut s = String::new();
    if f.take(MAX_LOCATIONS_BYTES + 1)
        .read_to_string(&mut s)
        .is_err()
        || s.len() as u64 > MAX_LOCATIONS_BYTES
    {
        return BTreeMap::new();
    }
    serde_json::from_str(&s).unwrap_or_default()
}

/// Records that `loc` is the repository `id` (best effort: the map is a
/// convenience for completion, never needed to open a repository).
pub fn remember_location(cache_root: &Path, loc: &str, id: &str) {
    let key = location_key(loc);
    let mut map = read_locations(cache_root);
    if map.get(&key).map(String::as_str) == Some(id) {
        return;
    }
    map.insert(key, id.to_string());
    let _ = write_locations(cache_root, &map);
}

fn write_locations(root: &Path, map: &BTreeMap<String, String>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(root)?;
    let tmp = root.join(format!(".{LOCATIONS}.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(serde_json::to_string_pretty(map)?.as_bytes())?;
    drop(f);
    std::fs::rename(&tmp, root.join(LOCATIONS))
}

// ---------------------------------------------------------------------------
// `cellar completion SHELL`

/// Subcommands whose first positional arguments are snapshots (SNAPSHOT[:PATH]),
/// with how many of them; `find` completes paths of the newest snapshot.
const SNAPSHOT_ARGS: &[(&str, usize)] = &[
    ("restore", 1),
    ("ls", 1),
    ("dump", 1),
    ("diff", 2),
    ("find", 1),
];

const BASH_WRAPPER: &str = r#"
# Snapshot arguments: ask cellar (it reads only the local cache).
_cellar_dynamic() {
    local line="${COMP_LINE:0:COMP_POINT}"
    local -a words
    read -ra words <<< "$line"
    [[ "$line" == *[[:space:]] || ${#words[@]} -eq 0 ]] && words+=("")
    local cur="${words[${#words[@]}-1]}"
    local out
    if out=$(cellar __complete -- "${words[@]}" 2>/dev/null); then
        local -a cands=()
        [[ -n "$out" ]] && mapfile -t cands <<< "$out"
        # bash splits words at ':'; offer only what follows the last one.
        local colon_prefix=""
        [[ "$cur" == *:* ]] && colon_prefix="${cur%"${cur##*:}"}"
        COMPREPLY=()
        local c
        for c in "${cands[@]}"; do
            [[ "$c" == */ ]] && compopt -o nospace 2>/dev/null
            COMPREPLY+=("${c#"$colon_prefix"}")
        done
        return 0
    fi
    _cellar "$@"
}
complete -F _cellar_dynamic -o bashdefault -o default cellar
"#;

const ZSH_WRAPPER: &str = r#"
# Snapshot arguments: ask cellar (it reads only the local cache).
_cellar() {
    local out
    if out=$(cellar __complete -- "${(@)words[1,CURRENT]}" 2>/dev/null); then
        local -a cands dirs others
        cands=("${(@f)out}")
        dirs=(${(M)cands:#*/})
        others=(${cands:#*/})
        (( ${#dirs} )) && compadd -Q -S '' -- "${dirs[@]}"
        (( ${#others} )) && compadd -Q -- "${others[@]}"
        return 0
    fi
    _cellar_static "$@"
}
if [ "$funcstack[1]" = "_cellar" ]; then
    _cellar "$@"
else
    compdef _cellar cellar
fi
"#;

fn fish_wrapper() -> String {
    let cmds: Vec<&str> = SNAPSHOT_ARGS.iter().map(|(c, _)| *c).collect();
    format!(
        "\n# Snapshot arguments: ask cellar (it reads only the local cache).\n\
         complete -c cellar -n '__fish_seen_subcommand_from {}' -f \
         -a '(cellar __complete -- (commandline -opc) (commandline -ct) 2>/dev/null)'\n",
        cmds.join(" ")
    )
}

/// The script for `shell`: clap's, with snapshot arguments routed to `__complete`.
pub fn script(shell: Shell) -> Result<String> {
    let mut cmd = super::examples::cli();
    let mut buf = Vec::new();
    let s = match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "cellar", &mut buf);
            let mut s = String::from_utf8(buf)?;
            // Registered last, ours replaces clap's registration and falls back to it.
            s.push_str(BASH_WRAPPER);
            s
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "cellar", &mut buf);
            let s = String::from_utf8(buf)?;
            // Clap's entry point becomes the fallback; its trailer (which
            // registers it) is replaced by ours.
            let body = match s.rfind("\nif [ \"$funcstack[1]\" = \"_cellar\" ]") {
                Some(i) => &s[..i],
                None => &s[..],
            };
            let mut s = body.replacen("\n_cellar() {", "\n_cellar_static() {", 1);
            s.push_str(ZSH_WRAPPER);
            s
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "cellar", &mut buf);
            let mut s = String::from_utf8(buf)?;
            s.push_str(&fish_wrapper());
            s
        }
    };
    Ok(s)
}

pub fn run_script(_g: &GlobalArgs, a: CompletionArgs) -> Result<i32> {
    std::io::stdout().write_all(script(a.shell)?.as_bytes())?;
    Ok(exit::OK)
}

// ---------------------------------------------------------------------------
// `cellar __complete -- WORDS...`

/// Options that take a value (so the next word is not a positional argument).
const VALUE_OPTIONS: &[&str] = &[
    "-r",
    "--repo",
    "--password-file",
    "--password-command",
    "--cache-dir",
    "--s3-storage-class",
    "--connections",
    "--config",
    "-t",
    "--target",
    "-i",
    "--include",
    "-e",
    "--exclude",
    "--overwrite",
    "--host",
    "--tag",
    "--path",
    "--archive",
    "--newer",
    "--older",
];

/// What the command line says about the word being completed.
#[derive(Debug, Default)]
struct Parsed {
    repo: Option<String>,
    cache_dir: Option<PathBuf>,
    command: Option<String>,
    /// Positional arguments of the subcommand before the current word.
    positionals: usize,
    /// The current word is the value of an option.
    in_option: bool,
}

fn parse_words(words: &[String]) -> Parsed {
    let mut p = Parsed::default();
    // words[0] is the program; the last word is the one being completed.
    let upto = words.len().saturating_sub(1);
    let mut i = 1;
    while i < upto {
        let w = words[i].as_str();
        if let Some((opt, val)) = w.split_once('=').filter(|(o, _)| o.starts_with("--")) {
            match opt {
                "--repo" => p.repo = Some(val.to_string()),
                "--cache-dir" => p.cache_dir = Some(PathBuf::from(val)),
                _ => {}
            }
        } else if VALUE_OPTIONS.contains(&w) {
            let val = words.get(i + 1).filter(|_| i + 1 < upto);
            match (w, val) {
                ("-r" | "--repo", Some(v)) => p.repo = Some(v.clone()),
                ("--cache-dir", Some(v)) => p.cache_dir = Some(PathBuf::from(v)),
                _ => {}
            }
            if i + 1 >= upto {
                p.in_option = true;
            }
            i += 1;
        } else if w.starts_with('-') && w != "-" {
            // A flag without a value.
        } else if p.command.is_none() {
            p.command = Some(w.to_string());
        } else {
            p.positionals += 1;
        }
        i += 1;
    }
    p
}

/// A snapshot as completion sees it.
struct Snap {
    id: String,
    tree: String,
}

/// The cache folder of the repository named on the command line (or by the
/// environment, or the saved default), if this machine has opened it.
fn repo_cache_dir(g: &GlobalArgs, p: &Parsed) -> Option<PathBuf> {
    let given = p.repo.clone().or_else(|| g.repo.clone());
    let given = given.as_deref().filter(|s| !s.is_empty());
    let (loc, saved_cache) = match super::repos::lookup(given).ok()? {
        Some((_, s)) => (s.repository, s.cache_dir),
        None => (given?.to_string(), None),
    };
    let root = p
        .cache_dir
        .clone()
        .or_else(|| g.cache_dir.clone())
        .or(saved_cache)
        .unwrap_or_else(cellar::repository::default_cache_root);
    let id = read_locations(&root).remove(&location_key(&loc))?;
    // The id names a folder: never let a hostile map point elsewhere.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(root.join(id))
}

fn open_ro(path: &Path) -> Option<Connection> {
    if !path.exists() {
        return None;
    }
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    let _ = c.busy_timeout(std::time::Duration::from_millis(50));
    Some(c)
}

/// Snapshots in the cache, oldest first.
fn snapshots(dir: &Path) -> Vec<Snap> {
    let Some(c) = open_ro(&dir.join("index.sqlite")) else {
        return Vec::new();
    };
    let Ok(mut st) = c.prepare("SELECT id, json FROM snapshots ORDER BY time, id") else {
        return Vec::new();
    };
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
    });
    let Ok(rows) = rows else {
        return Vec::new();
    };
    rows.flatten()
        .filter_map(|(id, json)| {
            let v: serde_json::Value = serde_json::from_str(&json).ok()?;
            Some(Snap {
                id: hex::encode(id),
                tree: v.get("tree")?.as_str()?.to_string(),
            })
        })
        .collect()
}

fn pick<'a>(snaps: &'a [Snap], sel: &str) -> Option<&'a Snap> {
    if sel == "latest" {
        return snaps.last();
    }
    let sel = sel.to_ascii_lowercase();
    let mut hits = snaps.iter().filter(|s| s.id.starts_with(&sel));
    let first = hits.next()?;
    hits.next().is_none().then_some(first)
}

/// Names below `dir` (a path inside the snapshot) that start with `prefix`,
/// directories with a trailing '/'; empty if the catalog lacks a tree on the way.
fn list_dir(catalog: &Connection, root_tree: &str, dir: &str, prefix: &str) -> Vec<String> {
    let Ok(root) = hex::decode(root_tree) else {
        return Vec::new();
    };
    let tid: Option<i64> = catalog
        .query_row(
            "SELECT tid FROM trees WHERE id = ?1 AND loaded = 1",
            [&root],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    let Some(mut tid) = tid else {
        return Vec::new();
    };
    for comp in dir.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let sub: Option<i64> = catalog
            .query_row(
                "SELECT e.sub FROM entries e JOIN trees t ON t.tid = e.sub \
                 WHERE e.tid = ?1 AND e.name = ?2 AND e.kind = 2 AND t.loaded = 1",
                rusqlite::params![tid, comp.as_bytes()],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        match sub {
            Some(s) => tid = s,
            None => return Vec::new(),
        }
    }
    let Ok(mut st) = catalog.prepare("SELECT name, kind FROM entries WHERE tid = ?1 ORDER BY name")
    else {
        return Vec::new();
    };
    let Ok(rows) = st.query_map([tid], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
    }) else {
        return Vec::new();
    };
    rows.flatten()
        .filter_map(|(name, kind)| {
            let name = String::from_utf8(name).ok()?;
            name.starts_with(prefix)
                .then(|| if kind == 2 { format!("{name}/") } else { name })
        })
        .take(MAX_CANDIDATES)
        .collect()
}

/// Paths completing `path` (absolute, inside the snapshot whose root tree is `tree`).
fn complete_path(dir: &Path, tree: &str, path: &str) -> Vec<String> {
    let Some(cat) = open_ro(&dir.join("catalog.sqlite")) else {
        return Vec::new();
    };
    let path = if path.is_empty() { "/" } else { path };
    let (parent, prefix) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("/", path),
    };
    list_dir(&cat, tree, parent, prefix)
        .into_iter()
        .map(|n| format!("{parent}{n}"))
        .collect()
}

fn candidates(dir: &Path, command: &str, cur: &str) -> Vec<String> {
    let snaps = snapshots(dir);
    if command == "find" {
        return match snaps.last() {
            Some(s) if cur.starts_with('/') => complete_path(dir, &s.tree, cur),
            _ => Vec::new(),
        };
    }
    if let Some((sel, path)) = cur.split_once(':').filter(|(s, _)| !s.starts_with('@')) {
        let Some(s) = pick(&snaps, sel) else {
            return Vec::new();
        };
        return complete_path(dir, &s.tree, path)
            .into_iter()
            .map(|p| format!("{sel}:{p}"))
            .collect();
    }
    let mut out: Vec<String> = Vec::new();
    if "latest".starts_with(cur) {
        out.push("latest".into());
    }
    let cur = cur.to_ascii_lowercase();
    // Newest first: that is what one restores.
    for s in snaps.iter().rev() {
        if s.id.starts_with(&cur) {
            out.push(s.id[..8].to_string());
        }
        if out.len() >= MAX_CANDIDATES {
            break;
        }
    }
    out
}

/// Prints candidates, one per line; exit 0 when the word is a snapshot
/// argument (even with no candidate), 1 when the shell should complete it
/// itself (subcommands, flags, files).
pub fn run_complete(g: &GlobalArgs, a: CompleteArgs) -> Result<i32> {
    let p = parse_words(&a.words);
    let cur = a.words.last().map(String::as_str).unwrap_or("");
    let Some(command) = p.command.as_deref() else {
        return Ok(exit::ERROR);
    };
    let Some((_, n)) = SNAPSHOT_ARGS.iter().find(|(c, _)| *c == command) else {
        return Ok(exit::ERROR);
    };
    if p.in_option || p.positionals >= *n || cur.starts_with('-') {
        return Ok(exit::ERROR);
    }
    if command == "find" && !cur.starts_with('/') {
        return Ok(exit::ERROR);
    }
    let found = match repo_cache_dir(g, &p) {
        Some(dir) => candidates(&dir, command, cur),
        None => Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    for c in found {
        writeln!(out, "{c}")?;
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        let mut v: Vec<String> = s.split(' ').map(str::to_string).collect();
        if s.ends_with(' ') {
            v.pop();
            v.push(String::new());
        }
        v
    }

    #[test]
    fn positions() {
        let p = parse_words(&w("cellar -r /x restore lat"));
        assert_eq!(p.repo.as_deref(), Some("/x"));
        assert_eq!(p.command.as_deref(), Some("restore"));
        assert_eq!(p.positionals, 0);
        let p = parse_words(&w("cellar restore latest -t "));
        assert!(p.in_option);
        let p = parse_words(&w("cellar diff abc "));
        assert_eq!(p.positionals, 1);
        let p = parse_words(&w("cellar --repo=/y --cache-dir /c ls "));
        assert_eq!(p.repo.as_deref(), Some("/y"));
        assert_eq!(p.cache_dir.as_deref(), Some(Path::new("/c")));
        assert_eq!(p.command.as_deref(), Some("ls"));
    }
}

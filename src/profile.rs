//! The configuration file (`cellar.toml`): named profiles that say what a
//! nightly `cellar run` backs up, which hooks surround it, which snapshots it
//! keeps and which slice of the data it verifies. Values that must parse
//! (durations, sizes, spans, subsets) are parsed while the file is read, so a
//! bad one is reported with the file and line it is on.
//!
//! Every table mirrors the command of the same name: `[profiles.NAME.backup]`
//! takes the long options of `cellar backup`, `[profiles.NAME.forget]` those of
//! `cellar forget`, `[profiles.NAME.check]` those of `cellar check`. The
//! same file holds the saved repositories (`[repositories.NAME]` and
//! `default-repository`, read by `cellar repo`); they are not interpreted
//! here, but a profile's `repository` may name one.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::check::ReadData;
use crate::error::{Error, Result};
use crate::forget::{GroupBy, Policy};
use crate::prune::MaxUnused;

/// A hook runs at most this long unless the profile says otherwise.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(600);

/// Refuses files that cannot be a configuration (and would only cost memory).
const MAX_CONFIG_BYTES: u64 = 4 << 20;

// ---------------------------------------------------------------------------
// Values parsed while reading

/// A string-valued option that is parsed when the file is read; keeps the text
/// so `config show` prints what the user wrote.
#[derive(Clone, Debug)]
pub struct Parsed<T: ConfigValue> {
    pub text: String,
    pub value: T,
}

/// How a [`Parsed`] option is read from its text.
pub trait ConfigValue: Sized + Clone + fmt::Debug {
    fn parse(s: &str) -> Result<Self>;
}

impl<'de, T: ConfigValue> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let value = T::parse(&text).map_err(de::Error::custom)?;
        Ok(Parsed { text, value })
    }
}

impl<T: ConfigValue> Serialize for Parsed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// "90s", "10m", "1h30m", "2d"; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || {
        Error::InvalidArgument(format!(
            "duration {s:?}: expected e.g. 30s, 10m, 1h30m or 2d"
        ))
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        total = total.saturating_add(n.saturating_mul(mult));
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

impl ConfigValue for Duration {
    fn parse(s: &str) -> Result<Self> {
        parse_duration(s)
    }
}

/// A size such as `2G` or `500M`.
#[derive(Clone, Copy, Debug)]
pub struct Size(pub u64);

impl ConfigValue for Size {
    fn parse(s: &str) -> Result<Self> {
        crate::archiver::exclude::parse_size(s).map(Size)
    }
}

impl ConfigValue for jiff::Span {
    fn parse(s: &str) -> Result<Self> {
        crate::forget::parse_span(s)
    }
}

impl ConfigValue for MaxUnused {
    fn parse(s: &str) -> Result<Self> {
        MaxUnused::parse(s)
    }
}

impl ConfigValue for GroupBy {
    fn parse(s: &str) -> Result<Self> {
        GroupBy::parse(s)
    }
}

/// Which packs a run reads back: `check --read-data-subset` values, plus
/// `auto/M`, a slice that moves with the date.
#[derive(Clone, Debug, PartialEq)]
pub enum Subset {
    Fixed(ReadData),
    /// The slice of `of` for the day: (days since Monday 1969-12-29) mod `of`,
    /// plus one, so `auto/7` is the ISO weekday and any M consecutive nights
    /// read every pack once.
    Auto {
        of: u32,
    },
}

impl Subset {
    pub fn resolve(&self, today: jiff::civil::Date) -> ReadData {
        match self {
            Subset::Fixed(r) => r.clone(),
            Subset::Auto { of } => {
                let monday = jiff::civil::date(1969, 12, 29);
                let days = today.since(monday).map(|s| s.get_days()).unwrap_or(0) as i64;
                let n = days.rem_euclid(*of as i64) as u32 + 1;
                ReadData::Slice { n, of: *of }
            }
        }
    }
}

impl ConfigValue for Subset {
    fn parse(s: &str) -> Result<Self> {
        if let Some(m) = s.trim().strip_prefix("auto/") {
            return match m.trim().parse::<u32>() {
                Ok(of) if of > 0 => Ok(Subset::Auto { of }),
                _ => Err(Error::InvalidArgument(format!(
                    "read-data-subset {s:?}: expected auto/M with M >= 1"
                ))),
            };
        }
        ReadData::parse_subset(s)
            .map(Subset::Fixed)
            .map_err(|e| Error::InvalidArgument(format!("{e}, or auto/M (the slice of the day)")))
    }
}

/// One value or a list of them (`before = "cmd"` or `before = ["a", "b"]`).
#[derive(Clone, Debug)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command, a table {command, timeout}, or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::new(v)).map(|x| OneOrMany(vec![x]))
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                m: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(m)).map(|x| OneOrMany(vec![x]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = s.next_element()? {
                    v.push(x);
                }
                Ok(OneOrMany(v))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

// ---------------------------------------------------------------------------
// The file

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    profiles: BTreeMap<String, Spanned<Profile>>,
    /// Saved repositories: read by `cellar repo` and `-r NAME`, not here.
    #[serde(default)]
    #[allow(dead_code)]
    repositories: Option<toml::Table>,
    #[serde(default, rename = "default-repository")]
    default_repository: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_command: Option<String>,
    /// In clear in the file: only if the user writes it; never printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub backup: BackupSection,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forget: Option<ForgetSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSection>,
}

/// The options of `cellar backup`.
#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupSection {
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// NAME = COMMAND: what COMMAND prints is stored as /NAME (`--stdin-from-command`).
    #[serde(default)]
    pub streams: BTreeMap<String, String>,
    #[serde(default)]
    pub tag: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub iexclude: Vec<String>,
    #[serde(default)]
    pub exclude_file: Vec<PathBuf>,
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    #[serde(default)]
    pub exclude_caches: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_larger_than: Option<Parsed<Size>>,
    #[serde(default)]
    pub one_file_system: bool,
    #[serde(default)]
    pub force: bool,
}

/// A hook command: a string, or `{ command = "...", timeout = "5m" }`.
#[derive(Serialize, Debug, Clone)]
pub struct Hook {
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Parsed<Duration>>,
}

impl<'de> Deserialize<'de> for Hook {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            command: String,
            timeout: Option<Parsed<Duration>>,
        }
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Hook;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command or a table {command, timeout}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Hook, E> {
                Ok(Hook {
                    command: v.to_string(),
                    timeout: None,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> std::result::Result<Hook, A::Error> {
                let f = Full::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(Hook {
                    command: f.command,
                    timeout: f.timeout,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Shell commands around the run (`sh -c`, each with a timeout).
#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hooks {
    /// Default timeout of every hook of the profile (10m).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Parsed<Duration>>,
    /// Before the backup; a failing one means no backup.
    #[serde(default)]
    pub before: OneOrMany<Hook>,
    /// Right after the backup, whether it worked or not, once `before` ran:
    /// restart what `before` stopped here, so it is down only while it is read.
    #[serde(default)]
    pub after_backup: OneOrMany<Hook>,
    /// After every step succeeded.
    #[serde(default)]
    pub after: OneOrMany<Hook>,
    /// When any step failed; the error is in CELLAR_ERROR.
    #[serde(default)]
    pub on_failure: OneOrMany<Hook>,
    /// Always, last.
    #[serde(default)]
    pub finally: OneOrMany<Hook>,
}

impl Hooks {
    pub fn timeout_of(&self, h: &Hook) -> Duration {
        h.timeout
            .as_ref()
            .or(self.timeout.as_ref())
            .map(|p| p.value)
            .unwrap_or(DEFAULT_HOOK_TIMEOUT)
    }
}

/// The options of `cellar forget` (a policy; ids make no sense nightly) and of its prune.
#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ForgetSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Parsed<jiff::Span>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_hourly: Option<Parsed<jiff::Span>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_daily: Option<Parsed<jiff::Span>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_weekly: Option<Parsed<jiff::Span>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_monthly: Option<Parsed<jiff::Span>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_yearly: Option<Parsed<jiff::Span>>,
    #[serde(default)]
    pub keep_tag: Vec<String>,
    /// Default "host,paths".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Parsed<GroupBy>>,
    /// Run prune after forget.
    #[serde(default)]
    pub prune: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unused: Option<Parsed<MaxUnused>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace: Option<Parsed<Duration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_lock: Option<Parsed<Duration>>,
}

impl ForgetSection {
    pub fn policy(&self) -> Policy {
        let sp = |p: &Option<Parsed<jiff::Span>>| p.as_ref().map(|p| p.value);
        Policy {
            last: self.keep_last,
            periods: [
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
                self.keep_yearly,
            ],
            within: sp(&self.keep_within),
            within_periods: [
                sp(&self.keep_within_hourly),
                sp(&self.keep_within_daily),
                sp(&self.keep_within_weekly),
                sp(&self.keep_within_monthly),
                sp(&self.keep_within_yearly),
            ],
            tags: self.keep_tag.clone(),
        }
    }

    pub fn group_by(&self) -> GroupBy {
        match &self.group_by {
            Some(g) => g.value,
            None => GroupBy {
                host: true,
                paths: true,
                tags: false,
            },
        }
    }

    pub fn prune_options(&self) -> crate::prune::PruneOptions {
        let mut o = crate::prune::PruneOptions::default();
        if let Some(m) = &self.max_unused {
            o.max_unused = m.value;
        }
        o.grace = self
            .grace
            .as_ref()
            .map(|g| g.value)
            .unwrap_or(Duration::from_secs(3600));
        o
    }
}

/// The options of `cellar check`.
#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckSection {
    #[serde(default)]
    pub read_data: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_data_subset: Option<Parsed<Subset>>,
}

impl CheckSection {
    pub fn read_data(&self, today: jiff::civil::Date) -> ReadData {
        match (&self.read_data_subset, self.read_data) {
            (Some(s), _) => s.value.resolve(today),
            (None, true) => ReadData::All,
            (None, false) => ReadData::None,
        }
    }
}

// ---------------------------------------------------------------------------
// Loading and validating

/// A parsed configuration file.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    text: String,
    profiles: BTreeMap<String, Spanned<Profile>>,
    /// A profile without `repository` uses this saved repository.
    pub default_repository: Option<String>,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where cellar looks when no --config or CELLAR_CONFIG is given, in order.
pub fn default_paths() -> Vec<PathBuf> {
    let mut v = Vec::new();
    match std::env::var_os("XDG_CONFIG_HOME").filter(|s| !s.is_empty()) {
        Some(x) => v.push(PathBuf::from(x).join("cellar/cellar.toml")),
        None => {
            if let Some(h) = std::env::var_os("HOME").filter(|s| !s.is_empty()) {
                v.push(PathBuf::from(h).join(".config/cellar/cellar.toml"));
            }
        }
    }
    v.push(PathBuf::from("/etc/cellar/cellar.toml"));
    v
}

impl Config {
    /// Reads `path`, or else the first of [`default_paths`] that exists.
    pub fn find_and_load(path: Option<&Path>) -> Result<Config> {
        if let Some(p) = path {
            return Config::load(p);
        }
        let candidates = default_paths();
        for p in &candidates {
            if p.exists() {
                return Config::load(p);
            }
        }
        let shown: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        Err(Error::NotFound(format!(
            "no configuration file: give --config FILE or CELLAR_CONFIG, or create {}",
            shown.join(" or ")
        )))
    }

    pub fn load(path: &Path) -> Result<Config> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut text = String::new();
        f.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| Error::io(path, e))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(Error::InvalidArgument(format!(
                "{}: larger than {} MiB, not a configuration file",
                path.display(),
                MAX_CONFIG_BYTES >> 20
            )));
        }
        Config::parse(path, text)
    }

    /// Parses the text of a file (`path` only names it in errors).
    pub fn parse(path: &Path, text: String) -> Result<Config> {
        let file: File = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            let msg = e.message().trim().replace('\n', "; ");
            Error::InvalidArgument(match line {
                Some(l) => format!("{}:{l}: {msg}", path.display()),
                None => format!("{}: {msg}", path.display()),
            })
        })?;
        Ok(Config {
            path: path.to_path_buf(),
            text,
            profiles: file.profiles,
            default_repository: file.default_repository.filter(|r| !r.is_empty()),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    pub fn profile(&self, name: &str) -> Result<&Profile> {
        match self.profiles.get(name) {
            Some(p) => Ok(p.get_ref()),
            None => {
                let known: Vec<&str> = self.names().collect();
                Err(Error::NotFound(format!(
                    "{}: no profile {name:?} (profiles: {})",
                    self.path.display(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )))
            }
        }
    }

    /// "FILE:LINE" of a profile's table, for errors about the profile as a whole.
    pub fn location(&self, name: &str) -> String {
        match self.profiles.get(name) {
            Some(p) => format!(
                "{}:{}",
                self.path.display(),
                line_of(&self.text, p.span().start)
            ),
            None => self.path.display().to_string(),
        }
    }

    /// Checks what the types cannot: a repository and something to back up.
    /// `repo_given`: the repository comes from the command line instead.
    pub fn validate(&self, name: &str, repo_given: bool) -> Result<()> {
        let p = self.profile(name)?;
        let at = self.location(name);
        let err = |m: String| Err(Error::InvalidArgument(format!("{at}: profile {name}: {m}")));
        if !repo_given
            && self.default_repository.is_none()
            && p.repository.as_deref().is_none_or(str::is_empty)
        {
            return err(
                "no repository (add repository = \"/path/to/repo\" or a saved repository's name, or give -r)"
                    .into(),
            );
        }
        let sources = [
            p.password_file.is_some(),
            p.password_command.is_some(),
            p.password.is_some(),
        ];
        if sources.iter().filter(|&&b| b).count() > 1 {
            return err("give only one of password-file, password-command, password".into());
        }
        if p.backup.paths.is_empty() && p.backup.streams.is_empty() {
            return err("nothing to back up (add backup.paths or backup.streams)".into());
        }
        for (n, c) in &p.backup.streams {
            if !crate::tree::valid_name(n.as_bytes()) {
                return err(format!("backup.streams: {n:?} is not a plain file name"));
            }
            if c.trim().is_empty() {
                return err(format!("backup.streams.{n}: empty command"));
            }
        }
        if let Some(f) = &p.forget {
            if f.policy().is_empty() {
                return err("forget: no keep-* rule (it would remove every snapshot)".into());
            }
        }
        Ok(())
    }
}

/// Hides what looks like a password in a command shown to the user:
/// `-pSECRET`, `--password=SECRET`, `*PASSWORD=SECRET`, `*PWD=SECRET`.
pub fn redact(cmd: &str) -> String {
    cmd.split(' ')
        .map(|w| {
            if w.starts_with("-p") && w.len() > 2 && !w.starts_with("--") {
                "-p***".to_string()
            } else if let Some((k, _)) = w.split_once('=') {
                let kl = k.to_ascii_lowercase();
                if kl.contains("password") || kl.ends_with("pwd") || kl.contains("secret") {
                    format!("{k}=***")
                } else {
                    w.to_string()
                }
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config> {
        Config::parse(Path::new("c.toml"), t.to_string())
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let e = parse("[profiles.a]\nrepository = \"/r\"\n\n[profiles.a.backup]\npaths = [\"/x\"]\nexclud = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:6: unknown field `exclud`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let e = parse("[profiles.a]\nrepository = \"/r\"\n[profiles.a.hooks]\ntimeout = \"5x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:4: "), "{e}");
        let e = parse("[profiles.a]\nrepository = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:2: "), "{e}");
    }

    #[test]
    fn missing_repository_names_the_profile_line() {
        let c = parse("# x\n\n[profiles.nightly]\n[profiles.nightly.backup]\npaths = [\"/x\"]\n")
            .unwrap();
        let e = c.validate("nightly", false).unwrap_err().to_string();
        assert!(
            e.starts_with("c.toml:3: profile nightly: no repository"),
            "{e}"
        );
        c.validate("nightly", true).unwrap();
    }

    #[test]
    fn saved_repositories_share_the_file() {
        let c = parse("default-repository = \"local\"\n[repositories.local]\nrepository = \"/x\"\n[profiles.a.backup]\npaths = [\"/x\"]\n")
            .unwrap();
        c.validate("a", false).unwrap();
        assert!(parse("default-repo = \"x\"\n").is_err());
    }

    #[test]
    fn hooks_take_strings_tables_and_lists() {
        let c = parse(
            "[profiles.a]\nrepository=\"/r\"\n[profiles.a.backup]\npaths=[\"/x\"]\n[profiles.a.hooks]\ntimeout=\"1m\"\nbefore=\"a\"\nafter=[\"b\", {command=\"c\", timeout=\"2s\"}]\nfinally={command=\"d\"}\n",
        )
        .unwrap();
        let h = &c.profile("a").unwrap().hooks;
        assert_eq!(h.before.0[0].command, "a");
        assert_eq!(h.after.0.len(), 2);
        assert_eq!(h.timeout_of(&h.after.0[1]), Duration::from_secs(2));
        assert_eq!(h.timeout_of(&h.after.0[0]), Duration::from_secs(60));
        assert_eq!(h.finally.0[0].command, "d");
    }

    #[test]
    fn auto_slice_is_the_weekday() {
        let s = Subset::parse("auto/7").unwrap();
        // 2026-11-16 is a Monday.
        for (d, n) in [(16, 1), (17, 2), (22, 7), (23, 1)] {
            assert_eq!(
                s.resolve(jiff::civil::date(2026, 11, d)),
                ReadData::Slice { n, of: 7 }
            );
        }
        assert!(Subset::parse("auto/0").is_err());
        assert!(Subset::parse("2/4").is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("1h30").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn redacts_passwords_in_commands() {
        assert_eq!(
            redact("mysqldump -psecret --password=x MYSQL_PWD=y cells"),
            "mysqldump -p*** --password=*** MYSQL_PWD=*** cells"
        );
        assert_eq!(redact("mysqldump -p cells"), "mysqldump -p cells");
    }
}

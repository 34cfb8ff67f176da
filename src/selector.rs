//! Snapshot selectors: how a user names a snapshot on the command line
//! (`latest`, an id prefix, `@TIME`), optionally followed by `:PATH`, and the
//! `--host/--tag/--path` filters that narrow the candidates first.
//!
//! `@TIME` picks the newest snapshot taken at or before the *end* of the time
//! given, at the precision given: `@2026-11-20T03:00` covers 03:00:00 to
//! 03:00:59.999999999 (a 03:00 cron job records a few milliseconds after 03:00
//! and an operator who asks for "03:00" means that backup), `@2026-11-20` covers
//! the whole day, `@yesterday` ends at yesterday 23:59:59.999999999, `@today`
//! and `@now` are now. Times without an offset are local; RFC 3339 times with
//! an offset are exact instants. `@3d` / `@12h` / `@30m` mean that long ago.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repofile::Snapshot;
use crate::repository::Repository;

/// Narrows the snapshots a selector (or a listing) considers.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Host name, exactly.
    pub host: Option<String>,
    /// Every one of these tags must be on the snapshot.
    pub tags: Vec<String>,
    /// Every one of these paths must be among the snapshot's backed-up paths.
    pub paths: Vec<String>,
}

fn norm_path(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() { "/" } else { t }
}

impl Filter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.host.as_ref().is_none_or(|h| &s.hostname == h)
            && self.tags.iter().all(|t| s.tags.contains(t))
            && self
                .paths
                .iter()
                .all(|p| s.paths.iter().any(|sp| norm_path(sp) == norm_path(p)))
    }

    /// The repository's snapshots that pass the filter, oldest first.
    pub fn apply(&self, repo: &Repository) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let mut all = repo.snapshots()?;
        all.retain(|(_, s)| self.matches(s));
        Ok(all)
    }
}

/// Splits `SNAPSHOT[:PATH]`. The time of an `@TIME` selector contains colons
/// of its own, always followed by a digit, so its path starts at the first
/// colon that is not.
pub fn split_spec(spec: &str) -> (&str, Option<&str>) {
    let at = if spec.starts_with('@') {
        spec.char_indices().find(|&(i, c)| {
            c == ':'
                && !spec[i + 1..]
                    .chars()
                    .next()
                    .is_some_and(|n| n.is_ascii_digit())
        })
    } else {
        spec.char_indices().find(|&(_, c)| c == ':')
    };
    match at {
        Some((i, _)) => (&spec[..i], Some(&spec[i + 1..])),
        None => (spec, None),
    }
}

/// The last instant an `@TIME` selector covers (see the module docs).
pub fn parse_time(s: &str, now: &Zoned) -> Result<Timestamp> {
    let bad = || {
        Error::InvalidArgument(format!(
            "snapshot time {s:?}: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS], RFC 3339, \
             yesterday, today, now, or a duration ago such as 3d, 12h, 30m"
        ))
    };
    let tz = now.time_zone().clone();
    let end_of_day = |d: Date| -> Result<Timestamp> {
        let next = d.tomorrow().map_err(|_| bad())?;
        let start = next.to_zoned(tz.clone()).map_err(|_| bad())?;
        Ok(start.timestamp() - SignedDuration::from_nanos(1))
    };
    match s {
        "now" | "today" => return Ok(now.timestamp()),
        "yesterday" => return end_of_day(now.date().yesterday().map_err(|_| bad())?),
        _ => {}
    }
    if let Some((num, unit)) = s
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map(|(i, _)| s.split_at(i))
        .filter(|(n, _)| !n.is_empty())
    {
        let secs = match unit {
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86400,
            "w" => 7 * 86400,
            _ => 0,
        };
        if secs > 0 {
            let n: i64 = num.parse().map_err(|_| bad())?;
            let ago = n.checked_mul(secs).ok_or_else(bad)?;
            return now
                .timestamp()
                .checked_sub(SignedDuration::from_secs(ago))
                .map_err(|_| bad());
        }
    }
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(d) = s.parse::<Date>() {
        if s.len() == 10 {
            return end_of_day(d);
        }
    }
    let dt: DateTime = s.parse().map_err(|_| bad())?;
    // Seconds given: the whole second; else the whole minute.
    let time_part = s.split(['T', ' ']).nth(1).unwrap_or("");
    let span = match time_part.matches(':').count() {
        0 | 1 => SignedDuration::from_secs(60),
        _ if time_part.contains('.') => SignedDuration::from_nanos(1),
        _ => SignedDuration::from_secs(1),
    };
    let start = dt.to_zoned(tz).map_err(|_| bad())?.timestamp();
    start
        .checked_add(span - SignedDuration::from_nanos(1))
        .map_err(|_| bad())
}

/// Resolves a selector among the snapshots that pass `filter`.
pub fn resolve(
    repo: &Repository,
    selector: &str,
    filter: &Filter,
) -> Result<(SnapshotId, Snapshot)> {
    resolve_in(filter.apply(repo)?, selector, &Zoned::now())
}

/// [`resolve`] over a given list (oldest first) and clock.
pub fn resolve_in(
    mut snaps: Vec<(SnapshotId, Snapshot)>,
    selector: &str,
    now: &Zoned,
) -> Result<(SnapshotId, Snapshot)> {
    if selector == "latest" {
        return snaps
            .pop()
            .ok_or_else(|| Error::NotFound("no snapshot matches \"latest\"".into()));
    }
    if let Some(t) = selector.strip_prefix('@') {
        let until = parse_time(t, now)?;
        return snaps
            .into_iter()
            .rev()
            .find(|(_, s)| s.timestamp() <= until)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no snapshot at or before {} (asked {selector:?})",
                    until.to_zoned(now.time_zone().clone())
                ))
            });
    }
    let sel = selector.to_ascii_lowercase();
    if sel.len() < 4 || !sel.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidArgument(format!(
            "snapshot {selector:?}: expected \"latest\", \"@TIME\" or an id prefix of at least 4 hex digits"
        )));
    }
    let mut hits: Vec<_> = snaps
        .into_iter()
        .filter(|(id, _)| id.to_hex().starts_with(&sel))
        .collect();
    match hits.len() {
        0 => Err(Error::NotFound(format!("no snapshot matches {selector:?}"))),
        1 => Ok(hits.pop().unwrap()),
        n => Err(Error::InvalidArgument(format!(
            "snapshot prefix {selector:?} is ambiguous ({n} snapshots match)"
        ))),
    }
}

/// Local time zone, for callers that need a `now`.
pub fn now() -> Zoned {
    Zoned::now().with_time_zone(TimeZone::system())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Zoned {
        "2026-11-25T14:03:07+00:00[UTC]".parse().unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn times_cover_their_precision() {
        let n = now();
        assert_eq!(
            parse_time("2026-11-20T03:00", &n).unwrap(),
            ts("2026-11-20T03:00:59.999999999Z")
        );
        assert_eq!(
            parse_time("2026-11-20 03:00:10", &n).unwrap(),
            ts("2026-11-20T03:00:10.999999999Z")
        );
        assert_eq!(
            parse_time("2026-11-20", &n).unwrap(),
            ts("2026-11-20T23:59:59.999999999Z")
        );
        assert_eq!(
            parse_time("yesterday", &n).unwrap(),
            ts("2026-11-24T23:59:59.999999999Z")
        );
        assert_eq!(parse_time("2d", &n).unwrap(), ts("2026-11-23T14:03:07Z"));
        assert_eq!(
            parse_time("2026-11-20T03:00:00+01:00", &n).unwrap(),
            ts("2026-11-20T02:00:00Z")
        );
        assert!(parse_time("monday", &n).is_err());
        assert!(parse_time("5y", &n).is_err());
    }

    #[test]
    fn specs_split_after_the_time() {
        assert_eq!(split_spec("latest:/a/b"), ("latest", Some("/a/b")));
        assert_eq!(split_spec("abcd"), ("abcd", None));
        assert_eq!(
            split_spec("@2026-11-20T03:00:/data"),
            ("@2026-11-20T03:00", Some("/data"))
        );
        assert_eq!(split_spec("@2026-11-20T03:00"), ("@2026-11-20T03:00", None));
        assert_eq!(split_spec("@yesterday:x"), ("@yesterday", Some("x")));
    }
}

//! Retention policies: which snapshots a `forget` keeps, and why. A pure
//! function of the snapshots' times and tags, so it can be tested with fixed
//! times; the CLI does the deleting.
//!
//! Buckets (hour, day, ISO week, month, year) use each snapshot's own wall-clock
//! time at the UTC offset it was taken with, so a backup at 23:30 local time
//! counts for that local day whatever zone the machine running `forget` is in.
//! Snapshots are walked newest first, and a rule keeps the first snapshot it
//! meets in each bucket: the newest of the bucket.

use std::collections::BTreeMap;

use jiff::civil::DateTime;
use jiff::{Span, Timestamp};

use crate::error::{Error, Result};

/// Bucketed rules, in the order reasons are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

pub const PERIODS: [Period; 5] = [
    Period::Hourly,
    Period::Daily,
    Period::Weekly,
    Period::Monthly,
    Period::Yearly,
];

impl Period {
    pub fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    /// The bucket a wall-clock time falls in; equal keys share a bucket.
    fn bucket(self, t: DateTime) -> (i32, i32, i32, i32) {
        let (y, m, d, h) = (
            t.year() as i32,
            t.month() as i32,
            t.day() as i32,
            t.hour() as i32,
        );
        match self {
            Period::Hourly => (y, m, d, h),
            Period::Daily => (y, m, d, 0),
            Period::Weekly => {
                // ISO weeks: 2027-01-01 (a Friday) belongs to week 53 of 2026.
                let w = t.date().iso_week_date();
                (w.year() as i32, w.week() as i32, 0, 0)
            }
            Period::Monthly => (y, m, 0, 0),
            Period::Yearly => (y, 0, 0, 0),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub last: Option<u32>,
    /// Count per period (hourly..yearly, as in [`PERIODS`]).
    pub periods: [Option<u32>; 5],
    /// Keep everything taken within this span before the group's newest snapshot.
    pub within: Option<Span>,
    /// Keep one per period for snapshots within this span of the newest.
    pub within_periods: [Option<Span>; 5],
    pub tags: Vec<String>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
            && self.periods.iter().all(Option::is_none)
            && self.within.is_none()
            && self.within_periods.iter().all(Option::is_none)
            && self.tags.is_empty()
    }
}

/// What the policy needs to know about one snapshot.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub time: Timestamp,
    /// Wall-clock time at the snapshot's own offset.
    pub local: DateTime,
    pub tags: Vec<String>,
}

impl Candidate {
    /// From a snapshot's RFC 3339 time, keeping the offset it was written with.
    pub fn parse(rfc3339: &str, tags: &[String]) -> Result<Candidate> {
        let pieces = jiff::fmt::temporal::Pieces::parse(rfc3339)
            .map_err(|e| Error::format("snapshot", format!("time {rfc3339:?}: {e}")))?;
        let time: Timestamp = rfc3339
            .parse()
            .map_err(|e| Error::format("snapshot", format!("time {rfc3339:?}: {e}")))?;
        let local = pieces.date().to_datetime(pieces.time().unwrap_or_default());
        Ok(Candidate {
            time,
            local,
            tags: tags.to_vec(),
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    /// The rules that keep it ("last", "daily", "within 7d", "tag nightly", ...).
    pub reasons: Vec<String>,
}

fn cutoff(newest: Timestamp, span: Span) -> Option<Timestamp> {
    // Calendar units (months, years) need a reference date; UTC is exact enough
    // for a retention window and never fails on a DST gap.
    newest
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_sub(span)
        .ok()
        .map(|z| z.timestamp())
}

/// Applies a policy to one group of snapshots. Returns one decision per
/// snapshot, in the order given.
pub fn apply(policy: &Policy, snaps: &[Candidate]) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..snaps.len()).collect();
    // Newest first; equal times keep their input order, which the caller makes
    // deterministic (by id).
    order.sort_by(|&a, &b| snaps[b].time.cmp(&snaps[a].time).then(a.cmp(&b)));
    let mut out = vec![Decision::default(); snaps.len()];
    let Some(&newest) = order.first() else {
        return out;
    };
    let newest = snaps[newest].time;
    let within = policy.within.and_then(|s| cutoff(newest, s));
    let within_p: Vec<Option<Timestamp>> = policy
        .within_periods
        .iter()
        .map(|s| s.and_then(|s| cutoff(newest, s)))
        .collect();
    let mut left_last = policy.last.unwrap_or(0);
    let mut left: Vec<u32> = policy.periods.iter().map(|c| c.unwrap_or(0)).collect();
    let mut last_bucket: Vec<Option<(i32, i32, i32, i32)>> = vec![None; 5];
    let mut last_bucket_within: Vec<Option<(i32, i32, i32, i32)>> = vec![None; 5];
    for &i in &order {
        let s = &snaps[i];
        let d = &mut out[i];
        if left_last > 0 {
            left_last -= 1;
            d.reasons.push("last".into());
        }
        for (k, p) in PERIODS.iter().enumerate() {
            let b = p.bucket(s.local);
            if left[k] > 0 && last_bucket[k] != Some(b) {
                left[k] -= 1;
                last_bucket[k] = Some(b);
                d.reasons.push(p.name().into());
            }
        }
        if let Some(c) = within {
            if s.time >= c {
                d.reasons.push(format!("within {}", policy.within.unwrap()));
            }
        }
        for (k, p) in PERIODS.iter().enumerate() {
            if let Some(c) = within_p[k] {
                let b = p.bucket(s.local);
                if s.time >= c && last_bucket_within[k] != Some(b) {
                    last_bucket_within[k] = Some(b);
                    d.reasons.push(format!(
                        "within-{} {}",
                        p.name(),
                        policy.within_periods[k].unwrap()
                    ));
                }
            }
        }
        for t in &policy.tags {
            if s.tags.contains(t) {
                d.reasons.push(format!("tag {t}"));
            }
        }
        d.keep = !d.reasons.is_empty();
    }
    out
}

/// Which snapshot properties put two snapshots in the same group.
#[derive(Clone, Copy, Debug, Default)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl GroupBy {
    /// Parses "host,paths,tags" (any subset, possibly empty).
    pub fn parse(s: &str) -> Result<GroupBy> {
        let mut g = GroupBy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "--group-by {other:?}: expected host, paths and/or tags"
                    )));
                }
            }
        }
        Ok(g)
    }

    /// A printable key for one snapshot's group.
    pub fn key(&self, host: &str, paths: &[String], tags: &[String]) -> String {
        let mut parts = Vec::new();
        if self.host {
            parts.push(format!("host {host}"));
        }
        if self.paths {
            let mut p = paths.to_vec();
            p.sort();
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if self.tags {
            let mut t = tags.to_vec();
            t.sort();
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        parts.join(", ")
    }
}

/// Indices grouped by key, in key order.
pub fn group<'a>(keys: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, Vec<usize>> {
    let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.into_iter().enumerate() {
        out.entry(k.to_string()).or_default().push(i);
    }
    out
}

/// Parses a retention span such as `7d`, `2w`, `1y6m`, `36h` (units y, m =
/// months, w, d, h; no unit means days).
pub fn parse_span(s: &str) -> Result<Span> {
    let bad = || {
        Error::InvalidArgument(format!(
            "duration {s:?}: expected e.g. 7d, 2w, 1y6m or 36h (units y, m, w, d, h)"
        ))
    };
    let mut span = Span::new();
    let mut num = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        span = match c {
            'y' => span.try_years(n),
            'm' => span.try_months(n),
            'w' => span.try_weeks(n),
            'd' => span.try_days(n),
            'h' => span.try_hours(n),
            _ => return Err(bad()),
        }
        .map_err(|_| bad())?;
        any = true;
    }
    if !num.is_empty() {
        span = span
            .try_days(num.parse::<i64>().map_err(|_| bad())?)
            .map_err(|_| bad())?;
        any = true;
    }
    if !any {
        return Err(bad());
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(t: &str) -> Candidate {
        Candidate::parse(t, &[]).unwrap()
    }

    /// Indices kept, given snapshot times (any order) and a policy.
    fn kept(times: &[&str], p: &Policy) -> Vec<usize> {
        let snaps: Vec<Candidate> = times.iter().map(|t| c(t)).collect();
        apply(p, &snaps)
            .iter()
            .enumerate()
            .filter(|(_, d)| d.keep)
            .map(|(i, _)| i)
            .collect()
    }

    fn periods(h: u32, d: u32, w: u32, m: u32, y: u32) -> Policy {
        let o = |n| if n == 0 { None } else { Some(n) };
        Policy {
            periods: [o(h), o(d), o(w), o(m), o(y)],
            ..Default::default()
        }
    }

    /// Year, month and ISO-week boundaries: 2026-12-28 is the Monday of week 53
    /// of 2026, which runs to Sunday 2027-01-03.
    const BOUNDARY: [&str; 9] = [
        "2026-11-30T22:00:00+01:00", // 0 Mon, week 49, November
        "2026-12-01T09:00:00+01:00", // 1 Tue, week 49, December
        "2026-12-27T23:30:00+01:00", // 2 Sun, week 52
        "2026-12-28T08:00:00+01:00", // 3 Mon, week 53
        "2026-12-31T08:00:00+01:00", // 4 Thu, week 53, last of 2026
        "2026-12-31T20:00:00+01:00", // 5 Thu, same day, newer
        "2027-01-01T08:00:00+01:00", // 6 Fri, week 53 of 2026, year 2027
        "2027-01-04T08:00:00+01:00", // 7 Mon, week 1 of 2027
        "2027-01-04T09:15:00+01:00", // 8 Mon, same day as 7, an hour later
    ];

    #[test]
    fn last_keeps_the_newest_n() {
        let p = Policy {
            last: Some(3),
            ..Default::default()
        };
        assert_eq!(kept(&BOUNDARY, &p), vec![6, 7, 8]);
    }

    #[test]
    fn daily_keeps_newest_of_each_day() {
        // Days, newest first: 01-04 (8), 01-01 (6), 12-31 (5, not 4), 12-28 (3).
        assert_eq!(kept(&BOUNDARY, &periods(0, 4, 0, 0, 0)), vec![3, 5, 6, 8]);
    }

    #[test]
    fn weekly_uses_iso_weeks_across_the_year_boundary() {
        // Week 1/2027 (8), week 53/2026 (6: Jan 1 belongs to it), week 52 (2),
        // week 49 (1, newest of 0 and 1).
        assert_eq!(kept(&BOUNDARY, &periods(0, 0, 4, 0, 0)), vec![1, 2, 6, 8]);
    }

    #[test]
    fn monthly_and_yearly() {
        assert_eq!(kept(&BOUNDARY, &periods(0, 0, 0, 3, 0)), vec![0, 5, 8]);
        assert_eq!(kept(&BOUNDARY, &periods(0, 0, 0, 0, 5)), vec![5, 8]);
        // More buckets asked for than exist: every bucket's newest, no more.
        assert_eq!(kept(&BOUNDARY, &periods(0, 0, 0, 12, 0)), vec![0, 5, 8]);
    }

    #[test]
    fn rules_combine_and_report_reasons() {
        let snaps: Vec<Candidate> = BOUNDARY.iter().map(|t| c(t)).collect();
        let mut p = periods(0, 2, 0, 2, 0);
        p.last = Some(1);
        let d = apply(&p, &snaps);
        let kept: Vec<usize> = (0..9).filter(|&i| d[i].keep).collect();
        // daily: 8, 6; monthly: 8 (Jan), 5 (Dec); last: 8.
        assert_eq!(kept, vec![5, 6, 8]);
        assert_eq!(d[8].reasons, vec!["last", "daily", "monthly"]);
        assert_eq!(d[6].reasons, vec!["daily"]);
        assert_eq!(d[5].reasons, vec!["monthly"]);
        assert!(d[0].reasons.is_empty());
    }

    #[test]
    fn the_snapshots_own_offset_decides_the_day() {
        // The same instant seen from two zones: 2026-12-31T23:30 at -05:00 is
        // 2027-01-01T04:30Z. It counts for Dec 31 (its own wall clock).
        let times = [
            "2026-12-31T23:30:00-05:00", // 0: Dec 31 locally
            "2027-01-01T05:00:00+00:00", // 1: Jan 1, 30 min later
        ];
        assert_eq!(kept(&times, &periods(0, 2, 0, 0, 0)), vec![0, 1]);
        assert_eq!(kept(&times, &periods(0, 0, 0, 0, 2)), vec![0, 1]);
    }

    #[test]
    fn dst_change_days_and_the_repeated_hour() {
        // Europe/Berlin, autumn 2026: clocks go back from 03:00+02:00 to
        // 02:00+01:00 on Oct 25; the 02:xx hour happens twice.
        let times = [
            "2026-10-24T23:00:00+02:00", // 0 Oct 24
            "2026-10-25T02:10:00+02:00", // 1 first 02:xx
            "2026-10-25T02:40:00+01:00", // 2 second 02:xx (1.5 h later)
            "2026-10-25T23:30:00+01:00", // 3 Oct 25, a 25-hour day
            "2026-10-26T00:30:00+01:00", // 4 Oct 26
        ];
        // One per day: the 25-hour day still gives one snapshot (3).
        assert_eq!(kept(&times, &periods(0, 3, 0, 0, 0)), vec![0, 3, 4]);
        // Hourly: 1 and 2 share the wall-clock hour 02; the newer (2) is kept.
        assert_eq!(kept(&times, &periods(5, 0, 0, 0, 0)), vec![0, 2, 3, 4]);
        // Spring forward: 2026-03-29 has no 02:xx; 01:59+01:00 and 03:01+02:00
        // are 2 minutes apart but in different hours, same day.
        let spring = ["2026-03-29T01:59:00+01:00", "2026-03-29T03:01:00+02:00"];
        assert_eq!(kept(&spring, &periods(2, 0, 0, 0, 0)), vec![0, 1]);
        assert_eq!(kept(&spring, &periods(0, 2, 0, 0, 0)), vec![1]);
    }

    #[test]
    fn within_is_relative_to_the_newest_snapshot() {
        let p = Policy {
            within: Some(parse_span("4d").unwrap()),
            ..Default::default()
        };
        // Newest is 2027-01-04T09:15; cutoff 2026-12-31T09:15+01:00 → 5..=8.
        assert_eq!(kept(&BOUNDARY, &p), vec![5, 6, 7, 8]);
        let p = Policy {
            within_periods: [None, Some(parse_span("1w").unwrap()), None, None, None],
            ..Default::default()
        };
        // Within a week of the newest (cutoff 12-28T09:15), one per day: 8, 6, 5.
        assert_eq!(kept(&BOUNDARY, &p), vec![5, 6, 8]);
    }

    #[test]
    fn tags_keep_regardless_of_time() {
        let mut snaps: Vec<Candidate> = BOUNDARY.iter().map(|t| c(t)).collect();
        snaps[0].tags = vec!["keep".into(), "x".into()];
        let p = Policy {
            last: Some(1),
            tags: vec!["keep".into()],
            ..Default::default()
        };
        let d = apply(&p, &snaps);
        let kept: Vec<usize> = (0..9).filter(|&i| d[i].keep).collect();
        assert_eq!(kept, vec![0, 8]);
        assert_eq!(d[0].reasons, vec!["tag keep"]);
    }

    #[test]
    fn equal_times_break_ties_by_input_order() {
        let times = ["2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"];
        let p = Policy {
            last: Some(1),
            ..Default::default()
        };
        assert_eq!(kept(&times, &p), vec![0]);
    }

    #[test]
    fn empty_policy_and_input() {
        assert!(Policy::default().is_empty());
        assert!(apply(&periods(0, 1, 0, 0, 0), &[]).is_empty());
        assert!(kept(&BOUNDARY, &Policy::default()).is_empty());
    }

    #[test]
    fn spans_and_groups_parse() {
        assert!(parse_span("1y6m").is_ok());
        assert!(parse_span("36h").is_ok());
        assert!(parse_span("7").is_ok());
        assert!(parse_span("").is_err());
        assert!(parse_span("3x").is_err());
        assert!(parse_span("d").is_err());
        let g = GroupBy::parse("host,paths").unwrap();
        assert_eq!(
            g.key("a", &["/y".into(), "/x".into()], &[]),
            "host a, paths [/x, /y]"
        );
        assert!(GroupBy::parse("hosts").is_err());
        assert_eq!(GroupBy::parse("").unwrap().key("a", &[], &[]), "");
    }
}

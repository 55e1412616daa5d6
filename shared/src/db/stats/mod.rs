//! The analytics rollups: `daily_stats` (per practitioner per UTC day), the platform-wide
//! `daily_platform_stats` and `daily_job_stats`, and `patient_progress` (per patient per ISO
//! week). Each computation reads the period from the source tables and replaces its rows in
//! one transaction, so it is idempotent and a reader never sees half a period.

mod daily;
mod weekly;

pub use daily::*;
pub use weekly::*;

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate, NaiveTime, Weekday};
use serde::Serialize;
use sqlx::FromRow;

use super::{Db, now_ms};

/// Milliseconds of `[start, end)` of UTC day `day`.
pub fn day_bounds(day: NaiveDate) -> (i64, i64) {
    let start = day.and_time(NaiveTime::MIN).and_utc().timestamp_millis();
    (start, start + 86_400_000)
}

/// The UTC day of `ms`.
pub fn day_of(ms: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// An ISO week, by its Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Week(NaiveDate);

impl Week {
    /// The week `day` falls in.
    pub fn of(day: NaiveDate) -> Self {
        Self(day.week(Weekday::Mon).first_day())
    }

    /// Its Monday.
    pub fn monday(self) -> NaiveDate {
        self.0
    }

    /// `2026-W49`.
    pub fn label(self) -> String {
        let iso = self.0.iso_week();
        format!("{}-W{:02}", iso.year(), iso.week())
    }

    /// The week before.
    pub fn previous(self) -> Self {
        Self(self.0 - Days::new(7))
    }

    /// Milliseconds of `[Monday 00:00, next Monday 00:00)` UTC.
    pub fn bounds(self) -> (i64, i64) {
        let (start, _) = day_bounds(self.0);
        (start, start + 7 * 86_400_000)
    }
}

/// A folded topic key: lower case, trimmed, a trivial plural dropped ("Sleeps" and "sleep"
/// count together, "families" and "family"; "stress" and "glass" keep their double s).
pub fn topic_key(topic: &str) -> String {
    let lower = topic.trim().to_lowercase();
    if let Some(stem) = lower.strip_suffix("ies")
        && stem.chars().count() >= 2
    {
        return format!("{stem}y");
    }
    match lower.strip_suffix('s') {
        Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem.to_owned(),
        _ => lower,
    }
}

/// Topics counted across `topic_lists` (JSON arrays of strings), folded by [`topic_key`] and
/// shown by their most frequent spelling (the first in byte order on a tie); most frequent
/// first, then by name.
pub fn count_topics<'a>(topic_lists: impl Iterator<Item = &'a str>) -> Vec<(String, i64)> {
    let mut counts: BTreeMap<String, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
    for list in topic_lists {
        let topics: Vec<String> = serde_json::from_str(list).unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for topic in topics {
            let key = topic_key(&topic);
            if key.is_empty() || !seen.insert(key.clone()) {
                continue;
            }
            let entry = counts.entry(key).or_default();
            entry.0 += 1;
            *entry.1.entry(topic.trim().to_owned()).or_default() += 1;
        }
    }
    let mut out: Vec<(String, i64)> = counts
        .into_values()
        .map(|(n, spellings)| {
            let shown = spellings
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                .map(|(s, _)| s)
                .unwrap_or_default();
            (shown, n)
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_fold_case_and_trivial_plurals() {
        let lists = [
            r#"["Sleep", "work stress"]"#,
            r#"["sleep", "Family"]"#,
            r#"["sleeps", "families", "Work stress"]"#,
        ];
        let counted = count_topics(lists.iter().copied());
        assert_eq!(counted[0], ("Sleep".to_owned(), 3));
        assert_eq!(
            counted[1..],
            [("Family".to_owned(), 2), ("Work stress".to_owned(), 2)],
            "ties by name; the spelling first in byte order"
        );
        assert_eq!(topic_key("stress"), "stress");
        assert_eq!(topic_key("Glass"), "glass");
        assert_eq!(topic_key("bus"), "bus");
    }

    #[test]
    fn weeks_and_days_have_stable_labels_and_bounds() {
        let day: NaiveDate = "2026-12-03".parse().unwrap();
        let week = Week::of(day);
        assert_eq!(week.label(), "2026-W49");
        assert_eq!(week.monday().to_string(), "2026-11-30");
        assert_eq!(week.previous().label(), "2026-W48");
        let (start, end) = week.bounds();
        assert_eq!(end - start, 7 * 86_400_000);
        assert_eq!(day_of(day_bounds(day).0), day);
        // ISO years: 2027-01-01 is a Friday of 2026's week 53.
        assert_eq!(Week::of("2027-01-01".parse().unwrap()).label(), "2026-W53");
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let mut values: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(p95(&mut values), Some(95));
        assert_eq!(p95(&mut [7]), Some(7));
        assert_eq!(p95(&mut []), None);
    }
}

//! The analytics rollups: `daily_stats` (per practitioner per UTC day), the platform-wide
//! `daily_platform_stats` and `daily_job_stats`, and `patient_progress` (per patient per ISO
//! week). Each computation reads the period from the source tables and replaces its rows in
//! one transaction, so it is idempotent and a reader never sees half a period.

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

/// Counts of one practitioner (or of the platform) for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayCounts {
    pub recordings_uploaded: i64,
    pub recordings_processed: i64,
    pub recordings_failed: i64,
    pub audio_ms: i64,
    pub new_patients: i64,
    pub mood_sum: i64,
    pub mood_count: i64,
    pub cost_micro_usd: i64,
}

/// One kind's finished jobs of a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct JobDay {
    pub kind: String,
    pub done: i64,
    pub dead: i64,
    pub p95_run_ms: Option<i64>,
}

/// What one day's computation wrote.
#[derive(Debug, Clone, Default)]
pub struct DaySummary {
    /// Practitioners with a row.
    pub practitioners: usize,
    /// The platform-wide counts.
    pub platform: DayCounts,
    /// Users who registered.
    pub users_registered: i64,
    /// Job kinds with a row.
    pub job_kinds: usize,
}

/// The per-practitioner sums of the day: `(practitioner_id, value)` per query, merged.
const PER_PRACTITIONER: [(&str, &str); 8] = [
    (
        "recordings_uploaded",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM sessions \
         WHERE created_at >= $1 AND created_at < $2 GROUP BY practitioner_id",
    ),
    (
        "recordings_processed",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM sessions WHERE status = 'processed' \
         AND extraction_finished_at >= $1 AND extraction_finished_at < $2 GROUP BY practitioner_id",
    ),
    (
        "recordings_failed",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM sessions WHERE status = 'failed' \
         AND updated_at >= $1 AND updated_at < $2 GROUP BY practitioner_id",
    ),
    (
        "audio_ms",
        "SELECT practitioner_id AS id, CAST(SUM(duration_ms) AS BIGINT) AS value FROM sessions \
         WHERE source = 'audio' AND duration_ms IS NOT NULL AND transcription_finished_at >= $1 \
         AND transcription_finished_at < $2 GROUP BY practitioner_id",
    ),
    (
        "new_patients",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM patients \
         WHERE created_at >= $1 AND created_at < $2 GROUP BY practitioner_id",
    ),
    (
        "mood_sum",
        "SELECT practitioner_id AS id, CAST(SUM(mood_score) AS BIGINT) AS value \
         FROM session_metrics WHERE session_date >= $1 AND session_date < $2 \
         GROUP BY practitioner_id",
    ),
    (
        "mood_count",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM session_metrics \
         WHERE session_date >= $1 AND session_date < $2 GROUP BY practitioner_id",
    ),
    (
        "cost_micro_usd",
        "SELECT s.practitioner_id AS id, CAST(SUM(u.cost_micro_usd) AS BIGINT) AS value \
         FROM provider_usage u JOIN sessions s ON s.id = u.session_id \
         WHERE u.created_at >= $1 AND u.created_at < $2 GROUP BY s.practitioner_id",
    ),
];

#[derive(FromRow)]
struct IdValue {
    id: String,
    value: Option<i64>,
}

fn set(counts: &mut DayCounts, field: &str, value: i64) {
    match field {
        "recordings_uploaded" => counts.recordings_uploaded = value,
        "recordings_processed" => counts.recordings_processed = value,
        "recordings_failed" => counts.recordings_failed = value,
        "audio_ms" => counts.audio_ms = value,
        "new_patients" => counts.new_patients = value,
        "mood_sum" => counts.mood_sum = value,
        "mood_count" => counts.mood_count = value,
        _ => counts.cost_micro_usd = value,
    }
}

/// Every practitioner's counts for the period `[start, end)`.
pub async fn practitioner_counts(
    db: &Db,
    start: i64,
    end: i64,
) -> sqlx::Result<BTreeMap<String, DayCounts>> {
    let mut all: BTreeMap<String, DayCounts> = BTreeMap::new();
    for (field, sql) in PER_PRACTITIONER {
        let rows = sqlx::query_as::<_, IdValue>(sql)
            .bind(start)
            .bind(end)
            .fetch_all(db)
            .await?;
        for row in rows {
            set(
                all.entry(row.id).or_default(),
                field,
                row.value.unwrap_or(0),
            );
        }
    }
    Ok(all)
}

/// 95th percentile (nearest rank) of `values`, sorted in place.
pub fn p95(values: &mut [i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (values.len() * 95).div_ceil(100);
    Some(values[rank.max(1) - 1])
}

#[derive(FromRow)]
struct FinishedJob {
    kind: String,
    state: String,
    run_ms: Option<i64>,
}

/// Computes day `day` and replaces its rows.
pub async fn compute_day(db: &Db, day: NaiveDate) -> sqlx::Result<DaySummary> {
    let (start, end) = day_bounds(day);
    let label = day.to_string();
    let practitioners = practitioner_counts(db, start, end).await?;

    let mut platform = DayCounts::default();
    for c in practitioners.values() {
        platform.recordings_uploaded += c.recordings_uploaded;
        platform.recordings_processed += c.recordings_processed;
        platform.recordings_failed += c.recordings_failed;
        platform.audio_ms += c.audio_ms;
        platform.new_patients += c.new_patients;
        platform.mood_sum += c.mood_sum;
        platform.mood_count += c.mood_count;
    }
    // Every call counts for the platform, for a session or not.
    platform.cost_micro_usd = sqlx::query_scalar::<_, Option<i64>>(
        "SELECT CAST(SUM(cost_micro_usd) AS BIGINT) FROM provider_usage \
         WHERE created_at >= $1 AND created_at < $2",
    )
    .bind(start)
    .bind(end)
    .fetch_one(db)
    .await?
    .unwrap_or(0);
    let users_registered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE created_at >= $1 AND created_at < $2")
            .bind(start)
            .bind(end)
            .fetch_one(db)
            .await?;

    let finished = sqlx::query_as::<_, FinishedJob>(
        "SELECT kind, state, finished_at - started_at AS run_ms FROM jobs \
         WHERE state IN ('done', 'dead') AND finished_at >= $1 AND finished_at < $2",
    )
    .bind(start)
    .bind(end)
    .fetch_all(db)
    .await?;
    let mut by_kind: BTreeMap<String, (i64, i64, Vec<i64>)> = BTreeMap::new();
    for job in finished {
        let entry = by_kind.entry(job.kind).or_default();
        if job.state == "done" {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        entry.2.extend(job.run_ms.filter(|ms| *ms >= 0));
    }

    let computed_at = now_ms();
    let mut tx = db.begin().await?;
    for delete in [
        "DELETE FROM daily_stats WHERE day = $1",
        "DELETE FROM daily_platform_stats WHERE day = $1",
        "DELETE FROM daily_job_stats WHERE day = $1",
    ] {
        sqlx::query(delete).bind(&label).execute(&mut *tx).await?;
    }
    let mut written = 0;
    for (practitioner_id, c) in &practitioners {
        // A practitioner deleted meanwhile has no account to hang the row on: skipped.
        let inserted = sqlx::query(
            "INSERT INTO daily_stats (practitioner_id, day, recordings_uploaded, \
             recordings_processed, recordings_failed, audio_ms, new_patients, mood_sum, \
             mood_count, cost_micro_usd, computed_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
             WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)",
        )
        .bind(practitioner_id)
        .bind(&label)
        .bind(c.recordings_uploaded)
        .bind(c.recordings_processed)
        .bind(c.recordings_failed)
        .bind(c.audio_ms)
        .bind(c.new_patients)
        .bind(c.mood_sum)
        .bind(c.mood_count)
        .bind(c.cost_micro_usd)
        .bind(computed_at)
        .execute(&mut *tx)
        .await?;
        written += inserted.rows_affected() as usize;
    }
    sqlx::query(
        "INSERT INTO daily_platform_stats (day, users_registered, recordings_uploaded, \
         recordings_processed, recordings_failed, audio_ms, new_patients, mood_sum, mood_count, \
         cost_micro_usd, computed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&label)
    .bind(users_registered)
    .bind(platform.recordings_uploaded)
    .bind(platform.recordings_processed)
    .bind(platform.recordings_failed)
    .bind(platform.audio_ms)
    .bind(platform.new_patients)
    .bind(platform.mood_sum)
    .bind(platform.mood_count)
    .bind(platform.cost_micro_usd)
    .bind(computed_at)
    .execute(&mut *tx)
    .await?;
    let job_kinds = by_kind.len();
    for (kind, (done, dead, mut run_ms)) in by_kind {
        sqlx::query(
            "INSERT INTO daily_job_stats (day, kind, done, dead, p95_run_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&label)
        .bind(&kind)
        .bind(done)
        .bind(dead)
        .bind(p95(&mut run_ms))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(DaySummary {
        practitioners: written,
        platform,
        users_registered,
        job_kinds,
    })
}

/// The last day `daily_platform_stats` has, if any.
pub async fn last_computed_day(db: &Db) -> sqlx::Result<Option<NaiveDate>> {
    let day: Option<String> = sqlx::query_scalar("SELECT MAX(day) FROM daily_platform_stats")
        .fetch_one(db)
        .await?;
    Ok(day.and_then(|d| d.parse().ok()))
}

/// One practitioner's stored day rows in `[from, to]` (inclusive labels).
pub async fn cost_between(
    db: &Db,
    practitioner_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<i64> {
    let sum: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(cost_micro_usd) AS BIGINT) FROM daily_stats \
         WHERE practitioner_id = $1 AND day >= $2 AND day <= $3",
    )
    .bind(practitioner_id)
    .bind(from.to_string())
    .bind(to.to_string())
    .fetch_one(db)
    .await?;
    Ok(sum.unwrap_or(0))
}

/// A practitioner's provider cost in `[start, end)`, live from the calls.
pub async fn live_cost(db: &Db, practitioner_id: &str, start: i64, end: i64) -> sqlx::Result<i64> {
    let sum: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(u.cost_micro_usd) AS BIGINT) FROM provider_usage u \
         JOIN sessions s ON s.id = u.session_id \
         WHERE s.practitioner_id = $1 AND u.created_at >= $2 AND u.created_at < $3",
    )
    .bind(practitioner_id)
    .bind(start)
    .bind(end)
    .fetch_one(db)
    .await?;
    Ok(sum.unwrap_or(0))
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

/// One patient's week, as stored or computed live.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WeekProgress {
    pub sessions: i64,
    pub mood_sum: i64,
    pub mood_count: i64,
    pub improving: i64,
    pub declining: i64,
    pub stable: i64,
    pub fluctuating: i64,
    /// `(topic, sessions)`, most frequent first, at most five.
    pub top_topics: Vec<(String, i64)>,
    pub action_items: i64,
    pub risk_flags: i64,
}

#[derive(FromRow)]
struct MetricsOfWeek {
    patient_id: String,
    practitioner_id: String,
    mood_score: i64,
    mood_trajectory: String,
    topics: String,
    action_item_count: i64,
    risk_flag_count: i64,
}

/// Topics kept per week.
const TOP_TOPICS: usize = 5;

/// Every patient's progress in `week` (only `patient_id`'s when given), live from the
/// processed sessions: `patient_id -> (practitioner_id, progress)`.
pub async fn week_progress(
    db: &Db,
    week: Week,
    patient_id: Option<&str>,
) -> sqlx::Result<BTreeMap<String, (String, WeekProgress)>> {
    let (start, end) = week.bounds();
    let rows = sqlx::query_as::<_, MetricsOfWeek>(
        "SELECT patient_id, practitioner_id, mood_score, mood_trajectory, topics, \
         action_item_count, risk_flag_count FROM session_metrics \
         WHERE session_date >= $1 AND session_date < $2 \
         AND (CAST($3 AS TEXT) IS NULL OR patient_id = $3)",
    )
    .bind(start)
    .bind(end)
    .bind(patient_id)
    .fetch_all(db)
    .await?;
    let mut by_patient: BTreeMap<String, (String, WeekProgress, Vec<String>)> = BTreeMap::new();
    for row in rows {
        let entry = by_patient.entry(row.patient_id).or_insert_with(|| {
            (
                row.practitioner_id.clone(),
                WeekProgress::default(),
                Vec::new(),
            )
        });
        let p = &mut entry.1;
        p.sessions += 1;
        p.mood_sum += row.mood_score;
        p.mood_count += 1;
        match row.mood_trajectory.as_str() {
            "improving" => p.improving += 1,
            "declining" => p.declining += 1,
            "stable" => p.stable += 1,
            _ => p.fluctuating += 1,
        }
        p.action_items += row.action_item_count;
        p.risk_flags += row.risk_flag_count;
        entry.2.push(row.topics);
    }
    Ok(by_patient
        .into_iter()
        .map(|(patient, (practitioner, mut progress, topics))| {
            progress.top_topics = count_topics(topics.iter().map(String::as_str));
            progress.top_topics.truncate(TOP_TOPICS);
            (patient, (practitioner, progress))
        })
        .collect())
}

/// Computes `week` for every patient and replaces its snapshot rows; returns the patients.
pub async fn snapshot_week(db: &Db, week: Week) -> sqlx::Result<usize> {
    let progress = week_progress(db, week, None).await?;
    let label = week.label();
    let computed_at = now_ms();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM patient_progress WHERE week = $1")
        .bind(&label)
        .execute(&mut *tx)
        .await?;
    let mut written = 0;
    for (patient_id, (practitioner_id, p)) in &progress {
        let topics: Vec<serde_json::Value> = p
            .top_topics
            .iter()
            .map(|(topic, count)| serde_json::json!({ "topic": topic, "count": count }))
            .collect();
        // A patient deleted since the session has no row to keep (ON DELETE CASCADE would
        // remove it anyway); skip it rather than fail the week.
        let inserted = sqlx::query(
            "INSERT INTO patient_progress (patient_id, practitioner_id, week, sessions, mood_sum, \
             mood_count, improving, declining, stable, fluctuating, top_topics, action_items, \
             risk_flags, computed_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14 WHERE EXISTS (SELECT 1 FROM patients WHERE id = $1)",
        )
        .bind(patient_id)
        .bind(practitioner_id)
        .bind(&label)
        .bind(p.sessions)
        .bind(p.mood_sum)
        .bind(p.mood_count)
        .bind(p.improving)
        .bind(p.declining)
        .bind(p.stable)
        .bind(p.fluctuating)
        .bind(serde_json::Value::Array(topics).to_string())
        .bind(p.action_items)
        .bind(p.risk_flags)
        .bind(computed_at)
        .execute(&mut *tx)
        .await?;
        written += inserted.rows_affected() as usize;
    }
    sqlx::query("DELETE FROM weekly_snapshot_runs WHERE week = $1")
        .bind(&label)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO weekly_snapshot_runs (week, computed_at) VALUES ($1, $2)")
        .bind(&label)
        .bind(computed_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(written)
}

/// Whether `week`'s snapshot was computed.
pub async fn week_snapshotted(db: &Db, week: Week) -> sqlx::Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT week FROM weekly_snapshot_runs WHERE week = $1")
            .bind(week.label())
            .fetch_optional(db)
            .await?;
    Ok(found.is_some())
}

#[derive(FromRow)]
struct ProgressRow {
    week: String,
    sessions: i64,
    mood_sum: i64,
    mood_count: i64,
    improving: i64,
    declining: i64,
    stable: i64,
    fluctuating: i64,
    top_topics: String,
    action_items: i64,
    risk_flags: i64,
}

/// A patient's stored weeks in `[from, to]`, by label.
pub async fn stored_progress(
    db: &Db,
    patient_id: &str,
    from: Week,
    to: Week,
) -> sqlx::Result<BTreeMap<String, WeekProgress>> {
    let rows = sqlx::query_as::<_, ProgressRow>(
        "SELECT week, sessions, mood_sum, mood_count, improving, declining, stable, fluctuating, \
         top_topics, action_items, risk_flags FROM patient_progress \
         WHERE patient_id = $1 AND week >= $2 AND week <= $3",
    )
    .bind(patient_id)
    .bind(from.label())
    .bind(to.label())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let topics: Vec<serde_json::Value> =
                serde_json::from_str(&r.top_topics).unwrap_or_default();
            let top_topics = topics
                .iter()
                .filter_map(|t| Some((t["topic"].as_str()?.to_owned(), t["count"].as_i64()?)))
                .collect();
            (
                r.week,
                WeekProgress {
                    sessions: r.sessions,
                    mood_sum: r.mood_sum,
                    mood_count: r.mood_count,
                    improving: r.improving,
                    declining: r.declining,
                    stable: r.stable,
                    fluctuating: r.fluctuating,
                    top_topics,
                    action_items: r.action_items,
                    risk_flags: r.risk_flags,
                },
            )
        })
        .collect())
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

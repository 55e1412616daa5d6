//! What a practitioner's analytics and progress reports read of their own practice: counts,
//! moods and topics of their processed sessions (`session_metrics`, one row per processed
//! session) and which weeks were snapshotted. The rollups the maintenance jobs write are in
//! [`super::stats`].

use std::collections::BTreeSet;

use sqlx::FromRow;

use super::Db;

/// Patients on the practitioner's record.
pub async fn patients(db: &Db, practitioner_id: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM patients WHERE practitioner_id = $1")
        .bind(practitioner_id)
        .fetch_one(db)
        .await
}

/// Patients with a processed session held at or after `since` (ms).
pub async fn active_patients(db: &Db, practitioner_id: &str, since: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(DISTINCT patient_id) FROM session_metrics \
         WHERE practitioner_id = $1 AND session_date >= $2",
    )
    .bind(practitioner_id)
    .bind(since)
    .fetch_one(db)
    .await
}

/// Processed sessions held in `[start, end)` (ms).
pub async fn sessions_between(
    db: &Db,
    practitioner_id: &str,
    start: i64,
    end: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM session_metrics \
         WHERE practitioner_id = $1 AND session_date >= $2 AND session_date < $3",
    )
    .bind(practitioner_id)
    .bind(start)
    .bind(end)
    .fetch_one(db)
    .await
}

/// The sum and count of mood scores.
#[derive(Debug, Clone, FromRow)]
pub struct MoodSum {
    pub mood_sum: Option<i64>,
    pub mood_count: i64,
}

/// The mood scores of the sessions held at or after `since` (ms), summed.
pub async fn mood_since(db: &Db, practitioner_id: &str, since: i64) -> sqlx::Result<MoodSum> {
    sqlx::query_as(
        "SELECT CAST(SUM(mood_score) AS BIGINT) AS mood_sum, COUNT(*) AS mood_count \
         FROM session_metrics WHERE practitioner_id = $1 AND session_date >= $2",
    )
    .bind(practitioner_id)
    .bind(since)
    .fetch_one(db)
    .await
}

/// One processed session's day and mood.
#[derive(Debug, Clone, FromRow)]
pub struct SessionMood {
    pub session_date: i64,
    pub mood_score: i64,
}

/// The day and mood of each session held in `[start, end)` (ms).
pub async fn moods_between(
    db: &Db,
    practitioner_id: &str,
    start: i64,
    end: i64,
) -> sqlx::Result<Vec<SessionMood>> {
    sqlx::query_as(
        "SELECT session_date, mood_score FROM session_metrics \
         WHERE practitioner_id = $1 AND session_date >= $2 AND session_date < $3",
    )
    .bind(practitioner_id)
    .bind(start)
    .bind(end)
    .fetch_all(db)
    .await
}

/// The topic lists (JSON arrays) of the sessions held at or after `since` (ms).
pub async fn topic_lists_since(
    db: &Db,
    practitioner_id: &str,
    since: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT topics FROM session_metrics WHERE practitioner_id = $1 AND session_date >= $2",
    )
    .bind(practitioner_id)
    .bind(since)
    .fetch_all(db)
    .await
}

/// The weeks (`2026-W47`) from `first` to `last` whose snapshots were written.
pub async fn snapshotted_weeks(db: &Db, first: &str, last: &str) -> sqlx::Result<BTreeSet<String>> {
    let weeks: Vec<String> =
        sqlx::query_scalar("SELECT week FROM weekly_snapshot_runs WHERE week >= $1 AND week <= $2")
            .bind(first)
            .bind(last)
            .fetch_all(db)
            .await?;
    Ok(weeks.into_iter().collect())
}

/// A processed session as a progress report reads it: when (ms), how long (ms), mood score,
/// mood trajectory, topics (a JSON array) and how many risk flags.
pub type ReportedSession = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
);

/// The processed sessions of patient `patient_id` held at or after `since` (ms), oldest first.
pub async fn patient_sessions_since(
    db: &Db,
    patient_id: &str,
    since: i64,
) -> sqlx::Result<Vec<ReportedSession>> {
    sqlx::query_as(
        "SELECT session_date, duration_ms, mood_score, mood_trajectory, topics, \
         risk_flag_count FROM session_metrics WHERE patient_id = $1 AND session_date >= $2 \
         ORDER BY session_date, session_id",
    )
    .bind(patient_id)
    .bind(since)
    .fetch_all(db)
    .await
}

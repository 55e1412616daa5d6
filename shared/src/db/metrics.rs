//! The `session_metrics` table: one analytics row per processed session, rewritten when its
//! notes are extracted again.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};

/// The analytics row of a processed session.
#[derive(Debug, Clone, FromRow)]
pub struct MetricsRow {
    pub session_id: String,
    pub practitioner_id: String,
    pub patient_id: String,
    pub session_date: i64,
    pub duration_ms: Option<i64>,
    pub mood_score: i64,
    pub mood_trajectory: String,
    /// JSON array.
    pub topics: String,
    pub strategy_count: i64,
    pub action_item_count: i64,
    pub risk_flag_count: i64,
}

/// Writes (or rewrites, after a re-extraction) the metrics row.
pub async fn upsert(conn: &mut AnyConnection, m: &MetricsRow) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM session_metrics WHERE session_id = $1")
        .bind(&m.session_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO session_metrics (session_id, practitioner_id, patient_id, session_date, \
         duration_ms, mood_score, mood_trajectory, topics, strategy_count, action_item_count, \
         risk_flag_count, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&m.session_id)
    .bind(&m.practitioner_id)
    .bind(&m.patient_id)
    .bind(m.session_date)
    .bind(m.duration_ms)
    .bind(m.mood_score)
    .bind(&m.mood_trajectory)
    .bind(&m.topics)
    .bind(m.strategy_count)
    .bind(m.action_item_count)
    .bind(m.risk_flag_count)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// The metrics row of a session (tests, later analytics).
pub async fn find(db: &Db, session_id: &str) -> sqlx::Result<Option<MetricsRow>> {
    sqlx::query_as::<_, MetricsRow>(
        "SELECT session_id, practitioner_id, patient_id, session_date, duration_ms, mood_score, \
         mood_trajectory, topics, strategy_count, action_item_count, risk_flag_count \
         FROM session_metrics WHERE session_id = $1",
    )
    .bind(session_id)
    .fetch_optional(db)
    .await
}

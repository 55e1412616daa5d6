//! The `provider_usage` table: one row per paid provider call, keyed by the job that made it
//! (and the session it was for, when there is one), with its estimated cost.

use sqlx::FromRow;

use super::{Db, new_id};

/// One paid provider call.
#[derive(Debug, Clone, FromRow)]
pub struct UsageRow {
    pub stage: String,
    pub model: String,
    pub audio_ms: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micro_usd: i64,
    pub created_at: i64,
}

/// Records one paid call of job `job_id` for practice `tenant`, made for session
/// `session_id` if it was for one.
pub async fn insert(
    db: &Db,
    job_id: &str,
    tenant: Option<&str>,
    session_id: Option<&str>,
    usage: &UsageRow,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO provider_usage (id, job_id, session_id, stage, model, audio_ms, \
         prompt_tokens, completion_tokens, cost_micro_usd, created_at, tenant) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(new_id().to_string())
    .bind(job_id)
    .bind(session_id)
    .bind(&usage.stage)
    .bind(&usage.model)
    .bind(usage.audio_ms)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(usage.cost_micro_usd)
    .bind(usage.created_at)
    .bind(tenant)
    .execute(db)
    .await?;
    Ok(())
}

/// Every paid call of a session, oldest first.
pub async fn of_session(db: &Db, session_id: &str) -> sqlx::Result<Vec<UsageRow>> {
    sqlx::query_as::<_, UsageRow>(
        "SELECT stage, model, audio_ms, prompt_tokens, completion_tokens, cost_micro_usd, \
         created_at FROM provider_usage WHERE session_id = $1 ORDER BY created_at, id",
    )
    .bind(session_id)
    .fetch_all(db)
    .await
}

/// What practice `tenant` spent on paid calls in `[from, to)` (ms), in millionths of a dollar,
/// and how many calls: one range of `provider_usage_tenant`.
pub async fn spent_by(db: &Db, tenant: &str, from: i64, to: i64) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT), COUNT(*) FROM provider_usage \
         WHERE tenant = $1 AND created_at >= $2 AND created_at < $3",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_one(db)
    .await
}

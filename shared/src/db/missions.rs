//! The `mission_drafts` and `missions` tables. A draft is `queued`, `generating`, then
//! `ready` (with its plan, model, tokens and cost) or `failed` (with the reason); a mission is
//! a confirmed plan. The questionnaire and plan are JSON text: schedule and health details,
//! never in a job payload. Reads are scoped: the coach who owns the client record, and the
//! client's own linked account; anyone else finds nothing.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};
use crate::lifecycle::{DraftStatus, update_to};

/// A draft row.
#[derive(Debug, Clone, FromRow)]
pub struct DraftRow {
    pub id: String,
    pub practitioner_id: String,
    pub patient_id: String,
    pub requested_by: String,
    pub questionnaire: String,
    #[sqlx(try_from = "String")]
    pub status: DraftStatus,
    pub error: Option<String>,
    pub job_id: Option<String>,
    pub plan: Option<String>,
    pub model_used: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost_micro_usd: Option<i64>,
    pub generated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A mission row.
#[derive(Debug, Clone, FromRow)]
pub struct MissionRow {
    pub id: String,
    pub practitioner_id: String,
    pub patient_id: String,
    pub draft_id: Option<String>,
    pub created_by: Option<String>,
    pub questionnaire: String,
    pub plan: String,
    pub planned_on: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const DRAFT_COLUMNS: &str = "d.id, d.practitioner_id, d.patient_id, d.requested_by, \
    d.questionnaire, d.status, d.error, d.job_id, d.plan, d.model_used, d.prompt_tokens, \
    d.completion_tokens, d.cost_micro_usd, d.generated_at, d.created_at, d.updated_at";
const MISSION_COLUMNS: &str = "m.id, m.practitioner_id, m.patient_id, m.draft_id, \
    m.created_by, m.questionnaire, m.plan, m.planned_on, m.created_at, m.updated_at";
/// Who may read a row of `alias`: its coach, or the account linked to its client record.
const READABLE: &str = "(practitioner_id = $1 OR patient_id IN \
    (SELECT p.id FROM patients p WHERE p.user_id = $1))";

fn readable(alias: &str) -> String {
    READABLE
        .replace("practitioner_id", &format!("{alias}.practitioner_id"))
        .replace("patient_id IN", &format!("{alias}.patient_id IN"))
}

/// What a new draft holds.
pub struct NewDraft<'a> {
    pub id: &'a str,
    pub practitioner_id: &'a str,
    pub patient_id: &'a str,
    pub requested_by: &'a str,
    pub questionnaire: &'a str,
    pub job_id: &'a str,
    pub idempotency_key: Option<&'a str>,
    /// What the request with that key asked for ([`super::idempotency`]).
    pub idempotency_fingerprint: Option<&'a str>,
}

/// Stores a new draft, `queued`, in the transaction that enqueues its job.
pub async fn insert_draft(conn: &mut AnyConnection, new: &NewDraft<'_>) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO mission_drafts (id, practitioner_id, patient_id, requested_by, \
         questionnaire, status, job_id, idempotency_key, idempotency_fingerprint, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $9)",
    )
    .bind(new.id)
    .bind(new.practitioner_id)
    .bind(new.patient_id)
    .bind(new.requested_by)
    .bind(new.questionnaire)
    .bind(new.job_id)
    .bind(new.idempotency_key)
    .bind(new.idempotency_fingerprint)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The draft `id`, unscoped (workers).
pub async fn find_draft<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> sqlx::Result<Option<DraftRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DRAFT_COLUMNS} FROM mission_drafts d WHERE d.id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The draft `id` if `user_id` may read it.
pub async fn find_draft_for(db: &Db, user_id: &str, id: &str) -> sqlx::Result<Option<DraftRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DRAFT_COLUMNS} FROM mission_drafts d WHERE d.id = $2 AND {}",
        readable("d")
    )))
    .bind(user_id)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// A page of the drafts `user_id` may read, newest first, before id `before` (for the data
/// export: the API reads drafts one at a time).
pub async fn list_drafts(
    db: &Db,
    user_id: &str,
    before: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<DraftRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DRAFT_COLUMNS} FROM mission_drafts d WHERE {} \
         AND (CAST($2 AS TEXT) IS NULL OR d.id < $2) ORDER BY d.id DESC LIMIT $3",
        readable("d")
    )))
    .bind(user_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The draft an earlier request of `user_id` with the same `Idempotency-Key` made.
pub async fn find_draft_by_key(
    db: &Db,
    user_id: &str,
    key: &str,
) -> sqlx::Result<Option<DraftRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DRAFT_COLUMNS} FROM mission_drafts d WHERE d.requested_by = $1 \
         AND d.idempotency_key = $2"
    )))
    .bind(user_id)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// `queued` (or a `generating` left by a crashed attempt) → `generating`; false when the
/// draft is gone or finished.
pub async fn begin_generating(db: &Db, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "mission_drafts",
        DraftStatus::Generating,
        "updated_at = $2",
        "id = $1",
    )))
    .bind(id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What the model's calls for one draft cost.
#[derive(Debug, Clone, Default)]
pub struct DraftUsage {
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micro_usd: i64,
}

/// `generating` → `ready` with the plan; false when the draft changed meanwhile.
pub async fn finish_draft(
    conn: &mut AnyConnection,
    id: &str,
    plan: &str,
    usage: &DraftUsage,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "mission_drafts",
        DraftStatus::Ready,
        "error = NULL, plan = $2, model_used = $3, prompt_tokens = $4, completion_tokens = $5, \
         cost_micro_usd = $6, generated_at = $7, updated_at = $7",
        "id = $1",
    )))
    .bind(id)
    .bind(plan)
    .bind(&usage.model)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(usage.cost_micro_usd)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records why an attempt failed; `dead` makes the draft `failed`. True when it changed.
pub async fn fail_draft(
    db: impl sqlx::AnyExecutor<'_>,
    id: &str,
    error: &str,
    dead: bool,
) -> sqlx::Result<bool> {
    // Alive, the draft stays `generating` (or becomes it) while the job is retried.
    let status = if dead {
        DraftStatus::Failed
    } else {
        DraftStatus::Generating
    };
    // What its paid calls cost so far, every attempt's: a failed draft was paid for too.
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "mission_drafts",
        status,
        "error = $2, updated_at = $3, \
         model_used = (SELECT MAX(model) FROM provider_usage u WHERE u.job_id = mission_drafts.job_id), \
         prompt_tokens = (SELECT SUM(prompt_tokens) FROM provider_usage u WHERE u.job_id = mission_drafts.job_id), \
         completion_tokens = (SELECT SUM(completion_tokens) FROM provider_usage u WHERE u.job_id = mission_drafts.job_id), \
         cost_micro_usd = (SELECT SUM(cost_micro_usd) FROM provider_usage u WHERE u.job_id = mission_drafts.job_id)",
        "id = $1",
    )))
    .bind(id)
    .bind(error)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A failed draft waits for its job again (an admin's retry); false if it moved on.
pub async fn requeue_draft(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "mission_drafts",
        DraftStatus::Queued,
        "error = NULL, updated_at = $2",
        "id = $1",
    )))
    .bind(id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A draft whose job was held waits for its practice's budget (`budget_exceeded`, with
/// `message`); false when it moved on.
pub async fn hold_draft(conn: &mut AnyConnection, id: &str, message: &str) -> sqlx::Result<bool> {
    draft_moves_to(conn, id, DraftStatus::BudgetExceeded, Some(message)).await
}

/// A held draft waits for its job again (its job was released).
pub async fn release_draft(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    let sql = crate::lifecycle::update_from(
        "mission_drafts",
        &[DraftStatus::BudgetExceeded],
        DraftStatus::Queued,
        "error = $2, updated_at = $3",
        "id = $1",
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(None::<String>)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stops a draft in progress (or held): `cancelled`, with `why`.
pub async fn cancel_draft(conn: &mut AnyConnection, id: &str, why: &str) -> sqlx::Result<bool> {
    draft_moves_to(conn, id, DraftStatus::Cancelled, Some(why)).await
}

/// Moves a draft to `next` from every state that enters it, with `error`.
async fn draft_moves_to(
    conn: &mut AnyConnection,
    id: &str,
    next: DraftStatus,
    error: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "mission_drafts",
        next,
        "error = $2, updated_at = $3",
        "id = $1",
    )))
    .bind(id)
    .bind(error)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a confirmed mission; false (nothing stored) when its draft was confirmed already.
pub async fn insert_mission(db: &Db, row: &MissionRow) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO missions (id, practitioner_id, patient_id, draft_id, created_by, \
         questionnaire, plan, planned_on, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
         ON CONFLICT (draft_id) WHERE draft_id IS NOT NULL DO NOTHING",
    )
    .bind(&row.id)
    .bind(&row.practitioner_id)
    .bind(&row.patient_id)
    .bind(&row.draft_id)
    .bind(&row.created_by)
    .bind(&row.questionnaire)
    .bind(&row.plan)
    .bind(&row.planned_on)
    .bind(row.created_at)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The mission confirmed from draft `draft_id`, if any.
pub async fn mission_of_draft(db: &Db, draft_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT id FROM missions WHERE draft_id = $1")
        .bind(draft_id)
        .fetch_optional(db)
        .await
}

/// The mission `id` if `user_id` may read it.
pub async fn find_mission_for(
    db: &Db,
    user_id: &str,
    id: &str,
) -> sqlx::Result<Option<MissionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MISSION_COLUMNS} FROM missions m WHERE m.id = $2 AND {}",
        readable("m")
    )))
    .bind(user_id)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// A page of the missions `user_id` may read, newest first, before id `before`, optionally
/// of one client.
pub async fn list_missions(
    db: &Db,
    user_id: &str,
    patient_id: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<MissionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MISSION_COLUMNS} FROM missions m WHERE {} \
         AND (CAST($2 AS TEXT) IS NULL OR m.patient_id = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR m.id < $3) ORDER BY m.id DESC LIMIT $4",
        readable("m")
    )))
    .bind(user_id)
    .bind(patient_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Replaces a mission's plan.
pub async fn update_plan(db: &Db, id: &str, plan: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE missions SET plan = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(plan)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes a mission.
pub async fn delete_mission(db: &Db, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM missions WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

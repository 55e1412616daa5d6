//! A session's stage changes: each a guarded `UPDATE` (`WHERE status IN (...)` and the job
//! that owns the stage), so a duplicate delivery or a session deleted mid-job changes nothing.

use super::*;
use crate::lifecycle::update_from;
use SessionStatus::{
    BudgetExceeded, Cancelled, Extracting, Failed, Processed, Transcribed, Transcribing, Uploaded,
};

/// Moves a session into a running stage if it is waiting for it (or already in it, for a
/// retried attempt). False means the job has nothing to do.
pub async fn begin_stage(db: &Db, id: &str, stage: Stage, job_id: &str) -> sqlx::Result<bool> {
    // Waiting for the stage, or in it already (a retried attempt takes it over).
    let running = stage.running_status();
    let started = format!("{}_started_at", stage.as_str());
    let sql = update_from(
        "sessions",
        &[stage.queued_status(), running],
        running,
        &format!("job_id = $2, updated_at = $3, {started} = COALESCE({started}, $3)"),
        "id = $1",
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(job_id)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the transcript and moves the session to `transcribed` (with the extraction job
/// enqueued in the same transaction).
pub async fn finish_transcription(
    conn: &mut AnyConnection,
    id: &str,
    transcript: &str,
    segments_json: &str,
    duration_ms: Option<i64>,
    next_job_id: &str,
) -> sqlx::Result<bool> {
    let sql = update_from(
        "sessions",
        &[Transcribing],
        Transcribed,
        "transcript = $2, segments = $3, duration_ms = COALESCE($4, duration_ms), job_id = $5, \
         error = NULL, transcription_finished_at = $6, updated_at = $6",
        "id = $1",
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(transcript)
        .bind(segments_json)
        .bind(duration_ms)
        .bind(next_job_id)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the notes and marks the session processed.
pub async fn finish_extraction(
    conn: &mut AnyConnection,
    id: &str,
    notes_json: &str,
) -> sqlx::Result<bool> {
    let sql = update_from(
        "sessions",
        &[Extracting],
        Processed,
        "notes = $2, error = NULL, extraction_finished_at = $3, updated_at = $3",
        "id = $1",
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(notes_json)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records why the stage's last attempt failed while it waits for a retry.
pub async fn note_attempt_error(db: &Db, id: &str, job_id: &str, error: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET error = $3, updated_at = $4 WHERE id = $1 AND job_id = $2")
        .bind(id)
        .bind(job_id)
        .bind(error)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(())
}

/// Marks the session failed at `stage` (when that stage's job is dead).
pub async fn fail(
    db: impl sqlx::AnyExecutor<'_>,
    id: &str,
    job_id: &str,
    stage: Stage,
    error: &str,
) -> sqlx::Result<()> {
    // From every state but `processed` (notes once stored stay) and `cancelled`.
    let sql = update_from(
        "sessions",
        &[
            Uploaded,
            Transcribing,
            Transcribed,
            Extracting,
            Failed,
            BudgetExceeded,
        ],
        Failed,
        "failed_stage = $3, error = $4, updated_at = $5",
        "id = $1 AND job_id = $2",
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(job_id)
        .bind(stage.as_str())
        .bind(error)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(())
}

/// Queues `stage` again, clearing the failure and the stage's timings: transcription from
/// `failed` (a retry), extraction from `failed` or `processed` (a retry or a re-extraction)
/// when a transcript exists. False if the session is in neither state.
pub async fn requeue_stage(
    conn: &mut AnyConnection,
    id: &str,
    stage: Stage,
    job_id: &str,
) -> sqlx::Result<bool> {
    let sql = match stage {
        Stage::Transcription => update_from(
            "sessions",
            &[Failed],
            Uploaded,
            "failed_stage = NULL, error = NULL, job_id = $2, transcription_started_at = NULL, \
             transcription_finished_at = NULL, updated_at = $3",
            "id = $1",
        ),
        Stage::Extraction => update_from(
            "sessions",
            &[Failed, Processed],
            Transcribed,
            "failed_stage = NULL, error = NULL, job_id = $2, extraction_started_at = NULL, \
             extraction_finished_at = NULL, updated_at = $3",
            "id = $1 AND transcript IS NOT NULL",
        ),
    };
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(job_id)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the session waiting for its practice's budget at `stage` (its job was held before it
/// could start): `budget_exceeded`, with `message`. False when the session moved on.
pub async fn hold_stage(
    conn: &mut AnyConnection,
    id: &str,
    job_id: &str,
    stage: Stage,
    message: &str,
) -> sqlx::Result<bool> {
    let sql = update_from(
        "sessions",
        &[stage.queued_status(), stage.running_status()],
        BudgetExceeded,
        "error = $3, updated_at = $4",
        "id = $1 AND job_id = $2",
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(job_id)
        .bind(message)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A session held at `stage` waits for that stage again (its job was released).
pub async fn release_stage(
    conn: &mut AnyConnection,
    id: &str,
    job_id: &str,
    stage: Stage,
) -> sqlx::Result<bool> {
    let sql = update_from(
        "sessions",
        &[BudgetExceeded],
        stage.queued_status(),
        "error = NULL, updated_at = $3",
        "id = $1 AND job_id = $2",
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(job_id)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stops a session in progress (or waiting for its budget): `cancelled`, with `why`, and the
/// chunks a transcription kept for its retries go. False when it was not in progress.
pub async fn cancel(conn: &mut AnyConnection, id: &str, why: &str) -> sqlx::Result<bool> {
    let sql = update_from(
        "sessions",
        &[
            Uploaded,
            Transcribing,
            Transcribed,
            Extracting,
            BudgetExceeded,
        ],
        Cancelled,
        "error = $2, updated_at = $3",
        "id = $1",
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(why)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    crate::db::chunks::clear_chunks(conn, id).await?;
    Ok(done.rows_affected() == 1)
}

/// Records a chunked transcription's progress (`done` of `total` chunks) while the session's
/// stage is this job's.
pub async fn note_chunks(
    db: &Db,
    id: &str,
    job_id: &str,
    done: i64,
    total: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sessions SET chunks_done = $3, chunks_total = $4, updated_at = $5 \
         WHERE id = $1 AND job_id = $2 AND status = 'transcribing'",
    )
    .bind(id)
    .bind(job_id)
    .bind(done)
    .bind(total)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

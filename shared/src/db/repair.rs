//! The repair pass: no subject stays in a working state once its job is over. A dead job's
//! subject is failed in the transaction that records it dead; this pass catches what that
//! could not cover (a dead hook that failed, rows from before that rule, a job row gone), so
//! that a session, an export, a data export or a draft always ends somewhere a user can act on
//! (`failed`, which both retry paths accept). It runs at worker start and in the daily cleanup.

use super::{Db, now_ms};
use crate::lifecycle::{
    DataExportStatus, DraftStatus, ExportStatus, Lifecycle, update_from, update_to,
};
use crate::sessions::{SessionStatus, Stage};

/// The error a repaired subject shows.
const ERROR: &str = "its job ended without finishing it; retry to run it again";

/// Subjects moved to `failed`, per table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repaired {
    pub sessions: u64,
    pub exports: u64,
    pub data_exports: u64,
    pub drafts: u64,
}

impl Repaired {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.sessions + self.exports + self.data_exports + self.drafts
    }
}

/// "No job of this subject can still move it": its job is dead, cancelled, done without
/// moving it, or gone (a held job still may: it waits for its budget). `table` names the subject's table (with its `job_id` column).
fn job_is_over(table: &str) -> String {
    format!(
        "{table}.job_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = {table}.job_id \
         AND jobs.state IN ('pending', 'running', 'failed', 'held'))"
    )
}

/// Fails every subject stuck in a working state whose job is over, and says how many. Every
/// change of a subject commits with its job's (the outbox, the dead hook), so a subject whose
/// job is over can only be stuck: no grace period is needed.
pub async fn resolve_stuck(db: &Db) -> sqlx::Result<Repaired> {
    let now = now_ms();
    let mut repaired = Repaired::default();
    // A session's stage job that finished moved it on in the same transaction, so only a dead
    // or missing job leaves it stuck; `done` with the session still waiting is a newer stage's
    // job not yet written, never the case, but not worth failing a session over.
    use SessionStatus::{BudgetExceeded, Extracting, Failed, Transcribed, Transcribing, Uploaded};
    let sessions = update_from(
        "sessions",
        &[
            Uploaded,
            Transcribing,
            Transcribed,
            Extracting,
            BudgetExceeded,
        ],
        Failed,
        &format!(
            "failed_stage = CASE WHEN status IN ('{}', '{}') \
             OR (status = '{}' AND transcript IS NULL) THEN '{}' ELSE '{}' END, \
             error = $1, updated_at = $2",
            Uploaded.name(),
            Transcribing.name(),
            BudgetExceeded.name(),
            Stage::Transcription.as_str(),
            Stage::Extraction.as_str(),
        ),
        "job_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs \
         WHERE jobs.id = sessions.job_id \
         AND jobs.state IN ('pending', 'running', 'failed', 'done', 'held'))",
    );
    repaired.sessions = run(db, &sessions, now).await?;
    // The other subjects have one job each: any end of it that left them working is stuck.
    let mut others = [0; 3];
    let set = "error = $1, updated_at = $2";
    let stuck = [
        update_to(
            "exports",
            ExportStatus::Failed,
            set,
            &job_is_over("exports"),
        ),
        update_to(
            "data_exports",
            DataExportStatus::Failed,
            set,
            &job_is_over("data_exports"),
        ),
        update_to(
            "mission_drafts",
            DraftStatus::Failed,
            set,
            &job_is_over("mission_drafts"),
        ),
    ];
    for (count, sql) in others.iter_mut().zip(stuck) {
        *count = run(db, &sql, now).await?;
    }
    [repaired.exports, repaired.data_exports, repaired.drafts] = others;
    Ok(repaired)
}

async fn run(db: &Db, sql: &str, now: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(ERROR)
        .bind(now)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

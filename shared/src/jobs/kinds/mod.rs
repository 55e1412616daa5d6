//! Every job kind as the rest of Tend names it: each payload with its queue, retry policy and
//! kind name ([`super::JobPayload`]). The API and the scheduler enqueue these; `tend-worker`
//! alone knows how to run them.

pub mod account_mail;
pub mod backup;
pub mod cleanup;
pub mod daily_stats;
pub mod data_export;
pub mod draft_mission;
pub mod email;
pub mod erase_account;
pub mod extract;
pub mod invitation;
pub mod render_export;
pub mod retry_dead;
pub mod rotate_signing_key;
pub mod transcribe;
pub mod weekly_snapshots;

use futures::future::BoxFuture;
use sqlx::AnyConnection;

use crate::{
    db,
    jobs::{JobPayload, Queue, RetryPolicy},
    sessions::Stage,
};

/// What the rest of Tend knows of one kind: its name, queue, policy and admin-retry hook.
/// `tend-worker`'s registry adds what it does, and a test there holds the two lists equal.
pub struct KindInfo {
    /// Its name in the ledger.
    pub name: &'static str,
    /// The queue it runs on.
    pub queue: Queue,
    /// Attempts, timeout and backoff.
    pub policy: RetryPolicy,
    admin_retry:
        for<'a> fn(&'a mut AnyConnection, &'a str, &'a str) -> BoxFuture<'a, Result<(), String>>,
}

impl KindInfo {
    /// The entry of kind `J`.
    pub const fn of<J: JobPayload>() -> Self {
        Self {
            name: J::KIND,
            queue: J::QUEUE,
            policy: J::POLICY,
            admin_retry: admin_retry_hook::<J>,
        }
    }
}

/// Every job kind.
pub static KINDS: &[KindInfo] = &[
    KindInfo::of::<email::SendEmail>(),
    KindInfo::of::<invitation::SendInvitation>(),
    KindInfo::of::<account_mail::AnswerMailRequest>(),
    KindInfo::of::<cleanup::Cleanup>(),
    KindInfo::of::<daily_stats::DailyStats>(),
    KindInfo::of::<weekly_snapshots::WeeklySnapshots>(),
    KindInfo::of::<backup::Backup>(),
    KindInfo::of::<erase_account::EraseAccount>(),
    KindInfo::of::<transcribe::TranscribeSession>(),
    KindInfo::of::<extract::ExtractNotes>(),
    KindInfo::of::<render_export::RenderExport>(),
    KindInfo::of::<draft_mission::DraftMission>(),
    KindInfo::of::<data_export::DataExport>(),
    KindInfo::of::<retry_dead::RetryDeadJobs>(),
    KindInfo::of::<rotate_signing_key::RotateSigningKey>(),
];

/// The kind named `name`.
pub fn find(name: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|kind| kind.name == name)
}

/// Why an admin's retry of a job did not happen.
#[derive(Debug)]
pub enum RetryRefused {
    /// The job is neither dead nor failed (finished, running, or gone).
    NotRetryable,
    /// Its kind's subject moved on meanwhile (a session retried by its practitioner): why.
    SubjectMovedOn(String),
}

/// An admin's retry of the job `id` of kind `kind` (with `payload`; `dead` when it is dead),
/// in `conn`'s transaction: due now with its attempts counted afresh and, for a dead job, the
/// kind's [`JobPayload::on_admin_retry`] hook putting its subject back to waiting. On a
/// refusal the caller rolls its transaction (or savepoint) back. The single retry of the
/// admin API and the bulk `retry_dead_jobs` both go through here.
pub async fn admin_retry(
    conn: &mut AnyConnection,
    id: &str,
    kind: &str,
    payload: &str,
    dead: bool,
) -> sqlx::Result<Result<(), RetryRefused>> {
    if !db::job_admin::retry(conn, id).await? {
        return Ok(Err(RetryRefused::NotRetryable));
    }
    if dead
        && let Some(kind) = find(kind)
        && let Err(reason) = (kind.admin_retry)(conn, payload, id).await
    {
        return Ok(Err(RetryRefused::SubjectMovedOn(reason)));
    }
    Ok(Ok(()))
}

fn admin_retry_hook<'a, J: JobPayload>(
    conn: &'a mut AnyConnection,
    payload: &'a str,
    job_id: &'a str,
) -> BoxFuture<'a, Result<(), String>> {
    Box::pin(async move {
        let payload: J = serde_json::from_str(payload).map_err(|e| e.to_string())?;
        payload.on_admin_retry(conn, job_id).await
    })
}

/// An admin retry's hook that put its subject back to waiting (`Ok(true)`), or found it had
/// moved on (`Ok(false)`: `moved_on` says how).
fn requeued(done: sqlx::Result<bool>, moved_on: &str) -> Result<(), String> {
    match done {
        Ok(true) => Ok(()),
        Ok(false) => Err(moved_on.to_owned()),
        Err(err) => Err(format!("database: {err}")),
    }
}

/// A session stage's admin retry: the session waits for this job again.
async fn session_stage_retried(
    conn: &mut AnyConnection,
    session_id: &uuid::Uuid,
    stage: Stage,
    job_id: &str,
) -> Result<(), String> {
    match db::sessions::requeue_stage(conn, &session_id.to_string(), stage, job_id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "the session no longer waits for this {} job (retried, processed or deleted)",
            stage.as_str()
        )),
        Err(err) => Err(format!("database: {err}")),
    }
}

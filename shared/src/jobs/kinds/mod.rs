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
    jobs::{Enqueued, JobPayload, JobTx, Periodic, Priority, Queue, RetryPolicy, ScheduleSpec},
    sessions::Stage,
};

/// What the rest of Tend knows of one kind: its name, queue, policy, admin-retry hook and,
/// for a periodic kind, its schedule. `tend-worker`'s registry adds what it does, and a test
/// there holds the two lists equal.
pub struct KindInfo {
    /// Its name in the ledger.
    pub name: &'static str,
    /// The queue it runs on.
    pub queue: Queue,
    /// Attempts, timeout and backoff.
    pub policy: RetryPolicy,
    /// How soon its jobs go among their queue's waiting work, by default.
    pub priority: Priority,
    /// When the scheduler fires it, for a [`Periodic`] kind.
    pub schedule: Option<ScheduleSpec>,
    /// Whether its jobs pay the provider ([`JobPayload::PAID`]).
    pub paid: bool,
    /// Whether its jobs may be cancelled ([`JobPayload::CANCELLABLE`]).
    pub cancellable: bool,
    admin_retry:
        for<'a> fn(&'a mut AnyConnection, &'a str, &'a str) -> BoxFuture<'a, Result<(), String>>,
    subject_of: fn(&str) -> Option<crate::events::Subject>,
    subject: for<'a> fn(
        &'a mut AnyConnection,
        &'a str,
        SubjectEvent<'a>,
    ) -> BoxFuture<'a, sqlx::Result<()>>,
}

/// What happened to a job that its subject (a session, an export, a draft) must follow.
#[derive(Debug, Clone, Copy)]
pub enum SubjectEvent<'a> {
    /// The job `job_id` was held before it started: `message` says why.
    Held { job_id: &'a str, message: &'a str },
    /// The held job `job_id` is due again.
    Released { job_id: &'a str },
    /// The job was cancelled: `why` says by whom.
    Cancelled { why: &'a str },
}

impl KindInfo {
    /// The entry of kind `J`.
    pub const fn of<J: JobPayload>() -> Self {
        Self {
            name: J::KIND,
            queue: J::QUEUE,
            policy: J::POLICY,
            priority: J::PRIORITY,
            schedule: None,
            paid: J::PAID,
            cancellable: J::CANCELLABLE,
            admin_retry: admin_retry_hook::<J>,
            // Only kinds that work on a record have one: no payload is read for the others
            // (every finished job asks).
            subject_of: if J::CANCELLABLE {
                subject_of::<J>
            } else {
                no_subject
            },
            subject: subject_hook::<J>,
        }
    }

    /// The entry of the periodic kind `J`, with its schedule.
    pub const fn periodic<J: Periodic>() -> Self {
        Self {
            schedule: Some(ScheduleSpec {
                name: J::KIND,
                kind: J::KIND,
                default_cron: J::DEFAULT_CRON,
                description: J::DESCRIPTION,
                dry_run: J::DRY_RUN,
                enqueue: enqueue_tick::<J>,
            }),
            ..Self::of::<J>()
        }
    }
}

/// Every job kind. A new kind is its payload file in this folder and its line here (and its
/// handler in `tend-worker`); the scheduler, the admin API and the README's table of kinds are
/// derived from this list or tested against it.
pub static KINDS: &[KindInfo] = &[
    KindInfo::of::<email::SendEmail>(),
    KindInfo::of::<invitation::SendInvitation>(),
    KindInfo::of::<account_mail::AnswerMailRequest>(),
    KindInfo::periodic::<daily_stats::DailyStats>(),
    KindInfo::periodic::<weekly_snapshots::WeeklySnapshots>(),
    KindInfo::periodic::<backup::Backup>(),
    KindInfo::periodic::<cleanup::Cleanup>(),
    KindInfo::of::<erase_account::EraseAccount>(),
    KindInfo::of::<transcribe::TranscribeSession>(),
    KindInfo::of::<extract::ExtractNotes>(),
    KindInfo::of::<render_export::RenderExport>(),
    KindInfo::of::<draft_mission::DraftMission>(),
    KindInfo::of::<data_export::DataExport>(),
    KindInfo::of::<retry_dead::RetryDeadJobs>(),
    KindInfo::periodic::<rotate_signing_key::RotateSigningKey>(),
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

/// Stores the run of the periodic kind `J` for the tick at `tick_ms` unless `dedup_key` was
/// stored before (`None` then).
fn enqueue_tick<'a, J: Periodic>(
    tx: &'a mut JobTx,
    tick_ms: i64,
    dry_run: bool,
    dedup_key: &'a str,
) -> BoxFuture<'a, sqlx::Result<Option<Enqueued>>> {
    Box::pin(async move {
        tx.enqueue_once(&J::for_tick(tick_ms, dry_run), dedup_key)
            .await
    })
}

/// Runs the subject hook of the job of kind `kind` with `payload` for `event`, in `conn`'s
/// transaction ([`JobPayload::on_hold`], [`JobPayload::on_release`],
/// [`JobPayload::on_cancel`]). An unknown kind or unreadable payload has no subject to follow.
pub async fn subject_follows(
    conn: &mut AnyConnection,
    kind: &str,
    payload: &str,
    event: SubjectEvent<'_>,
) -> sqlx::Result<()> {
    match find(kind) {
        Some(kind) => (kind.subject)(conn, payload, event).await,
        None => Ok(()),
    }
}

/// Cancels the selected unfinished jobs of the cancellable kinds (work on a session, an
/// export, a data export, a draft: [`JobPayload::CANCELLABLE`]) in `conn`'s transaction on
/// behalf of `by`, with `why` as their error, and cancels their subjects at once (a session, an export, a draft reads
/// `cancelled`): waiting jobs end now; running ones are stopped by their worker within a lease
/// renewal, and whatever such an attempt still finishes is refused by its subject's guarded
/// update. The practitioner's cancel routes, the admin's cancel of one job and of a practice's
/// every job all go through here.
pub async fn cancel(
    conn: &mut AnyConnection,
    selection: db::jobs::holds::Selection<'_>,
    by: &str,
    why: &str,
) -> sqlx::Result<db::jobs::holds::Cancellation> {
    let kinds: Vec<&str> = KINDS
        .iter()
        .filter(|kind| kind.cancellable)
        .map(|kind| kind.name)
        .collect();
    let cancellation = db::jobs::holds::cancel(conn, selection, &kinds, by, why).await?;
    for job in cancellation
        .cancelled
        .iter()
        .chain(cancellation.stopping.iter())
    {
        let event = SubjectEvent::Cancelled { why };
        subject_follows(conn, &job.kind, &job.payload, event).await?;
    }
    Ok(cancellation)
}

/// The record the job of kind `kind` with `payload` works on, if any
/// ([`JobPayload::subject`]).
pub fn subject_of_job(kind: &str, payload: &str) -> Option<crate::events::Subject> {
    find(kind).and_then(|kind| (kind.subject_of)(payload))
}

fn no_subject(_payload: &str) -> Option<crate::events::Subject> {
    None
}

fn subject_of<J: JobPayload>(payload: &str) -> Option<crate::events::Subject> {
    serde_json::from_str::<J>(payload).ok()?.subject()
}

fn subject_hook<'a, J: JobPayload>(
    conn: &'a mut AnyConnection,
    payload: &'a str,
    event: SubjectEvent<'a>,
) -> BoxFuture<'a, sqlx::Result<()>> {
    Box::pin(async move {
        let Ok(payload) = serde_json::from_str::<J>(payload) else {
            tracing::warn!(
                kind = J::KIND,
                "unreadable payload: no subject follows the job"
            );
            return Ok(());
        };
        match event {
            SubjectEvent::Held { job_id, message } => payload.on_hold(conn, job_id, message).await,
            SubjectEvent::Released { job_id } => payload.on_release(conn, job_id).await,
            SubjectEvent::Cancelled { why } => payload.on_cancel(conn, why).await,
        }
    })
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

/// `seconds` as the README writes a duration: `90 s`, `30 min`, `2 h`.
#[cfg(test)]
fn duration_text(seconds: u64) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(path: &str) -> String {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
    }

    /// The README's table of job kinds is the registry's, row for row: a kind added,
    /// moved or retuned here fails this test until the README says so too.
    #[test]
    fn the_readme_lists_every_kind_as_declared() {
        let mut table = String::from(
            "| kind | queue | priority | attempts | timeout | schedule (UTC, `SCHEDULE_<KIND>`) |\n\
             | --- | --- | --- | --- | --- | --- |\n",
        );
        for kind in KINDS {
            let schedule = kind
                .schedule
                .map(|s| format!("`{}`", s.default_cron))
                .unwrap_or_default();
            table.push_str(&format!(
                "| `{}` | `{}` | {} | {} | {} | {} |\n",
                kind.name,
                kind.queue,
                kind.priority,
                kind.policy.max_attempts,
                duration_text(kind.policy.timeout.as_secs()),
                schedule
            ));
        }
        let readme = repo_file("README.md");
        let start = readme
            .find("<!-- kinds -->\n")
            .expect("the README's kinds table marker")
            + "<!-- kinds -->\n".len();
        let end = readme
            .find("<!-- /kinds -->")
            .expect("the table's end marker");
        assert_eq!(
            &readme[start..end],
            table,
            "README.md's table of kinds differs from KINDS; the table should read:\n{table}"
        );
    }

    /// Each queue has its workers in the Kubernetes manifests, and every kind runs on one.
    #[test]
    fn every_queue_has_its_workers_in_the_deploy_files() {
        let manifests = repo_file("deploy/k8s/tend.yaml");
        for queue in Queue::ALL {
            assert!(
                manifests.contains(&format!("{{ name: WORKER_QUEUES, value: {queue} }}")),
                "deploy/k8s/tend.yaml runs no worker for the {queue} queue"
            );
        }
        let readme = repo_file("README.md");
        for queue in Queue::ALL {
            assert!(
                readme.contains(&format!("`{queue}`")),
                "the README does not name the {queue} queue"
            );
        }
    }
}

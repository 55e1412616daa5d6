//! How the admin API shows a job: its ledger row, its attempts and the record it works on.

use super::*;

/// A job as admins see it.
#[derive(Debug, Object)]
pub struct AdminJobView {
    /// The job id.
    pub id: String,
    /// What it does, e.g. `send_email`.
    pub kind: String,
    /// The queue it runs on.
    pub queue: String,
    /// Where it is.
    pub state: JobState,
    /// Attempts started (counted afresh after an admin's retry).
    pub attempts: i64,
    /// Attempts allowed in all.
    pub max_attempts: i64,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// The worker that holds it, or held it last.
    pub worker: Option<String>,
    /// Whether an admin asked to kill it (or somebody to cancel it).
    pub killed: bool,
    /// Why a held job waits: `budget_exceeded` (its practice's monthly budget is spent;
    /// `last_error` says how much).
    pub held_reason: Option<String>,
    /// Who cancelled it (a user id), when it was cancelled.
    pub cancelled_by: Option<String>,
    /// The request that started it (its `X-Request-Id`: the API's log lines for it).
    pub request_id: Option<String>,
    /// The user whose request started it.
    pub created_by: Option<String>,
    /// Whose work it is (the practice's account); absent for the system's own jobs. Tenants
    /// with work waiting on a queue take turns.
    pub tenant: Option<String>,
    /// 0 goes first, 9 last: 1 for work somebody waits for, 8 for housekeeping.
    pub priority: u8,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it may run next.
    pub run_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the latest attempt ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&JobRow> for AdminJobView {
    fn from(row: &JobRow) -> Self {
        Self {
            id: row.id.clone(),
            kind: row.kind.clone(),
            queue: row.queue.clone(),
            state: row.state.into(),
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            last_error: row.last_error.clone(),
            worker: row.worker.clone(),
            killed: row.killed_at.is_some(),
            held_reason: row.held_reason.clone(),
            cancelled_by: row.cancelled_by.clone(),
            request_id: row.request_id.clone(),
            created_by: row.created_by.clone(),
            tenant: row.tenant.clone(),
            priority: row.priority.value(),
            created_at: ms_to_datetime(row.created_at),
            run_at: ms_to_datetime(row.run_at),
            started_at: row.started_at.map(ms_to_datetime),
            finished_at: row.finished_at.map(ms_to_datetime),
        }
    }
}

/// A job's new priority.
#[derive(Debug, Object)]
pub struct SetPriorityRequest {
    /// 0 goes first, 9 last: 1 is work somebody waits for, 8 housekeeping.
    #[oai(validator(minimum(value = "0"), maximum(value = "9")))]
    pub priority: u8,
}

/// One finished attempt.
#[derive(Debug, Object)]
pub struct AttemptView {
    /// Which attempt of the job's count it was.
    pub attempt: i64,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (absent while it runs).
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `done`, `failed` (retried), `dead`, `killed`, `cancelled`, `lost` (its worker stopped
    /// renewing the lease), `cut` (its worker shut down) or `refused` (it finished after
    /// another attempt had claimed the job; its outcome was discarded).
    pub outcome: String,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<AttemptRow> for AttemptView {
    fn from(row: AttemptRow) -> Self {
        Self {
            attempt: row.attempt,
            worker: row.worker,
            started_at: ms_to_datetime(row.started_at),
            finished_at: Some(ms_to_datetime(row.finished_at)),
            outcome: row.outcome,
            error: row.error,
        }
    }
}

/// What a job is for, read from its payload's ids.
#[derive(Debug, Object)]
pub struct JobSubject {
    /// `session`, `patient`, `user` or `mail_request`.
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// One job with its history.
#[derive(Debug, Object)]
pub struct AdminJobDetail {
    /// The job.
    pub job: AdminJobView,
    /// Its payload: ids only, never patient text or secrets.
    pub payload: serde_json::Value,
    /// What it belongs to.
    pub subject: Option<JobSubject>,
    /// Every attempt, oldest first, however it ended (done, failed, dead, killed, lost with
    /// its worker, cut at shutdown, refused because another attempt held the job), then the
    /// running one.
    pub attempts: Vec<AttemptView>,
    /// The estimated cost of its paid provider calls, in US dollars.
    pub cost_usd: f64,
    /// What it did, for the jobs that report (cleanup, a queue's retry of its dead jobs):
    /// updated as it goes, final once the job is done.
    pub report: Option<MaintenanceReport>,
}

/// One page of jobs.
#[derive(Debug, Object)]
pub struct AdminJobPage {
    /// The jobs, newest first.
    pub items: Vec<AdminJobView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub(super) enum JobPageResponse {
    /// A page of jobs.
    #[oai(status = 200)]
    Ok(Json<AdminJobPage>),
}

#[derive(ApiResponse)]
pub(super) enum JobDetailResponse {
    /// The job.
    #[oai(status = 200)]
    Ok(Json<AdminJobDetail>),
}

#[derive(ApiResponse)]
pub(super) enum JobActionResponse {
    /// Done: the job as it is now.
    #[oai(status = 200)]
    Ok(Json<AdminJobView>),
    /// Asked: a running job stops at its worker's next lease renewal (within seconds), a
    /// waiting one when a worker takes it; either way its kind's dead hook runs.
    #[oai(status = 202)]
    Accepted(Json<AdminJobView>),
}

#[derive(ApiResponse)]
pub(super) enum JobDeleted {
    /// Deleted, with its history.
    #[oai(status = 204)]
    Done,
}

pub(super) fn ledger_state(state: JobState) -> LedgerState {
    match state {
        JobState::Pending => LedgerState::Pending,
        JobState::Running => LedgerState::Running,
        JobState::Done => LedgerState::Done,
        JobState::Failed => LedgerState::Failed,
        JobState::Dead => LedgerState::Dead,
        JobState::Held => LedgerState::Held,
        JobState::Cancelled => LedgerState::Cancelled,
    }
}

/// What the payload's ids say the job is for (the first of them that a payload names).
pub(super) fn subject_of(payload: &serde_json::Value) -> Option<JobSubject> {
    ["session_id", "patient_id", "user_id", "request_id"]
        .iter()
        .find_map(|key| {
            let id = payload.get(*key)?.as_str()?;
            let kind = key
                .trim_end_matches("_id")
                .replace("request", "mail_request");
            Some(JobSubject {
                kind,
                id: id.to_owned(),
            })
        })
}

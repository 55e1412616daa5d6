//! Owners stop their own work in progress: a recorded session, an export, a personal data
//! export or a mission draft. One road for all four: the record moves to `cancelled` by its
//! guarded update (409 when it is not in progress), then its job is cancelled in the same
//! transaction (`tend_shared::jobs::kinds::cancel`): a waiting job never runs, a running
//! attempt is stopped at its worker's next lease renewal, as an admin's kill stops it, and
//! whatever it still finishes is refused by the record's guarded updates.

use tend_shared::{
    db::{self, audit::AuditAction, jobs::holds::Selection},
    events::Subject,
    jobs::{JobTx, kinds},
};

use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    state::AppState,
};

/// What an owner cancels.
#[derive(Debug, Clone, Copy)]
pub enum Work {
    Session,
    Export,
    DataExport,
    Draft,
}

impl Work {
    /// The record, as live events name it.
    fn subject(self, id: &str) -> Subject {
        let id = id.to_owned();
        match self {
            Work::Session => Subject::Session(id),
            Work::Export => Subject::Export(id),
            Work::DataExport => Subject::DataExport(id),
            Work::Draft => Subject::Draft(id),
        }
    }

    /// Its name in answers and the audit log.
    fn noun(self) -> &'static str {
        match self {
            Work::Session => "session",
            Work::Export => "export",
            Work::DataExport => "data_export",
            Work::Draft => "draft",
        }
    }
}

/// The error cancelled work records.
const WHY: &str = "cancelled by its owner";

/// Cancels `work` `id` on behalf of `user_id`, and audits it; 409 when it is not in
/// progress. Its job is taken first, then the record, in the order a worker recording an
/// outcome takes them (the other order could deadlock on PostgreSQL), and the record's job is
/// read in the transaction, so a stage that moved on to its next job meanwhile is caught too.
pub async fn cancel_own(
    state: &AppState,
    user_id: &str,
    meta: &RequestMeta,
    work: Work,
    id: &str,
) -> ApiResult<()> {
    let mut tx = state.begin().await?;
    // The jobs looked at, and those this cancellation took.
    let mut seen = Vec::new();
    let mut cancelled_jobs = Vec::new();
    loop {
        let Some((job_id, status)) = current(&mut tx, work, id).await? else {
            return Err(ApiError::not_found(work.noun()));
        };
        let status_now = status.clone();
        match job_id {
            Some(job_id) if !seen.contains(&job_id) => {
                let took = kinds::cancel(&mut tx, Selection::Job(&job_id), user_id, WHY).await?;
                if !took.is_empty() {
                    cancelled_jobs.push(job_id.clone());
                }
                seen.push(job_id);
            }
            // No job left to take: the record itself.
            _ => {
                let moved = match work {
                    Work::Session => db::sessions::cancel(&mut tx, id, WHY).await?,
                    Work::Export => db::exports::cancel(&mut tx, id, WHY).await?,
                    Work::DataExport => db::data_exports::cancel(&mut tx, id, WHY).await?,
                    Work::Draft => db::missions::cancel_draft(&mut tx, id, WHY).await?,
                };
                // Moved now, or already by its job's cancellation in this transaction.
                let moved_by_job = status_now == "cancelled" && !cancelled_jobs.is_empty();
                if !moved && !moved_by_job {
                    return Err(ApiError::conflict(
                        "not-cancellable",
                        format!(
                            "Only work in progress can be cancelled; this {} is {status_now}.",
                            work.noun().replace('_', " ")
                        ),
                    ));
                }
                break;
            }
        }
    }
    let detail = serde_json::json!({ "what": work.noun(), "id": id, "jobs": cancelled_jobs });
    db::audit::record(
        &mut tx,
        AuditAction::WorkCancelled,
        Some(user_id),
        &meta.origin(),
        Some(detail),
    )
    .await?;
    tx.commit().await?;
    state
        .events
        .publish_state(&state.db, &work.subject(id))
        .await;
    tracing::info!(what = work.noun(), id, "work cancelled by its owner");
    Ok(())
}

/// The record's job and status, read in the transaction (`None` when it is gone).
async fn current(
    tx: &mut JobTx,
    work: Work,
    id: &str,
) -> ApiResult<Option<(Option<String>, String)>> {
    let conn = &mut **tx;
    Ok(match work {
        Work::Session => db::sessions::find(conn, id)
            .await?
            .map(|r| (r.job_id.clone(), r.status().as_str().to_owned())),
        Work::Export => db::exports::find(conn, id)
            .await?
            .map(|r| (r.job_id, r.status.as_str().to_owned())),
        Work::DataExport => db::data_exports::find(conn, id)
            .await?
            .map(|r| (r.job_id, r.status.as_str().to_owned())),
        Work::Draft => db::missions::find_draft(conn, id)
            .await?
            .map(|r| (r.job_id, r.status.as_str().to_owned())),
    })
}

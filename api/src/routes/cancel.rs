//! Owners stop their own work in progress: a recorded session, an export, a personal data
//! export or a mission draft. One road for all four: the record moves to `cancelled` by its
//! guarded update (409 when it is not in progress), then its job is cancelled in the same
//! transaction (`tend_shared::jobs::kinds::cancel`): a waiting job never runs, a running
//! attempt is stopped at its worker's next lease renewal, as an admin's kill stops it, and
//! whatever it still finishes is refused by the record's guarded updates.

use tend_shared::{
    db::{self, audit::AuditAction, jobs::holds::Selection},
    jobs::kinds,
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

/// Cancels `work` `id` (whose job is `job_id`) on behalf of `user_id`, and audits it. `status`
/// is the record's state as read, for the 409 when it is not in progress.
pub async fn cancel_own(
    state: &AppState,
    user_id: &str,
    meta: &RequestMeta,
    work: Work,
    id: &str,
    job_id: Option<&str>,
    status: &str,
) -> ApiResult<()> {
    let mut tx = state.begin().await?;
    let moved = match work {
        Work::Session => db::sessions::cancel(&mut tx, id, WHY).await?,
        Work::Export => db::exports::cancel(&mut tx, id, WHY).await?,
        Work::DataExport => db::data_exports::cancel(&mut tx, id, WHY).await?,
        Work::Draft => db::missions::cancel_draft(&mut tx, id, WHY).await?,
    };
    if !moved {
        return Err(ApiError::conflict(
            "not-cancellable",
            format!(
                "Only work in progress can be cancelled; this {} is {status}.",
                work.noun().replace('_', " ")
            ),
        ));
    }
    if let Some(job_id) = job_id {
        kinds::cancel(&mut tx, Selection::Job(job_id), user_id, WHY).await?;
    }
    let detail = serde_json::json!({ "what": work.noun(), "id": id, "job_id": job_id });
    db::audit::record(
        &mut tx,
        AuditAction::WorkCancelled,
        Some(user_id),
        &meta.origin(),
        Some(detail),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(what = work.noun(), id, "work cancelled by its owner");
    Ok(())
}

//! `/admin/practices/{id}`: a practice's monthly budget for paid processing (read, set,
//! back to the default), and cancelling every unfinished job of the practice.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use tend_shared::{
    budget,
    db::{self, audit::AuditAction, jobs::holds::Selection},
    domain::Role,
    jobs::{Enqueued, JobTx, kinds},
};

use super::audited;
use crate::{
    body::{BodyRules, JsonBody},
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    guards::Admin,
    routes::{
        ApiTags,
        practice_budget::{self, PracticeBudgetView},
    },
    state::AppState,
};

/// A practice's own monthly budget.
#[derive(Debug, Object)]
pub struct SetBudgetRequest {
    /// US dollars per calendar month (UTC) for paid provider calls, 0 or more; `null` for no
    /// limit. Work held for the budget resumes at once when the new budget allows it.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub monthly_budget_usd: Option<f64>,
}

impl BodyRules for SetBudgetRequest {}

/// What cancelling a practice's jobs did.
#[derive(Debug, Object)]
pub struct PracticeCancellation {
    /// Waiting or held jobs now cancelled: they will not run.
    pub cancelled: usize,
    /// Running jobs asked to stop: each stops at its worker's next lease renewal (seconds).
    pub stopping: usize,
}

#[derive(ApiResponse)]
enum BudgetResponse {
    /// The practice's budget this month.
    #[oai(status = 200)]
    Ok(Json<PracticeBudgetView>),
}

#[derive(ApiResponse)]
enum CancelResponse {
    /// Done: nothing of the practice's was running.
    #[oai(status = 200)]
    Ok(Json<PracticeCancellation>),
    /// Asked: the running jobs stop within seconds.
    #[oai(status = 202)]
    Accepted(Json<PracticeCancellation>),
}

/// The admin practice operations.
pub struct AdminPracticesApi;

#[OpenApi(prefix_path = "/api/v1/admin/practices", tag = "ApiTags::Admin")]
impl AdminPracticesApi {
    /// A practice's budget this month: the limit, what its paid calls cost, what is left and
    /// how many of its jobs are held for it.
    #[oai(
        path = "/:id/budget",
        method = "get",
        operation_id = "adminGetPracticeBudget"
    )]
    async fn budget(
        &self,
        state: Data<&AppState>,
        _admin: Admin,
        id: Path<String>,
    ) -> ApiResult<BudgetResponse> {
        let practice = practice(&state, &id.0).await?;
        Ok(BudgetResponse::Ok(Json(
            practice_budget::view(&state, &practice).await?,
        )))
    }

    /// Set a practice's own monthly budget (`null`: no limit). When the new budget allows it,
    /// the practice's held work resumes at once (released and handed to the queue).
    #[oai(
        path = "/:id/budget",
        method = "put",
        operation_id = "adminSetPracticeBudget"
    )]
    async fn set_budget(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
        body: JsonBody<SetBudgetRequest>,
    ) -> ApiResult<BudgetResponse> {
        let practice = practice(&state, &id.0).await?;
        let limit = match body.0.monthly_budget_usd {
            None => None,
            Some(usd) => Some(budget::micro_usd(usd).ok_or_else(|| {
                ApiError::invalid_field("monthly_budget_usd", "must be 0 or more")
            })?),
        };
        change_budget(&state, &admin.id, &meta, &practice, Some(limit)).await
    }

    /// Remove a practice's own budget: `PRACTICE_MONTHLY_BUDGET_USD` applies again (no limit
    /// when unset), and held work resumes if that allows it.
    #[oai(
        path = "/:id/budget",
        method = "delete",
        operation_id = "adminResetPracticeBudget"
    )]
    async fn reset_budget(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<BudgetResponse> {
        let practice = practice(&state, &id.0).await?;
        change_budget(&state, &admin.id, &meta, &practice, None).await
    }

    /// Cancel every unfinished job of a practice (waiting, held and running), as its
    /// practitioner's cancel does for one: what each works on reads `cancelled`.
    #[oai(
        path = "/:id/cancel-jobs",
        method = "post",
        operation_id = "adminCancelPracticeJobs"
    )]
    async fn cancel_jobs(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<CancelResponse> {
        let practice = practice(&state, &id.0).await?;
        let mut tx = state.begin().await?;
        let selection = Selection::Tenant(&practice);
        let why = "cancelled by an admin (every job of the practice)";
        let done = kinds::cancel(&mut tx, selection, &admin.id, why).await?;
        let result = PracticeCancellation {
            cancelled: done.cancelled.len(),
            stopping: done.stopping.len(),
        };
        let detail = serde_json::json!({
            "practice_id": practice,
            "cancelled": result.cancelled,
            "stopping": result.stopping,
        });
        let action = AuditAction::PracticeJobsCancelled;
        audited(&mut tx, action, &admin.id, &meta, detail).await?;
        tx.commit().await?;
        tracing::warn!(
            practice_id = %practice,
            cancelled = result.cancelled,
            stopping = result.stopping,
            "a practice's jobs cancelled by an admin"
        );
        Ok(if result.stopping == 0 {
            CancelResponse::Ok(Json(result))
        } else {
            CancelResponse::Accepted(Json(result))
        })
    }
}

/// The practice `id`: a practitioner's account (404 for any other id).
async fn practice(state: &AppState, id: &str) -> ApiResult<String> {
    match db::users::find(&state.db, id).await? {
        Some(user) if user.role() == Role::Practitioner => Ok(user.id),
        _ => Err(ApiError::not_found("practice")),
    }
}

/// Sets `practice`'s own budget (`Some(None)`: no limit) or removes it (`None`: the default
/// applies), audited, then releases what the new budget allows and answers with it.
async fn change_budget(
    state: &AppState,
    admin_id: &str,
    meta: &RequestMeta,
    practice: &str,
    own: Option<Option<i64>>,
) -> ApiResult<BudgetResponse> {
    let mut tx = state.begin().await?;
    let recorded = match own {
        Some(limit) => {
            db::budgets::set(&mut tx, practice, limit, admin_id).await?;
            serde_json::json!(limit)
        }
        None => {
            db::budgets::forget(&mut tx, practice).await?;
            serde_json::json!("default")
        }
    };
    let detail = serde_json::json!({ "practice_id": practice, "monthly_micro_usd": recorded });
    audited(&mut tx, AuditAction::BudgetChanged, admin_id, meta, detail).await?;
    tx.commit().await?;
    release(state, practice).await?;
    Ok(BudgetResponse::Ok(Json(
        practice_budget::view(state, practice).await?,
    )))
}

/// Releases the practice's held work if its budget allows it now, and hands it to the queue.
async fn release(state: &AppState, practice: &str) -> ApiResult<()> {
    let default = state.settings.provider.default_monthly_budget_micro_usd;
    let budget = budget::of(&state.db, default, practice).await?;
    let mut tx: JobTx = state.begin().await?;
    let released = budget::release_if_allowed(&mut tx, practice, &budget).await?;
    for job in &released {
        if let Some(kind) = kinds::find(&job.kind) {
            tx.hand_over_too(Enqueued {
                id: job.id.clone(),
                queue: kind.queue,
            });
        }
    }
    tx.commit().await?;
    if !released.is_empty() {
        tracing::info!(practice_id = %practice, jobs = released.len(), "held work released");
    }
    Ok(())
}

//! A practice's monthly budget for paid processing as its practitioner and admins see it:
//! the limit, what the month's paid calls cost, what is left, and the work held for it
//! (`tend_shared::budget`).

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use tend_shared::{budget, db};

use crate::{error::ApiResult, state::AppState};

/// A practice's budget for the current calendar month (UTC).
#[derive(Debug, Object)]
pub struct PracticeBudgetView {
    /// The practice (the practitioner's account id; `tenant` on its jobs).
    pub practice_id: String,
    /// The month's first instant.
    pub month_start: DateTime<Utc>,
    /// The next month's first instant: held work resumes then by itself.
    pub month_end: DateTime<Utc>,
    /// The limit in US dollars; absent: no limit.
    pub monthly_budget_usd: Option<f64>,
    /// `practice` when an admin set this practice's own budget, `default` when
    /// `PRACTICE_MONTHLY_BUDGET_USD` applies.
    pub source: String,
    /// What this month's paid provider calls cost, estimated from the configured prices.
    pub spent_usd: f64,
    /// What is left (0 once spent); absent without a limit.
    pub remaining_usd: Option<f64>,
    /// Paid provider calls this month.
    pub paid_calls: i64,
    /// Whether paid work is held: the spending has reached the limit.
    pub exceeded: bool,
    /// The practice's jobs held for the budget (they start once it allows them).
    pub held_jobs: i64,
}

/// The budget view of practice `tenant` now.
pub async fn view(state: &AppState, tenant: &str) -> ApiResult<PracticeBudgetView> {
    let default = state.settings.provider.default_monthly_budget_micro_usd;
    let budget = budget::of(&state.db, default, tenant).await?;
    let held_jobs = db::jobs::holds::held_count(&state.db, tenant).await?;
    let usd = |micro: i64| micro as f64 / 1e6;
    Ok(PracticeBudgetView {
        practice_id: tenant.to_owned(),
        month_start: budget.month_from,
        month_end: budget.month_to,
        monthly_budget_usd: budget.limit_micro_usd.map(usd),
        source: if budget.own { "practice" } else { "default" }.to_owned(),
        spent_usd: usd(budget.spent_micro_usd),
        remaining_usd: budget.remaining_micro_usd().map(usd),
        paid_calls: budget.calls,
        exceeded: budget.exceeded(),
        held_jobs,
    })
}

//! Per-account budgets of the work that costs money (a paid provider call) or mails a third
//! party. Each request that starts such work spends one unit of its account's budget for the
//! hour; past it, a 429 with the seconds until the budget refills. Invitation mail also has a
//! budget per recipient address and day, whichever accounts send it. Budgets are counted by the
//! same limiter as the API's request limit (shared by replicas through Redis); admins read and
//! reset an account's at `/api/v1/admin/users/{id}/limits`.

use std::time::Duration;

use tend_shared::{
    auth::opaque,
    config::AccountLimits,
    domain::Email,
    ratelimit::{Decision, RateLimiter},
};

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

/// Export requests one account may make per hour.
pub const EXPORTS_PER_HOUR: u32 = 20;

/// One budget of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Session uploads: each a transcription (for audio), then an extraction.
    Uploads,
    /// Mission drafts: each a chat call.
    MissionDrafts,
    /// Notes extracted again on request: each a chat call.
    ReExtractions,
    /// Invitations sent or sent again: each a mail to someone else.
    Invitations,
    /// Exports rendered.
    Exports,
}

/// Every budget, in the order admins see them.
pub const BUDGETS: [Budget; 5] = [
    Budget::Uploads,
    Budget::MissionDrafts,
    Budget::ReExtractions,
    Budget::Invitations,
    Budget::Exports,
];

/// Every budget refills each hour.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// The per-recipient invitation budget refills each day.
const RECIPIENT_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl Budget {
    /// Its name in the admin API.
    pub fn name(self) -> &'static str {
        match self {
            Budget::Uploads => "uploads",
            Budget::MissionDrafts => "mission_drafts",
            Budget::ReExtractions => "reextractions",
            Budget::Invitations => "invitations",
            Budget::Exports => "exports",
        }
    }

    /// Units per hour, from the settings.
    pub fn limit(self, limits: &AccountLimits) -> u32 {
        match self {
            Budget::Uploads => limits.uploads_per_hour,
            Budget::MissionDrafts => limits.drafts_per_hour,
            Budget::ReExtractions => limits.reextractions_per_hour,
            Budget::Invitations => limits.invitations_per_hour,
            Budget::Exports => EXPORTS_PER_HOUR,
        }
    }

    /// The limiter's key for `user_id`'s budget.
    fn key(self, user_id: &str) -> String {
        match self {
            // The key exports were counted under before budgets had a name.
            Budget::Exports => format!("exports:account:{user_id}"),
            other => format!("budget:{}:{user_id}", other.name()),
        }
    }
}

/// Spends one unit of `user_id`'s `budget`, or answers 429 with `Retry-After`.
/// Refusals are counted in `tend_budget_refusals_total{budget}`, so abuse (or a limit set
/// too low) shows on the dashboards.
pub async fn spend(state: &AppState, budget: Budget, user_id: &str) -> ApiResult<()> {
    let limit = budget.limit(&state.settings.account_limits);
    over(state.limiter.hit(&budget.key(user_id), limit, WINDOW).await)
        .inspect_err(|_| refused(budget.name()))
}

/// Spends one invitation mail to `email` for the day (the address is kept only as a digest).
pub async fn spend_recipient_mail(state: &AppState, email: &Email) -> ApiResult<()> {
    let limit = state
        .settings
        .account_limits
        .invitation_mails_per_recipient_per_day;
    let key = recipient_key(email);
    over(state.limiter.hit(&key, limit, RECIPIENT_WINDOW).await)
        .inspect_err(|_| refused("invitation_mails_per_recipient"))
}

fn refused(budget: &'static str) {
    metrics::counter!("tend_budget_refusals_total", "budget" => budget).increment(1);
}

fn recipient_key(email: &Email) -> String {
    format!("invitation-mail:{}", opaque::digest(email.as_str()))
}

fn over(decision: Decision) -> ApiResult<()> {
    match decision {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => Err(ApiError::rate_limited(retry_after)),
    }
}

/// One budget as admins see it.
#[derive(Debug, Clone)]
pub struct BudgetUse {
    /// Which.
    pub budget: Budget,
    /// Units per hour.
    pub limit: u32,
    /// In use: spent and not come back yet.
    pub used: u32,
    /// When all of it is back (ms since the epoch).
    pub refills_at: u64,
}

/// `user_id`'s budgets now.
pub async fn usage(limiter: &RateLimiter, limits: &AccountLimits, user_id: &str) -> Vec<BudgetUse> {
    let mut uses = Vec::with_capacity(BUDGETS.len());
    for budget in BUDGETS {
        let limit = budget.limit(limits);
        let (used, back_in) = limiter.used(&budget.key(user_id), limit, WINDOW).await;
        uses.push(BudgetUse {
            budget,
            limit,
            used,
            refills_at: tend_shared::db::now_ms() as u64 + back_in.as_millis() as u64,
        });
    }
    uses
}

/// Refills every budget of `user_id` now.
pub async fn reset(limiter: &RateLimiter, user_id: &str) -> anyhow::Result<()> {
    for budget in BUDGETS {
        limiter.reset(&budget.key(user_id)).await?;
    }
    Ok(())
}

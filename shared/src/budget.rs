//! Practice budgets: what a practice may spend on paid provider calls in a calendar month
//! (UTC), what it spent (the usage ledger, `provider_usage`), and the hold on paid work past
//! it. A paid job ([`crate::jobs::JobPayload::PAID`]) of a practice whose spending has reached
//! its budget is held when a worker takes it, before any paid call; raising the budget, or the
//! next month, releases it ([`release_if_allowed`]).
//!
//! The check is made as each paid job starts, so jobs already running when the budget is
//! reached finish: the overshoot is bounded by what the practice's running jobs cost.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sqlx::AnyConnection;

use crate::{
    db::{self, Db, jobs::holds},
    jobs::kinds::{SubjectEvent, subject_follows},
};

/// A practice's budget for the month of an instant, and what it spent in it.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Millionths of a dollar per month; `None`: no limit.
    pub limit_micro_usd: Option<i64>,
    /// Whether an admin set it for the practice (otherwise `PRACTICE_MONTHLY_BUDGET_USD`).
    pub own: bool,
    /// Spent this month, in millionths of a dollar.
    pub spent_micro_usd: i64,
    /// Paid calls this month.
    pub calls: i64,
    /// The month: `[from, to)`.
    pub month_from: DateTime<Utc>,
    pub month_to: DateTime<Utc>,
}

impl Budget {
    /// What is left (never below zero); `None` without a limit.
    pub fn remaining_micro_usd(&self) -> Option<i64> {
        self.limit_micro_usd
            .map(|limit| (limit - self.spent_micro_usd).max(0))
    }

    /// Whether a paid job may not start: the spending has reached the limit.
    pub fn exceeded(&self) -> bool {
        self.limit_micro_usd
            .is_some_and(|limit| self.spent_micro_usd >= limit)
    }

    /// What a held job and its subject say.
    pub fn message(&self) -> String {
        format!(
            "the practice's monthly budget of {} for paid processing is spent ({} used since {}); \
             the work resumes when an admin raises the budget, or on {}",
            usd(self.limit_micro_usd.unwrap_or(0)),
            usd(self.spent_micro_usd),
            self.month_from.format("%Y-%m-%d"),
            self.month_to.format("%Y-%m-%d"),
        )
    }
}

/// Dollars (`12.5`) as millionths of a dollar; `None` for anything but a finite amount of 0
/// to a trillion.
pub fn micro_usd(usd: f64) -> Option<i64> {
    (usd.is_finite() && (0.0..=1e12).contains(&usd)).then(|| (usd * 1e6).round() as i64)
}

/// `$12.34` from millionths of a dollar.
fn usd(micro: i64) -> String {
    format!("${:.2}", micro as f64 / 1e6)
}

/// The calendar month (UTC) around `now_ms`: `[first day, first day of the next)`.
pub fn month_of(now_ms: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc
        .timestamp_millis_opt(now_ms)
        .single()
        .unwrap_or_else(Utc::now);
    let from = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists");
    let (year, month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let to = Utc
        .with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists");
    (from, to)
}

/// `tenant`'s budget and spending for the month of now: two index lookups. `default_limit`
/// applies unless an admin set the practice's own (`PRACTICE_MONTHLY_BUDGET_USD`).
pub async fn of(db: &Db, default_limit: Option<i64>, tenant: &str) -> sqlx::Result<Budget> {
    let (month_from, month_to) = month_of(db::now_ms());
    let own = db::budgets::find(db, tenant).await?;
    let (spent_micro_usd, calls) = db::usage::spent_by(
        db,
        tenant,
        month_from.timestamp_millis(),
        month_to.timestamp_millis(),
    )
    .await?;
    Ok(Budget {
        limit_micro_usd: match &own {
            Some(row) => row.monthly_micro_usd,
            None => default_limit,
        },
        own: own.is_some(),
        spent_micro_usd,
        calls,
        month_from,
        month_to,
    })
}

/// Releases `tenant`'s jobs held for its budget when `budget` allows them now, with their
/// subjects, in `conn`'s transaction, and returns them. The caller hands them to the queue
/// after commit (or leaves that to the relay's next pass).
pub async fn release_if_allowed(
    conn: &mut AnyConnection,
    tenant: &str,
    budget: &Budget,
) -> sqlx::Result<Vec<holds::Moved>> {
    if budget.exceeded() {
        return Ok(Vec::new());
    }
    let released = holds::release(conn, tenant, holds::BUDGET_EXCEEDED).await?;
    for job in &released {
        let event = SubjectEvent::Released { job_id: &job.id };
        subject_follows(conn, &job.kind, &job.payload, event).await?;
    }
    Ok(released)
}

/// Releases the held work of every practice whose budget allows it now (a new month began, or
/// a budget changed on another replica); returns how many jobs. The relay runs it as a chore.
pub async fn release_all_allowed(db: &Db, default_limit: Option<i64>) -> sqlx::Result<usize> {
    let mut released = 0;
    for tenant in holds::held_tenants(db, holds::BUDGET_EXCEEDED).await? {
        let budget = of(db, default_limit, &tenant).await?;
        if budget.exceeded() {
            continue;
        }
        let mut tx = db.begin().await?;
        released += release_if_allowed(&mut tx, &tenant, &budget).await?.len();
        tx.commit().await?;
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_runs_from_its_first_day_to_the_next_months() {
        let december = Utc.with_ymd_and_hms(2026, 12, 8, 13, 0, 0).unwrap();
        let (from, to) = month_of(december.timestamp_millis());
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(to, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn spending_that_reaches_the_limit_exceeds_it_and_no_limit_never_does() {
        let (month_from, month_to) = month_of(0);
        let mut budget = Budget {
            limit_micro_usd: Some(5_000_000),
            own: true,
            spent_micro_usd: 4_999_999,
            calls: 3,
            month_from,
            month_to,
        };
        assert!(!budget.exceeded());
        assert_eq!(budget.remaining_micro_usd(), Some(1));
        budget.spent_micro_usd = 5_000_000;
        assert!(budget.exceeded());
        assert!(budget.message().contains("$5.00"), "{}", budget.message());
        budget.limit_micro_usd = None;
        assert!(!budget.exceeded());
        assert_eq!(budget.remaining_micro_usd(), None);
    }
}

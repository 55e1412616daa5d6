//! `daily_stats`: the per-practitioner and platform-wide rollup of each UTC day
//! (`tend_shared::db::stats`). A run computes yesterday, and every day after the last one
//! computed that a stopped scheduler missed (at most 31 days back, none before the
//! installation started). Idempotent: a day computed twice has the same rows.

use chrono::{Days, NaiveDate};
use tend_shared::{
    db::{self, stats},
    jobs::JobError,
};

use crate::job::{Job, JobCtx};
use tend_shared::jobs::kinds::daily_stats::DailyStats;

/// Most days one run catches up.
pub const MAX_CATCH_UP_DAYS: u64 = 31;

/// The days a run at `tick_day` computes: yesterday, and the missed days since `last`
/// (bounded by [`MAX_CATCH_UP_DAYS`] and by the installation's first day).
pub fn days_to_compute(
    tick_day: NaiveDate,
    last: Option<NaiveDate>,
    installed: NaiveDate,
) -> Vec<NaiveDate> {
    let Some(yesterday) = tick_day.checked_sub_days(Days::new(1)) else {
        return Vec::new();
    };
    let bound = tick_day
        .checked_sub_days(Days::new(MAX_CATCH_UP_DAYS))
        .unwrap_or(yesterday)
        .max(installed);
    let first = match last {
        Some(last) if last < yesterday => (last + Days::new(1)).max(bound),
        Some(_) => yesterday,
        None => bound,
    };
    first.iter_days().take_while(|d| *d <= yesterday).collect()
}

impl Job for DailyStats {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let db = &ctx.env.db;
        let last = stats::last_computed_day(db)
            .await
            .map_err(|e| JobError::transient("reading the last computed day", e))?;
        let installed = db::installation::first_started_at(db)
            .await
            .map_err(|e| JobError::transient("reading the installation", e))?;
        let days = days_to_compute(
            stats::day_of(self.scheduled_for),
            last,
            stats::day_of(installed),
        );
        for day in &days {
            let started = std::time::Instant::now();
            let summary = stats::compute_day(db, *day)
                .await
                .map_err(|e| JobError::transient("computing a day's stats", e))?;
            tracing::info!(
                %day,
                practitioners = summary.practitioners,
                job_kinds = summary.job_kinds,
                ms = started.elapsed().as_millis() as u64,
                "daily stats computed"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_run_computes_yesterday_and_catches_up_missed_days_within_bounds() {
        let installed = day("2026-01-01");
        assert_eq!(
            days_to_compute(day("2026-12-01"), Some(day("2026-11-30")), installed),
            vec![day("2026-11-30")],
            "yesterday again, when it was done"
        );
        assert_eq!(
            days_to_compute(day("2026-12-01"), Some(day("2026-11-27")), installed),
            vec![day("2026-11-28"), day("2026-11-29"), day("2026-11-30")]
        );
        let long_gap = days_to_compute(day("2026-12-01"), Some(day("2026-06-01")), installed);
        assert_eq!(long_gap.len(), 31);
        assert_eq!(long_gap[0], day("2026-10-31"));
        assert_eq!(
            days_to_compute(day("2026-12-01"), None, day("2026-11-29")),
            vec![day("2026-11-29"), day("2026-11-30")],
            "nothing before the installation"
        );
    }
}

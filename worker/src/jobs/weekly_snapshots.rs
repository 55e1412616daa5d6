//! `weekly_snapshots`: one `patient_progress` row per patient per ISO week
//! (`tend_shared::db::stats`). A run snapshots the last complete week, and each earlier one a
//! stopped scheduler missed (at most 12 weeks back, none before the installation started).
//! Idempotent: a week snapshotted twice has the same rows.

use tend_shared::{
    db::{
        self,
        stats::{self, Week},
    },
    jobs::JobError,
};

use crate::job::{Job, JobCtx};
use tend_shared::jobs::kinds::weekly_snapshots::WeeklySnapshots;

/// Most weeks one run catches up.
pub const MAX_CATCH_UP_WEEKS: usize = 12;

impl Job for WeeklySnapshots {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let db = &ctx.env.db;
        let installed = db::installation::first_started_at(db)
            .await
            .map_err(|e| JobError::transient("reading the installation", e))?;
        let first_week = Week::of(stats::day_of(installed));
        let last_complete = Week::of(stats::day_of(self.scheduled_for)).previous();
        // The last complete week always (a session processed late is counted); earlier ones
        // when no snapshot has them.
        let mut weeks = vec![last_complete];
        let mut week = last_complete.previous();
        while weeks.len() < MAX_CATCH_UP_WEEKS && week >= first_week {
            let done = stats::week_snapshotted(db, week)
                .await
                .map_err(|e| JobError::transient("reading the snapshot weeks", e))?;
            if done {
                break;
            }
            weeks.push(week);
            week = week.previous();
        }
        for week in weeks.into_iter().rev() {
            let patients = stats::snapshot_week(db, week)
                .await
                .map_err(|e| JobError::transient("snapshotting a week", e))?;
            tracing::info!(week = %week.label(), patients, "weekly snapshot computed");
        }
        Ok(())
    }
}

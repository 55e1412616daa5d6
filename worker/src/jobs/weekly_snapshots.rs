//! `weekly_snapshots`: one `patient_progress` row per patient per ISO week
//! (`tend_shared::db::stats`). A run snapshots the last complete week, and each earlier one a
//! stopped scheduler missed (at most 12 weeks back, none before the installation started).
//! Idempotent: a week snapshotted twice has the same rows.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tend_shared::{
    db::{
        self,
        stats::{self, Week},
    },
    jobs::{JobError, JobPayload, Queue, RetryPolicy},
};

use crate::job::{Job, JobCtx};

/// Most weeks one run catches up.
pub const MAX_CATCH_UP_WEEKS: usize = 12;

/// The weekly snapshot for one scheduled run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeeklySnapshots {
    /// The schedule tick (ms since the epoch): the complete weeks before it are snapshotted.
    pub scheduled_for: i64,
}

impl JobPayload for WeeklySnapshots {
    const KIND: &'static str = "weekly_snapshots";
    const QUEUE: Queue = Queue::Maintenance;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        timeout: Duration::from_secs(30 * 60),
        backoff_base: Duration::from_secs(60),
        backoff_max: Duration::from_secs(30 * 60),
    };
}

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

//! An admin's "retry every dead job of this queue", as a job: a queue can hold hundreds of
//! thousands of dead jobs after an outage, more than one request should touch. The run takes
//! them in batches, each batch in one transaction with its share of the report, so a crash
//! loses nothing and a second attempt goes on where the first stopped (a retried job is no
//! longer dead, so it is not taken again).
//!
//! Each job comes back as the admin's single retry does: attempts counted afresh, and the
//! kind's `on_admin_retry` hook puts its subject (a session's stage, an export) back to
//! waiting. A job whose subject moved on meanwhile stays dead and is counted.

use tend_shared::{
    db::{
        self,
        maintenance::{CategoryReport, Report},
    },
    jobs::{
        JobError, JobPayload, Queue,
        kinds::{self, retry_dead::RetryDeadJobs},
    },
};

use crate::job::{Job, JobCtx};

/// Dead jobs retried per transaction.
const BATCH: i64 = 500;
/// The report's category of jobs made due again.
pub const RETRIED: &str = "retried";
/// The report's category of jobs left dead (their subject moved on).
pub const LEFT_DEAD: &str = "left_dead";

impl Job for RetryDeadJobs {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let queue = Queue::parse(&self.queue)
            .ok_or_else(|| JobError::Permanent(format!("no queue named {}", self.queue)))?;
        let env = ctx.env;
        let db_err = |e: sqlx::Error| JobError::transient("database", e);
        // A crashed attempt's batches are in its report: count on from there.
        let mut retried = db::maintenance::find(&env.db, &ctx.job.id)
            .await
            .map_err(db_err)?
            .and_then(|r| r.categories.into_iter().find(|c| c.category == RETRIED))
            .map_or(0, |c| c.items);
        let mut after = None;
        loop {
            let batch = db::job_admin::dead_batch(&env.db, queue, self.died_by, after, BATCH)
                .await
                .map_err(db_err)?;
            let Some(last) = batch.last() else { break };
            after = Some((last.finished_at, last.id.clone()));
            let mut tx = env.db.begin().await.map_err(db_err)?;
            for job in &batch {
                // A savepoint per job: a refused hook undoes its own retry only.
                let mut one = sqlx::Connection::begin(&mut *tx).await.map_err(db_err)?;
                let done = kinds::admin_retry(&mut one, &job.id, &job.kind, &job.payload, true)
                    .await
                    .map_err(db_err)?;
                // Refused (retried or deleted meanwhile, or its subject moved on): the
                // savepoint rolls back as it is dropped, and the job stays as it is.
                if done.is_ok() {
                    one.commit().await.map_err(db_err)?;
                    retried += 1;
                }
            }
            let report = report(retried, None);
            db::maintenance::save_in(&mut tx, &ctx.job.id, Self::KIND, &report)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            env.relay.nudge();
        }
        let left = db::job_admin::count_dead(&env.db, queue, self.died_by)
            .await
            .map_err(db_err)?;
        db::maintenance::save(
            &env.db,
            &ctx.job.id,
            Self::KIND,
            &report(retried, Some(left)),
        )
        .await
        .map_err(db_err)?;
        tracing::info!(
            queue = queue.as_str(),
            retried,
            left_dead = left,
            "dead jobs retried"
        );
        Ok(())
    }
}

/// The run's report: jobs retried so far and, once it is over, those left dead.
fn report(retried: u64, left_dead: Option<u64>) -> Report {
    let mut categories = vec![CategoryReport {
        category: RETRIED.into(),
        items: retried,
        bytes: None,
    }];
    categories.extend(left_dead.map(|items| CategoryReport {
        category: LEFT_DEAD.into(),
        items,
        bytes: None,
    }));
    Report {
        dry_run: false,
        categories,
    }
}

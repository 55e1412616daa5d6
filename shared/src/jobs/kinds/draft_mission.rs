//! What a `draft_mission` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/draft_mission.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    db,
    jobs::{JobPayload, Priority, Queue, RetryPolicy},
};

/// Draft one mission.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DraftMission {
    /// The draft row (the questionnaire stays there).
    pub draft_id: Uuid,
}

impl JobPayload for DraftMission {
    const KIND: &'static str = "draft_mission";
    const QUEUE: Queue = Queue::Extraction;
    /// The requester waits for the draft.
    const PRIORITY: Priority = Priority::INTERACTIVE;
    const CANCELLABLE: bool = true;
    const PAID: bool = true;
    /// Two chat calls at most per attempt; provider outages and 429s are retried.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        timeout: Duration::from_secs(10 * 60),
        backoff_base: Duration::from_secs(15),
        backoff_max: Duration::from_secs(15 * 60),
    };

    async fn on_admin_retry(
        &self,
        conn: &mut sqlx::AnyConnection,
        _job_id: &str,
    ) -> Result<(), String> {
        let done = db::missions::requeue_draft(conn, &self.draft_id.to_string()).await;
        super::requeued(done, "the draft is no longer failed")
    }

    async fn on_hold(
        &self,
        conn: &mut sqlx::AnyConnection,
        _job_id: &str,
        message: &str,
    ) -> sqlx::Result<()> {
        db::missions::hold_draft(conn, &self.draft_id.to_string(), message).await?;
        Ok(())
    }

    async fn on_release(&self, conn: &mut sqlx::AnyConnection, _job_id: &str) -> sqlx::Result<()> {
        db::missions::release_draft(conn, &self.draft_id.to_string()).await?;
        Ok(())
    }

    async fn on_cancel(&self, conn: &mut sqlx::AnyConnection, why: &str) -> sqlx::Result<()> {
        db::missions::cancel_draft(conn, &self.draft_id.to_string(), why).await?;
        Ok(())
    }

    fn subject(&self) -> Option<crate::events::Subject> {
        Some(crate::events::Subject::Draft(self.draft_id.to_string()))
    }
}

//! What a `extract` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/extract.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    db,
    jobs::{JobPayload, Priority, Queue, RetryPolicy},
    sessions::Stage,
};

/// Extract structured notes from the session's transcript.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractNotes {
    /// The session.
    pub session_id: Uuid,
}

impl JobPayload for ExtractNotes {
    const KIND: &'static str = "extract_notes";
    const QUEUE: Queue = Queue::Extraction;
    /// The practitioner waits for the notes.
    const PRIORITY: Priority = Priority::INTERACTIVE;
    const CANCELLABLE: bool = true;
    const PAID: bool = true;
    /// As transcription; long transcripts are several requests.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 6,
        timeout: Duration::from_secs(30 * 60),
        backoff_base: Duration::from_secs(30),
        backoff_max: Duration::from_secs(20 * 60),
    };

    async fn on_admin_retry(
        &self,
        conn: &mut sqlx::AnyConnection,
        job_id: &str,
    ) -> Result<(), String> {
        super::session_stage_retried(conn, &self.session_id, Stage::Extraction, job_id).await
    }

    async fn on_hold(
        &self,
        conn: &mut sqlx::AnyConnection,
        job_id: &str,
        message: &str,
    ) -> sqlx::Result<()> {
        let id = self.session_id.to_string();
        db::sessions::hold_stage(conn, &id, job_id, Stage::Extraction, message).await?;
        Ok(())
    }

    async fn on_release(&self, conn: &mut sqlx::AnyConnection, job_id: &str) -> sqlx::Result<()> {
        let id = self.session_id.to_string();
        db::sessions::release_stage(conn, &id, job_id, Stage::Extraction).await?;
        Ok(())
    }

    async fn on_cancel(&self, conn: &mut sqlx::AnyConnection, why: &str) -> sqlx::Result<()> {
        db::sessions::cancel(conn, &self.session_id.to_string(), why).await?;
        Ok(())
    }

    fn subject(&self) -> Option<crate::events::Subject> {
        Some(crate::events::Subject::Session(self.session_id.to_string()))
    }
}

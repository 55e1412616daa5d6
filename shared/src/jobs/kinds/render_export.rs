//! What a `render_export` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/render_export.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    db,
    jobs::{JobPayload, Priority, Queue, RetryPolicy},
};

/// Render one export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderExport {
    /// The export row.
    pub export_id: Uuid,
}

impl JobPayload for RenderExport {
    const KIND: &'static str = "render_export";
    const QUEUE: Queue = Queue::Documents;
    /// The practitioner waits for the document.
    const PRIORITY: Priority = Priority::INTERACTIVE;
    const CANCELLABLE: bool = true;
    /// Rendering takes seconds; a failure is the store or the database, worth a few retries.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        timeout: Duration::from_secs(5 * 60),
        backoff_base: Duration::from_secs(5),
        backoff_max: Duration::from_secs(5 * 60),
    };

    async fn on_admin_retry(
        &self,
        conn: &mut sqlx::AnyConnection,
        _job_id: &str,
    ) -> Result<(), String> {
        let done = db::exports::requeue(conn, &self.export_id.to_string()).await;
        super::requeued(done, "the export is no longer failed (deleted or rendered)")
    }

    async fn on_cancel(&self, conn: &mut sqlx::AnyConnection, why: &str) -> sqlx::Result<()> {
        db::exports::cancel(conn, &self.export_id.to_string(), why).await?;
        Ok(())
    }

    fn subject(&self) -> Option<crate::events::Subject> {
        Some(crate::events::Subject::Export(self.export_id.to_string()))
    }
}

/// The media type of a format.
pub fn content_type(format: &str) -> &'static str {
    match format {
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/pdf",
    }
}

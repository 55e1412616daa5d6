//! What a `data_export` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/data_export.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    db,
    jobs::{JobPayload, Priority, Queue, RetryPolicy},
};

/// Build one personal data export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataExport {
    /// The `data_exports` row.
    pub data_export_id: Uuid,
}

impl JobPayload for DataExport {
    const KIND: &'static str = "data_export";
    const QUEUE: Queue = Queue::Documents;
    /// The account holder waits for the archive.
    const PRIORITY: Priority = Priority::INTERACTIVE;
    const CANCELLABLE: bool = true;
    /// Gigabytes of audio take minutes; a store outage is retried.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        timeout: Duration::from_secs(2 * 60 * 60),
        backoff_base: Duration::from_secs(30),
        backoff_max: Duration::from_secs(30 * 60),
    };

    async fn on_admin_retry(
        &self,
        conn: &mut sqlx::AnyConnection,
        _job_id: &str,
    ) -> Result<(), String> {
        let done = db::data_exports::requeue(conn, &self.data_export_id.to_string()).await;
        super::requeued(done, "the data export is no longer failed")
    }

    async fn on_cancel(&self, conn: &mut sqlx::AnyConnection, why: &str) -> sqlx::Result<()> {
        db::data_exports::cancel(conn, &self.data_export_id.to_string(), why).await?;
        Ok(())
    }

    fn subject(&self) -> Option<crate::events::Subject> {
        Some(crate::events::Subject::DataExport(
            self.data_export_id.to_string(),
        ))
    }
}

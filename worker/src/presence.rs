//! The worker process's presence, for admins (`GET /admin/workers`): registered on start, a
//! heartbeat every [`HEARTBEAT`] with the jobs it runs, and a last word on a graceful stop. A
//! process killed outright just falls silent; admins see it gone after [`tend_shared::db::workers::GONE_AFTER`].

use std::sync::Arc;

use tend_shared::db::{self, Db, workers::WorkerRow};
use tokio_util::sync::CancellationToken;

use crate::lease::Leases;

use tend_shared::db::workers::HEARTBEAT;

/// Registers the process and beats until `drained`, then records the stop.
pub async fn keep(db: Db, row: WorkerRow, leases: Arc<Leases>, drained: CancellationToken) {
    if let Err(err) = db::workers::register(&db, &row).await {
        tracing::warn!(error = %err, "could not register this worker for admins");
    }
    loop {
        tokio::select! {
            _ = drained.cancelled() => break,
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
        match db::workers::heartbeat(&db, &row.name, leases.count() as i64).await {
            Ok(true) => {}
            // No row: registered again (the relay sizes each queue's share by live workers).
            Ok(false) => {
                if let Err(err) = db::workers::register(&db, &row).await {
                    tracing::warn!(error = %err, "could not register this worker again");
                }
            }
            Err(err) => tracing::warn!(error = %err, "worker heartbeat not recorded"),
        }
    }
    if let Err(err) = db::workers::stopped(&db, &row.name, leases.count() as i64).await {
        tracing::warn!(error = %err, "could not record this worker's stop");
    }
}

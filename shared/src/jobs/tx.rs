//! The one way to start jobs: a database transaction that enqueues them with the change that
//! starts them and hands them to the transport as soon as it commits.

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection, Transaction};

use super::{Enqueued, JobOrigin, JobPayload};
use crate::queue::Relay;

/// A transaction that can start jobs. Requests and jobs alike: begin, write, enqueue, commit.
/// Dropping it without commit rolls back the change and the jobs together.
pub struct JobTx {
    /// The open transaction (derefs to its connection for the query functions).
    tx: Transaction<'static, Any>,
    /// Jobs enqueued so far, handed over after commit.
    started: Vec<Enqueued>,
    /// Hands the jobs over.
    relay: Relay,
}

impl JobTx {
    /// Begins a transaction on the relay's database.
    pub async fn begin(relay: &Relay) -> sqlx::Result<Self> {
        Ok(Self {
            tx: relay.db().begin().await?,
            started: Vec::new(),
            relay: relay.clone(),
        })
    }

    /// Stores a job in the ledger with this transaction.
    pub async fn enqueue<J: JobPayload>(
        &mut self,
        payload: &J,
        origin: &JobOrigin,
    ) -> sqlx::Result<Enqueued> {
        let job = super::enqueue(&mut self.tx, payload, origin).await?;
        self.started.push(job.clone());
        Ok(job)
    }

    /// Stores a job unless one with `dedup_key` exists (a scheduler tick another replica
    /// already enqueued); `None` then.
    pub async fn enqueue_once<J: JobPayload>(
        &mut self,
        payload: &J,
        dedup_key: &str,
    ) -> sqlx::Result<Option<Enqueued>> {
        let job = super::enqueue_once(&mut self.tx, payload, dedup_key).await?;
        self.started.extend(job.clone());
        Ok(job)
    }

    /// Hands over, with the new jobs, an existing job this transaction made due again (an
    /// admin's retry or kill).
    pub fn hand_over_too(&mut self, job: Enqueued) {
        self.started.push(job);
    }

    /// Commits, then hands the new jobs to the transport at once (best effort: what cannot be
    /// handed over now, the relay delivers later, so a committed job always runs).
    pub async fn commit(self) -> sqlx::Result<Vec<Enqueued>> {
        self.tx.commit().await?;
        self.relay.hand_over(&self.started).await;
        Ok(self.started)
    }
}

impl Deref for JobTx {
    type Target = AnyConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for JobTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

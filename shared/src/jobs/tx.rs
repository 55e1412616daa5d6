//! The one way to start jobs: a database transaction that enqueues them with the change that
//! starts them and hands them to the transport as soon as it commits.

use std::{
    collections::HashMap,
    ops::{Deref, DerefMut},
};

use sqlx::{Any, AnyConnection, Transaction};

use super::{Enqueued, JobOrigin, JobPayload, Priority, Queue};
use crate::{db::jobs::fairness, queue::Relay};

/// A transaction that can start jobs. Requests and jobs alike: begin, write, enqueue, commit.
/// Dropping it without commit rolls back the change and the jobs together.
pub struct JobTx {
    /// The open transaction (derefs to its connection for the query functions).
    tx: Transaction<'static, Any>,
    /// Jobs enqueued so far, handed over after commit.
    started: Vec<Enqueued>,
    /// Hands the jobs over.
    relay: Relay,
    /// Fair turns taken in this transaction, per queue, priority and tenant: the first is
    /// reserved in the ledger, the rest numbered on from it and recorded before commit.
    turns: HashMap<(Queue, Priority, Option<String>), Turns>,
}

/// The turns one tenant took on one queue in a transaction.
struct Turns {
    /// The key the next job gets.
    next: i64,
    /// The latest key the ledger knows of.
    recorded: i64,
}

impl JobTx {
    /// Begins a transaction on the relay's database.
    pub async fn begin(relay: &Relay) -> sqlx::Result<Self> {
        Ok(Self {
            tx: relay.db().begin().await?,
            started: Vec::new(),
            relay: relay.clone(),
            turns: HashMap::new(),
        })
    }

    /// Stores a job in the ledger with this transaction.
    pub async fn enqueue<J: JobPayload>(
        &mut self,
        payload: &J,
        origin: &JobOrigin,
    ) -> sqlx::Result<Enqueued> {
        let priority = origin.priority.unwrap_or(J::PRIORITY);
        let key = self
            .turn(J::QUEUE, priority, origin.tenant.as_deref())
            .await?;
        let job = super::enqueue(&mut self.tx, payload, origin, key).await?;
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
        let key = self.turn(J::QUEUE, J::PRIORITY, None).await?;
        let job = super::enqueue_once(&mut self.tx, payload, dedup_key, key).await?;
        self.started.extend(job.clone());
        Ok(job)
    }

    /// Hands over, with the new jobs, an existing job this transaction made due again (an
    /// admin's retry or kill).
    pub fn hand_over_too(&mut self, job: Enqueued) {
        self.started.push(job);
    }

    /// The fair key of `tenant`'s next job on `queue` at `priority`.
    async fn turn(
        &mut self,
        queue: Queue,
        priority: Priority,
        tenant: Option<&str>,
    ) -> sqlx::Result<i64> {
        let entry = (queue, priority, tenant.map(str::to_owned));
        if let Some(turns) = self.turns.get_mut(&entry) {
            turns.next += 1;
            return Ok(turns.next - 1);
        }
        let key = fairness::reserve_turn(&mut self.tx, queue.as_str(), priority, tenant).await?;
        self.turns.insert(
            entry,
            Turns {
                next: key + 1,
                recorded: key,
            },
        );
        Ok(key)
    }

    /// Commits, then hands the new jobs to the transport at once (best effort: what cannot be
    /// handed over now, the relay delivers later, so a committed job always runs).
    pub async fn commit(mut self) -> sqlx::Result<Vec<Enqueued>> {
        for ((queue, priority, tenant), turns) in &self.turns {
            let last = turns.next - 1;
            if last > turns.recorded {
                let (queue, tenant) = (queue.as_str(), tenant.as_deref());
                fairness::record_turns(&mut self.tx, queue, *priority, tenant, last).await?;
            }
        }
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

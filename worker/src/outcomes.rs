//! Records finished jobs in groups: while one write is in flight, the jobs that finish meanwhile
//! queue up and go in the next single statement (a group commit). Under a steady stream the
//! writer also lingers a moment before each write, so one statement covers more jobs; when
//! idle, a job is written alone at once.

use std::{collections::HashSet, time::Duration};

use tend_shared::{
    db::{self, Db, jobs::Attempt},
    queue::Relay,
};
use tokio::sync::{mpsc, oneshot};

use crate::retry::outcome_retry;

/// Most jobs in one write.
const MAX_GROUP: usize = 256;
/// A write that starts this soon after the previous one ended is part of a stream...
const STREAM: Duration = Duration::from_millis(20);
/// ...and waits this long for more jobs before it goes (statements, not rows, are what the
/// ledger pays for: a group of one cost 2.3 ms during a burst, a group of six 2.9 ms).
const LINGER: Duration = Duration::from_millis(3);

type Request = (Attempt, oneshot::Sender<Option<bool>>);

/// The handle runners use; the writer task stops once every handle is dropped.
#[derive(Clone)]
pub struct DoneWriter {
    tx: mpsc::UnboundedSender<Request>,
}

impl DoneWriter {
    /// Starts the writer; each write nudges the relay, since the transport has room again.
    pub fn start(db: Db, relay: Relay) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_groups(rx, db, relay));
        Self { tx }
    }

    /// Records the attempt done: `Some(true)` once written, `Some(false)` when another attempt
    /// had claimed the job (the outcome is refused), `None` when the write failed for longer
    /// than an outcome is retried (then the lease lapses and the job runs again: at least
    /// once).
    pub async fn done(&self, attempt: Attempt) -> Option<bool> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((attempt, reply)).ok()?;
        answer.await.ok().flatten()
    }
}

async fn write_groups(mut rx: mpsc::UnboundedReceiver<Request>, db: Db, relay: Relay) {
    let mut group: Vec<Request> = Vec::with_capacity(MAX_GROUP);
    let mut last_write = None::<tokio::time::Instant>;
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        if last_write.is_some_and(|t| t.elapsed() < STREAM) {
            let linger = tokio::time::sleep(LINGER);
            tokio::pin!(linger);
            while group.len() < MAX_GROUP {
                let room = MAX_GROUP - group.len();
                tokio::select! {
                    _ = &mut linger => break,
                    got = rx.recv_many(&mut group, room) => if got == 0 { break },
                }
            }
        }
        let ids: Vec<Attempt> = group.iter().map(|(attempt, _)| attempt.clone()).collect();
        let write = || db::jobs::finish_done(&db, &ids);
        let recorded = match outcome_retry("recording finished jobs", write).await {
            Ok(recorded) => Some(recorded.into_iter().collect::<HashSet<_>>()),
            Err(err) => {
                tracing::error!(error = %err, jobs = ids.len(), "outcomes not recorded; the leases will lapse and the jobs run again");
                None
            }
        };
        for (id, reply) in group.drain(..) {
            let _ = reply.send(recorded.as_ref().map(|r| r.contains(&id)));
        }
        relay.nudge();
        last_write = Some(tokio::time::Instant::now());
    }
}

//! The leases of every attempt this process runs, renewed together: one statement per renewal
//! for the whole process, however many jobs it runs. Only attempts held here are renewed: one
//! whose outcome could not be recorded lets its lease lapse, and runs again elsewhere.
//!
//! Each renewal presents the attempts' fencing tokens. An attempt missing from its answer is
//! no longer the job's latest (an admin killed it, or another worker claimed the job after its
//! lease lapsed): its handler is cancelled. An attempt whose lease was handed back while nobody
//! claimed the job since (this process was frozen) is renewed, and so takes the job back.
//!
//! When renewals keep failing (the database is unreachable), every handler is cancelled before
//! the lease can lapse, so an attempt never runs on while another worker may run the same job.
//! The relay renews through [`Leases::renew_now`] before it hands back any lapsed lease, so a
//! process never hands back its own live attempts.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use tend_shared::{
    db::{self, Db, jobs::Attempt},
    outage::Outage,
    queue::LeaseHolder,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The attempts this process holds, each with the token that cancels its handler.
pub struct Leases {
    db: Db,
    /// `JOB_LEASE_SECS`.
    lease: Duration,
    held: Mutex<HashMap<String, Held>>,
    /// When a renewal last reached the database: leases run out `lease` after it.
    last_renewed: Mutex<Instant>,
    /// One renewal at a time (the keeper's and the relay's would only repeat each other).
    renewing: tokio::sync::Mutex<()>,
    outage: Outage,
}

struct Held {
    attempt: Attempt,
    cancel: CancellationToken,
    /// When it was claimed: a renewal that began earlier cannot have seen it.
    since: Instant,
    /// The handler returned and its outcome is being written: the lease is still renewed
    /// (so an outage cannot hand the finished job to another worker), but nothing cancels it
    /// any more (that would drop the outcome being written).
    finishing: bool,
}

impl Leases {
    /// No leases yet; renewals go to `db` and extend by `lease`.
    pub fn new(db: Db, lease: Duration) -> Self {
        Self {
            db,
            lease,
            held: Mutex::default(),
            last_renewed: Mutex::new(Instant::now()),
            renewing: tokio::sync::Mutex::new(()),
            outage: Outage::new("database", "lease keeper"),
        }
    }

    /// Records an attempt claimed just now; the token is cancelled if the attempt is lost.
    pub fn hold(&self, attempt: Attempt) -> CancellationToken {
        let cancel = CancellationToken::new();
        self.held.lock().expect("leases lock").insert(
            attempt.job_id.clone(),
            Held {
                attempt,
                cancel: cancel.clone(),
                since: Instant::now(),
                finishing: false,
            },
        );
        cancel
    }

    /// The attempt's handler returned: from now on only its outcome is written, under a lease
    /// still renewed but no longer cancelled.
    pub fn finishing(&self, job_id: &str) {
        if let Some(held) = self.held.lock().expect("leases lock").get_mut(job_id) {
            held.finishing = true;
        }
    }

    /// Forgets an attempt whose outcome is written (or given up on).
    pub fn release(&self, job_id: &str) {
        self.held.lock().expect("leases lock").remove(job_id);
    }

    /// The attempts held now.
    fn attempts(&self) -> Vec<Attempt> {
        let held = self.held.lock().expect("leases lock");
        held.values().map(|h| h.attempt.clone()).collect()
    }

    /// How many attempts the process holds now.
    pub fn count(&self) -> usize {
        self.held.lock().expect("leases lock").len()
    }

    /// Renews unless a renewal reached the database less than a quarter of the lease ago (the
    /// relay asks before each recovery pass; after a freeze the last renewal is old, so it
    /// renews then).
    pub async fn renew_if_stale(&self) {
        let last = *self.last_renewed.lock().expect("leases lock");
        if last.elapsed() >= self.lease / 4 {
            self.renew().await;
        }
    }

    /// Renews every lease now, cancelling what was lost; when the database stays out of reach
    /// until the leases would lapse, cancels every handler.
    pub async fn renew(&self) {
        let _one = self.renewing.lock().await;
        let started = Instant::now();
        let attempts = self.attempts();
        if attempts.is_empty() {
            *self.last_renewed.lock().expect("leases lock") = started;
            return;
        }
        let lease_ms = self.lease.as_millis() as i64;
        match self
            .outage
            .observe(db::jobs::renew_leases(&self.db, &attempts, lease_ms).await)
        {
            Ok(renewed) => {
                *self.last_renewed.lock().expect("leases lock") = started;
                self.cancel_lost(&renewed, started);
            }
            Err(_) => {
                // Our leases run out `lease` after the last renewal that reached the database:
                // stop before then, leaving the jobs to whoever takes them over.
                let last = *self.last_renewed.lock().expect("leases lock");
                if last.elapsed() + self.lease / 4 >= self.lease {
                    self.cancel_all("leases could not be renewed in time");
                }
            }
        }
    }

    /// Renews every quarter of the lease until `shutdown`.
    pub async fn keep_alive(self: Arc<Self>, shutdown: CancellationToken) {
        let every = self.lease / 4;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            self.renew().await;
        }
    }

    /// At the end of the shutdown grace period: cancels the attempts still running and hands
    /// their jobs back, so other workers start them at once. Returns how many went back.
    pub async fn hand_back_all(&self) -> u64 {
        let attempts = self.attempts();
        if attempts.is_empty() {
            return 0;
        }
        self.cancel_all("shutdown grace period over");
        match db::jobs::hand_back(&self.db, &attempts).await {
            Ok(count) => count,
            Err(err) => {
                tracing::error!(error = %err, jobs = attempts.len(), "could not hand back the cut jobs; their leases will lapse");
                0
            }
        }
    }

    fn cancel_lost(&self, renewed: &[Attempt], renewal_started: Instant) {
        let held = self.held.lock().expect("leases lock");
        for (id, job) in held.iter() {
            if !job.finishing && job.since < renewal_started && !renewed.contains(&job.attempt) {
                tracing::warn!(job_id = %id, claim = job.attempt.claim, "lease lost (the job was killed or claimed again); cancelling this attempt");
                job.cancel.cancel();
            }
        }
    }

    fn cancel_all(&self, why: &str) {
        let held = self.held.lock().expect("leases lock");
        let running: Vec<&Held> = held
            .values()
            .filter(|h| !h.finishing && !h.cancel.is_cancelled())
            .collect();
        if !running.is_empty() {
            tracing::error!(jobs = running.len(), why, "cancelling the running attempts");
        }
        for job in running {
            job.cancel.cancel();
        }
    }
}

impl LeaseHolder for Leases {
    fn renew_now(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.renew_if_stale())
    }
}

//! The leases of every job this process runs, renewed together: one statement per renewal
//! for the whole process, however many jobs it runs. Only jobs held here are renewed: a job
//! whose outcome could not be recorded lets its lease lapse, and runs again elsewhere.
//!
//! A job missing from a renewal's answer is no longer ours (an admin killed it, or its lease
//! lapsed and another worker took it over): its handler is cancelled. When renewals keep
//! failing (the database is unreachable), every handler is cancelled before the lease can
//! lapse, so an attempt never runs on while another worker may already run the same job.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tend_shared::db::{self, Db};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The jobs this process holds, each with the token that cancels its handler.
#[derive(Default)]
pub struct Leases {
    held: Mutex<HashMap<String, Held>>,
}

struct Held {
    cancel: CancellationToken,
    /// When it was claimed: a renewal that began earlier cannot have seen it.
    since: Instant,
}

impl Leases {
    /// Records a job claimed just now; the token is cancelled if the job is lost.
    pub fn hold(&self, job_id: &str) -> CancellationToken {
        let cancel = CancellationToken::new();
        self.held.lock().expect("leases lock").insert(
            job_id.to_owned(),
            Held {
                cancel: cancel.clone(),
                since: Instant::now(),
            },
        );
        cancel
    }

    /// Forgets a job whose attempt ended.
    pub fn release(&self, job_id: &str) {
        self.held.lock().expect("leases lock").remove(job_id);
    }

    /// The ids of the jobs held now.
    fn ids(&self) -> Vec<String> {
        self.held
            .lock()
            .expect("leases lock")
            .keys()
            .cloned()
            .collect()
    }

    /// How many jobs the process holds now.
    pub fn count(&self) -> usize {
        self.held.lock().expect("leases lock").len()
    }

    /// Renews every lease each quarter of `lease` until `shutdown`, cancelling what was lost.
    pub async fn keep_alive(
        self: Arc<Self>,
        db: Db,
        worker: String,
        lease: Duration,
        shutdown: CancellationToken,
    ) {
        let lease_ms = lease.as_millis() as i64;
        let every = lease / 4;
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let started = Instant::now();
            let ids = self.ids();
            if ids.is_empty() {
                last_renewed = started;
                continue;
            }
            match db::jobs::renew_leases(&db, &worker, &ids, lease_ms).await {
                Ok(ids) => {
                    last_renewed = started;
                    self.cancel_lost(&ids, started);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "lease renewal failed; retrying");
                    // Our leases run out `lease` after the last renewal that reached the
                    // database: stop before then, leaving the jobs to whoever takes them over.
                    if last_renewed.elapsed() + every >= lease {
                        self.cancel_all();
                    }
                }
            }
        }
    }

    fn cancel_lost(&self, renewed: &[String], renewal_started: Instant) {
        let held = self.held.lock().expect("leases lock");
        for (id, job) in held.iter() {
            if job.since < renewal_started && !renewed.iter().any(|r| r == id) {
                tracing::warn!(job_id = %id, "lease lost (the job was killed or taken over); cancelling it");
                job.cancel.cancel();
            }
        }
    }

    fn cancel_all(&self) {
        let held = self.held.lock().expect("leases lock");
        if !held.is_empty() {
            tracing::error!(
                jobs = held.len(),
                "leases could not be renewed in time; cancelling the running jobs"
            );
        }
        for job in held.values() {
            job.cancel.cancel();
        }
    }
}

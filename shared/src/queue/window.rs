//! How many jobs of each queue the transport may hold: enough to keep every live worker slot
//! busy between two relay passes, no more.
//!
//! Order (priority and tenant turns) is decided when the relay hands jobs over; what is
//! already in the transport runs first-in first-out. A deep transport would undo the order: a
//! tenant's 1,000 jobs pushed ahead of another tenant's one would all run first. So a queue's
//! share of the transport follows the slots of the live workers serving it, and never exceeds
//! `QUEUE_MAX_IN_FLIGHT` (apalis-redis wedges from about 8,000 due jobs).

use super::*;

/// Deliveries per live worker slot the transport may hold: one being fetched while the slot
/// runs another, so a slot never waits for a relay pass.
const DELIVERIES_PER_SLOT: i64 = 2;
/// How long the live slots read from the ledger are trusted before they are read again.
const REFRESH: Duration = Duration::from_millis(500);

/// The per-queue bounds, shared by every clone of a relay and read again from the `workers`
/// table at most every [`REFRESH`].
pub(super) struct Windows {
    max_in_flight: i64,
    state: tokio::sync::Mutex<Option<(tokio::time::Instant, [i64; Queue::COUNT])>>,
}

impl Windows {
    /// Bounds capped at `max_in_flight`.
    pub(super) fn new(max_in_flight: i64) -> Self {
        Self {
            max_in_flight,
            state: tokio::sync::Mutex::new(None),
        }
    }

    /// The most jobs of `queue` the transport may hold now: nothing while no live worker
    /// serves it (its jobs wait in the ledger, in order, for one to start).
    pub(super) async fn bound(&self, db: &Db, queue: Queue) -> sqlx::Result<i64> {
        let mut state = self.state.lock().await;
        let fresh = state
            .as_ref()
            .filter(|(read_at, _)| read_at.elapsed() < REFRESH)
            .map(|(_, bounds)| *bounds);
        let bounds = match fresh {
            Some(bounds) => bounds,
            None => {
                let slots = db::workers::live_slots(db).await?;
                let bounds = Queue::ALL.map(|q| {
                    let slots = slots.get(q.as_str()).copied().unwrap_or(0) as i64;
                    (slots * DELIVERIES_PER_SLOT * q.delivery_batch() as i64)
                        .min(self.max_in_flight)
                });
                *state = Some((tokio::time::Instant::now(), bounds));
                bounds
            }
        };
        let index = Queue::ALL.iter().position(|q| *q == queue).unwrap_or(0);
        Ok(bounds[index])
    }
}

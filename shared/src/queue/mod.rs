//! The transport between the ledger and the workers, and the outbox relay that feeds it.
//!
//! apalis carries one small message per job, [`Delivery`] (the job id). Redis in production,
//! a SQLite file in embedded mode. The database ledger stays the truth: the relay hands a job
//! to the transport only while fewer than `QUEUE_MAX_IN_FLIGHT` of its queue are in transit,
//! so a burst of 100,000 jobs waits in the database instead of wedging apalis-redis (which
//! fails from 8,000 due jobs, see NOTES-apalis-1.0.md).

mod relay;
mod transport;
mod window;

pub use relay::*;
pub use transport::*;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use apalis::prelude::TaskSink;
use apalis_core::backend::Vacuum;
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::{SqlitePool, SqliteStorage};
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{QueueBackend, Settings},
    db::{self, Db},
    jobs::{Enqueued, Priority, Queue},
    outage::Outage,
    throttle::Throttle,
};

/// What holds leases in this process (the worker's lease keeper).
pub trait LeaseHolder: Send + Sync {
    /// Renews every lease this process holds now.
    fn renew_now(&self) -> futures::future::BoxFuture<'_, ()>;
}

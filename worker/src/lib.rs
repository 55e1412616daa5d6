//! Tend's workers: they take job ids off the queue, claim the jobs in the ledger, run their
//! handlers, and record the outcomes (done, retry with backoff, or dead).
//!
//! Layout:
//! - [`registry`]: the one list of job kinds; [`job`]: the trait each kind implements;
//!   [`jobs`]: one file per kind (payload, policy and handler together).
//! - [`runtime`]: starts one apalis worker per served queue, the outbox relay, the lease keeper,
//!   and drains on shutdown.
//! - [`runner`]: the life of one delivery: claim, slot, timeout, panic capture, outcome. Shared
//!   by every job kind. [`lease`] renews the leases of every running job in one statement;
//!   [`outcomes`] records finished jobs in groups; [`retry`] carries ledger writes over a
//!   database blip; [`presence`] tells admins the process is alive (heartbeats).
//! - [`env`](mod@env): what handlers may use (database, store, mailer, provider, the relay for
//!   follow-up jobs).
//! - [`mailer`] and [`templates`]: outgoing mail (SMTP, or `.eml` files in embedded mode).
//! - [`provider`]: the OpenAI-compatible transcription and chat client, and how its failures
//!   are sorted into transient and permanent.

pub mod env;
pub mod job;
pub mod job_metrics;
pub mod jobs;
pub mod lease;
pub mod mailer;
pub mod outcomes;
pub mod presence;
pub mod provider;
pub mod registry;
pub mod retry;
pub mod runner;
pub mod runtime;
pub mod templates;

pub use runtime::{WorkerHandle, run_process, start};

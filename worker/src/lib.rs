//! Tend's workers: they take job ids off the queue, claim the job in the ledger, run its
//! handler, and record the outcome (done, retry with backoff, or dead).
//!
//! Layout:
//! - [`runtime`]: starts one apalis worker per queue, the outbox relay, and drains on shutdown.
//! - [`runner`]: the life of one delivery: claim, lease renewal, timeout, panic capture,
//!   outcome. Shared by every job kind.
//! - [`jobs`]: one module per job kind, each a plain async function of its payload.
//! - [`mailer`] and [`templates`]: outgoing mail (SMTP, or `.eml` files in embedded mode).
//! - [`provider`]: the OpenAI-compatible transcription and chat client, and how its failures
//!   are sorted into transient and permanent.

pub mod jobs;
pub mod mailer;
pub mod provider;
pub mod runner;
pub mod runtime;
pub mod templates;

pub use runtime::{WorkerHandle, start};

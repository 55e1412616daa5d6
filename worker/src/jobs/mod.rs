//! One module per job kind. Each handler is a plain async function of its payload that returns
//! `Ok(())` or a [`JobError`] saying whether a retry can help. Handlers are idempotent: a job
//! delivered twice leaves the same result.

pub mod cleanup;
pub mod email;

use tend_shared::jobs::{Cleanup, JobError, JobPayload, RetryPolicy, SendEmail};

use crate::runner::JobEnv;

/// The retry policy of a kind, `None` for a kind this build does not know.
pub fn policy(kind: &str) -> Option<RetryPolicy> {
    match kind {
        SendEmail::KIND => Some(SendEmail::POLICY),
        Cleanup::KIND => Some(Cleanup::POLICY),
        _ => None,
    }
}

/// Decodes the payload of `kind` and runs its handler.
pub async fn handle(env: &JobEnv, kind: &str, payload: &str) -> Result<(), JobError> {
    match kind {
        SendEmail::KIND => email::send(env, decode(payload)?).await,
        Cleanup::KIND => cleanup::run(env, decode(payload)?).await,
        other => Err(JobError::Permanent(format!("unknown job kind {other:?}"))),
    }
}

fn decode<J: JobPayload>(payload: &str) -> Result<J, JobError> {
    serde_json::from_str(payload).map_err(|e| JobError::permanent("malformed payload", e))
}

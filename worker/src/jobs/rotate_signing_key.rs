//! The scheduled rotation of the key that signs access tokens (`rotate_signing_key`): some
//! platforms Tend serves list periodic credential rotation as a duty. A run makes a new key,
//! which signs from then on; the key it replaces verifies the tokens it signed until they
//! expire, and keys that verify nothing any more are deleted. A retried run for the same
//! tick makes no second key.

use tend_shared::{
    auth::keys::{self, RotatedBy},
    jobs::JobError,
};

use crate::job::{Job, JobCtx};
use tend_shared::jobs::kinds::rotate_signing_key::RotateSigningKey;

impl Job for RotateSigningKey {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let env = ctx.env;
        let by = RotatedBy::Schedule {
            tick: self.scheduled_for,
        };
        match keys::rotate(&env.db, &env.settings, by).await {
            Ok(Some(key)) => {
                tracing::info!(job_id = %ctx.job.id, kid = %key.kid, "signing key rotated")
            }
            Ok(None) => tracing::info!(job_id = %ctx.job.id, "this tick's rotation was done"),
            Err(err) => return Err(JobError::transient("database", err)),
        }
        Ok(())
    }
}

//! The invitation job: mails an invited address the single-use link that lets its owner link
//! their patient account to a practitioner's record.
//!
//! The payload names the record only; the address stays on the record. The token is minted
//! here, at send time, so no secret sits in a job payload, and only the latest mail's link
//! works. The mail names the practitioner (their own display name) and nothing the
//! practitioner typed about the patient: the address may be mistyped.

use tend_shared::{auth::opaque, db, jobs::JobError};

use crate::{
    env::JobEnv,
    job::{Job, JobCtx},
    jobs::email::{app_link, deliver},
    templates::EmailContext,
};
use tend_shared::jobs::kinds::{email::EmailTemplate, invitation::SendInvitation};

impl Job for SendInvitation {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        send(ctx.env, &ctx.job.id, self).await
    }
}

async fn send(env: &JobEnv, job_id: &str, job: &SendInvitation) -> Result<(), JobError> {
    let db_err = |e: sqlx::Error| JobError::transient("database", e);
    let patient_id = job.patient_id.to_string();
    let patient = db::patients::find(&env.db, &patient_id)
        .await
        .map_err(db_err)?;
    let Some((patient, email)) = patient.and_then(|p| p.invited_email.clone().map(|e| (p, e)))
    else {
        tracing::info!("invitation accepted, withdrawn or deleted; nothing to send");
        return Ok(());
    };
    let inviter = db::users::find(&env.db, &patient.practitioner_id)
        .await
        .map_err(db_err)?
        .and_then(|u| u.display_name)
        .unwrap_or_else(|| "Your practitioner".to_owned());
    let token = opaque::generate();
    let still_open =
        db::patients::set_invitation_token(&env.db, &patient_id, &email, &opaque::digest(&token))
            .await
            .map_err(db_err)?;
    if !still_open {
        tracing::info!("invitation replaced meanwhile; nothing to send");
        return Ok(());
    }
    let context = EmailContext {
        name: None,
        link: app_link(env, "accept-invitation", &token),
        token,
        inviter: Some(inviter),
    };
    deliver(
        env,
        job_id,
        &email,
        EmailTemplate::PatientInvitation,
        &context,
    )
    .await
}

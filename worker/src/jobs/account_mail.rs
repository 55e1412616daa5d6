//! The account-mail job: answers a stored "reset my password" or "verify me again" request.
//!
//! The API stores the request and answers at once, the same way for every address; this job
//! does the look-up and, when the address has a fitting account, starts the mail. So the
//! answer's timing tells nothing about which addresses have accounts.

use tend_shared::{
    db::{
        self,
        audit::{self, AuditAction},
        mail_requests::MailPurpose,
    },
    domain::Email,
    jobs::{JobError, JobOrigin, JobTx},
};
use uuid::Uuid;

use crate::{
    env::JobEnv,
    job::{Job, JobCtx},
};
use tend_shared::jobs::kinds::account_mail::AnswerMailRequest;
use tend_shared::jobs::kinds::email::{EmailTemplate, SendEmail};

impl Job for AnswerMailRequest {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        answer(ctx.env, ctx, self).await
    }
}

async fn answer(env: &JobEnv, ctx: &JobCtx<'_>, job: &AnswerMailRequest) -> Result<(), JobError> {
    let db_err = |e: sqlx::Error| JobError::transient("database", e);
    let mut tx = JobTx::begin(&env.relay).await.map_err(db_err)?;
    let Some(request) = db::mail_requests::take(&mut tx, &job.request_id.to_string())
        .await
        .map_err(db_err)?
    else {
        tracing::info!("request already answered; nothing to do");
        return Ok(());
    };
    let user = match Email::parse(&request.email) {
        Ok(email) => db::users::find_by_email(&env.db, &email)
            .await
            .map_err(db_err)?,
        Err(_) => None,
    };
    let template = match (&user, request.purpose) {
        (Some(_), MailPurpose::PasswordReset) => Some(EmailTemplate::PasswordReset),
        (Some(user), MailPurpose::VerifyEmail) if user.email_verified_at.is_none() => {
            Some(EmailTemplate::VerifyEmail)
        }
        _ => None,
    };
    if let (Some(user), Some(template)) = (&user, template) {
        let user_id = Uuid::parse_str(&user.id)
            .map_err(|e| JobError::permanent("stored user id is not a UUID", e))?;
        let origin = JobOrigin {
            created_by: Some(user.id.clone()),
            request_id: ctx.job.request_id.clone(),
            tenant: Some(user.id.clone()),
            priority: None,
        };
        tx.enqueue(
            &SendEmail {
                user_id,
                template,
                subject_id: None,
            },
            &origin,
        )
        .await
        .map_err(db_err)?;
        if template == EmailTemplate::PasswordReset {
            audit::record(
                &mut tx,
                AuditAction::PasswordResetRequested,
                Some(&user.id),
                &request.origin,
                None,
            )
            .await
            .map_err(db_err)?;
        }
    }
    tx.commit().await.map_err(db_err)?;
    tracing::info!(sent = template.is_some(), "mail request answered");
    Ok(())
}

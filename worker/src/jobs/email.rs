//! The email job: renders a template for a user and sends it.
//!
//! The payload names the user and the template only. Links that need a secret token (verify,
//! reset) get a fresh token minted here, at send time, so no secret ever sits in a job payload
//! or in the queue.

use std::time::Duration;

use lettre::{
    Message,
    message::{Mailbox, MultiPart},
};
use tend_shared::{
    auth::opaque,
    db::{self, tokens::EmailPurpose},
    jobs::JobError,
};
use uuid::Uuid;

use crate::{
    env::JobEnv,
    job::{Job, JobCtx},
    templates::EmailContext,
};
use tend_shared::jobs::kinds::email::{EmailTemplate, SendEmail};

const VERIFY_TTL: Duration = Duration::from_secs(24 * 3600);
const RESET_TTL: Duration = Duration::from_secs(3600);

impl Job for SendEmail {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        send(ctx.env, &ctx.job.id, self).await
    }
}

/// Renders and sends the mail.
async fn send(env: &JobEnv, job_id: &str, job: &SendEmail) -> Result<(), JobError> {
    let user_id = job.user_id.to_string();
    let user = db::users::find(&env.db, &user_id)
        .await
        .map_err(|e| JobError::transient("loading the recipient", e))?;
    let Some(user) = user else {
        tracing::info!("recipient account no longer exists; nothing to send");
        return Ok(());
    };
    let link_token = match job.template {
        EmailTemplate::VerifyEmail if user.email_verified_at.is_some() => {
            tracing::info!("address already verified; nothing to send");
            return Ok(());
        }
        EmailTemplate::VerifyEmail => Some(
            mint(
                env,
                &user_id,
                EmailPurpose::VerifyEmail,
                VERIFY_TTL,
                "verify-email",
            )
            .await?,
        ),
        EmailTemplate::PasswordReset => Some(
            mint(
                env,
                &user_id,
                EmailPurpose::ResetPassword,
                RESET_TTL,
                "reset-password",
            )
            .await?,
        ),
        EmailTemplate::PasswordChanged => None,
        EmailTemplate::MissionDraftReady | EmailTemplate::MissionDraftFailed => Some((
            record_link(env, "mission-draft", subject(job)?),
            String::new(),
        )),
        EmailTemplate::DataExportReady => Some((
            record_link(env, "data-export", subject(job)?),
            String::new(),
        )),
        EmailTemplate::PatientInvitation => {
            return Err(JobError::Permanent(
                "invitations go to an invited address: send_invitation sends them".into(),
            ));
        }
    };
    let (link, token) = link_token.unwrap_or_default();
    let context = EmailContext {
        name: user.display_name.clone(),
        link,
        token,
        inviter: None,
    };
    deliver(env, job_id, &user.email, job.template, &context).await
}

/// The record a notice is about.
fn subject(job: &SendEmail) -> Result<Uuid, JobError> {
    job.subject_id
        .ok_or_else(|| JobError::Permanent("this mail needs the id of its subject".into()))
}

/// `APP_URL/<page>?id=<id>`: where a person opens the record a notice is about, signing in
/// there (the client app's page, or the API's own when `APP_URL` is unset). Not the API's
/// JSON URL, which a mail client cannot open without a token.
fn record_link(env: &JobEnv, page: &str, id: Uuid) -> String {
    let mut link = env.settings.app_url.clone();
    link.set_path(&format!("{}/{page}", link.path().trim_end_matches('/')));
    link.query_pairs_mut().append_pair("id", &id.to_string());
    link.to_string()
}

/// Renders `template` and sends it to `to`. The Message-ID is made from the job's id, so every
/// attempt of one job sends the same Message-ID: SMTP cannot be fenced (a frozen worker's mail
/// may already be on its way when another worker takes the job over), so mail is at least
/// once, and a receiver drops a duplicate by its Message-ID.
pub(crate) async fn deliver(
    env: &JobEnv,
    job_id: &str,
    to: &str,
    template: EmailTemplate,
    context: &EmailContext,
) -> Result<(), JobError> {
    let rendered = env
        .templates
        .render(template, context)
        .map_err(|e| JobError::permanent("rendering the template", e))?;

    let from: Mailbox = env
        .settings
        .email_from
        .parse()
        .map_err(|e| JobError::permanent("EMAIL_FROM is not a valid address", e))?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| JobError::permanent("the recipient address is not deliverable", e))?;
    let message_id = format!("<{job_id}@{}>", from.email.domain());
    let message = Message::builder()
        .message_id(Some(message_id))
        .from(from)
        .to(to)
        .subject(rendered.subject)
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .map_err(|e| JobError::permanent("building the message", e))?;
    env.mailer.send(message).await
}

/// Stores a new single-use token and returns `(link, token)`.
async fn mint(
    env: &JobEnv,
    user_id: &str,
    purpose: EmailPurpose,
    ttl: Duration,
    page: &str,
) -> Result<(String, String), JobError> {
    let token = opaque::generate();
    let expires_at = db::now_ms() + ttl.as_millis() as i64;
    db::tokens::insert_email_token(
        &env.db,
        user_id,
        purpose,
        &opaque::digest(&token),
        expires_at,
    )
    .await
    .map_err(|e| JobError::transient("storing the link token", e))?;
    Ok((app_link(env, page, &token), token))
}

/// `APP_URL/<page>?token=<token>`: the link a mail carries.
pub(crate) fn app_link(env: &JobEnv, page: &str, token: &str) -> String {
    let mut link = env.settings.app_url.clone();
    link.set_path(&format!("{}/{page}", link.path().trim_end_matches('/')));
    link.query_pairs_mut().append_pair("token", token);
    link.to_string()
}

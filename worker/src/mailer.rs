//! Outgoing mail: SMTP through lettre in production, `.eml` files in embedded mode.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use tend_shared::{Settings, jobs::JobError};

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// A real SMTP server (`SMTP_URL`).
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a folder: a newcomer opens them with any mail program.
    Files {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: PathBuf,
    },
}

impl Mailer {
    /// Builds the transport from `SMTP_URL`, or the `.eml` folder when it is unset.
    ///
    /// `SMTP_URL` follows lettre: `smtp://host:25` (plain), `smtp://user:pw@host:587?tls=required`
    /// (STARTTLS), `smtps://user:pw@host:465` (TLS). `tls=starttls` is accepted for `required`.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.smtp_url {
            Some(url) => {
                let url = url.expose_secret().replace("tls=starttls", "tls=required");
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
                    .context("SMTP_URL is not a valid SMTP URL")?
                    .timeout(Some(Duration::from_secs(30)))
                    .build();
                Ok(Mailer::Smtp(transport))
            }
            None => {
                let dir = settings.outbox_dir();
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating the mail outbox {}", dir.display()))?;
                Ok(Mailer::Files {
                    transport: AsyncFileTransport::new(&dir),
                    dir,
                })
            }
        }
    }

    /// Sends one message. SMTP 5xx answers are permanent; everything else may pass.
    pub async fn send(&self, message: Message) -> Result<(), JobError> {
        match self {
            Mailer::Smtp(transport) => match transport.send(message).await {
                Ok(_) => Ok(()),
                Err(err) if err.is_permanent() => Err(JobError::permanent(
                    "the SMTP server refused the message",
                    err,
                )),
                Err(err) => Err(JobError::transient("SMTP delivery failed", err)),
            },
            Mailer::Files { transport, dir } => {
                let id = transport
                    .send(message)
                    .await
                    .map_err(|e| JobError::transient("writing the .eml file", e))?;
                let path = dir.join(format!("{id}.eml"));
                tracing::info!(path = %path.display(), "email written (no SMTP_URL set)");
                Ok(())
            }
        }
    }
}

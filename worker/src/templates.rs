//! Email templates: a plain-text and an HTML body per mail, rendered with minijinja (HTML
//! escaping on for `.html`). The templates live in `worker/templates/` and are compiled in.

use minijinja::Environment;
use serde::Serialize;
use tend_shared::jobs::kinds::email::EmailTemplate;

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

/// What the templates may show.
#[derive(Debug, Serialize)]
pub struct EmailContext {
    /// The recipient's display name, if they gave one.
    pub name: Option<String>,
    /// The link to open (verify / reset); empty for notices.
    pub link: String,
    /// The raw token, for apps that take a code.
    pub token: String,
    /// Who invites (the practitioner's display name), for invitations.
    pub inviter: Option<String>,
}

/// A rendered mail.
pub struct Rendered {
    pub subject: &'static str,
    pub text: String,
    pub html: String,
}

impl Templates {
    /// Loads every template; fails at start-up, not at send time, if one does not parse.
    pub fn load() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        for (name, source) in [
            (
                "verify_email.txt",
                include_str!("../templates/verify_email.txt"),
            ),
            (
                "verify_email.html",
                include_str!("../templates/verify_email.html"),
            ),
            (
                "password_reset.txt",
                include_str!("../templates/password_reset.txt"),
            ),
            (
                "password_reset.html",
                include_str!("../templates/password_reset.html"),
            ),
            (
                "password_changed.txt",
                include_str!("../templates/password_changed.txt"),
            ),
            (
                "password_changed.html",
                include_str!("../templates/password_changed.html"),
            ),
            (
                "patient_invitation.txt",
                include_str!("../templates/patient_invitation.txt"),
            ),
            (
                "patient_invitation.html",
                include_str!("../templates/patient_invitation.html"),
            ),
            (
                "mission_draft_ready.txt",
                include_str!("../templates/mission_draft_ready.txt"),
            ),
            (
                "mission_draft_ready.html",
                include_str!("../templates/mission_draft_ready.html"),
            ),
            (
                "mission_draft_failed.txt",
                include_str!("../templates/mission_draft_failed.txt"),
            ),
            (
                "mission_draft_failed.html",
                include_str!("../templates/mission_draft_failed.html"),
            ),
            (
                "data_export_ready.txt",
                include_str!("../templates/data_export_ready.txt"),
            ),
            (
                "data_export_ready.html",
                include_str!("../templates/data_export_ready.html"),
            ),
        ] {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    /// Renders both bodies of a mail.
    pub fn render(&self, template: EmailTemplate, ctx: &EmailContext) -> anyhow::Result<Rendered> {
        let (base, subject) = match template {
            EmailTemplate::VerifyEmail => ("verify_email", "Confirm your email address"),
            EmailTemplate::PasswordReset => ("password_reset", "Reset your password"),
            EmailTemplate::PasswordChanged => ("password_changed", "Your password was changed"),
            EmailTemplate::PatientInvitation => (
                "patient_invitation",
                "An invitation to link your Tend account",
            ),
            EmailTemplate::MissionDraftReady => (
                "mission_draft_ready",
                "Your training mission draft is ready",
            ),
            EmailTemplate::MissionDraftFailed => (
                "mission_draft_failed",
                "Your training mission could not be drafted",
            ),
            EmailTemplate::DataExportReady => ("data_export_ready", "Your data export is ready"),
        };
        let text = self.env.get_template(&format!("{base}.txt"))?.render(ctx)?;
        let html = self
            .env
            .get_template(&format!("{base}.html"))?
            .render(ctx)?;
        Ok(Rendered {
            subject,
            text,
            html,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_escape_user_text() {
        let templates = Templates::load().unwrap();
        let rendered = templates
            .render(
                EmailTemplate::VerifyEmail,
                &EmailContext {
                    name: Some("<script>x</script>".into()),
                    link: "https://app/verify-email?token=abc".into(),
                    token: "abc".into(),
                    inviter: None,
                },
            )
            .unwrap();
        assert!(rendered.html.contains("&lt;script&gt;"));
        assert!(rendered.text.contains("https://app/verify-email?token=abc"));
    }

    /// Every mail's bodies, pinned: a wording change shows up in review (`cargo insta review`).
    #[test]
    fn email_bodies_match_their_snapshots() {
        let templates = Templates::load().unwrap();
        for (name, template) in [
            ("verify_email", EmailTemplate::VerifyEmail),
            ("password_reset", EmailTemplate::PasswordReset),
            ("password_changed", EmailTemplate::PasswordChanged),
            ("patient_invitation", EmailTemplate::PatientInvitation),
            ("mission_draft_ready", EmailTemplate::MissionDraftReady),
            ("mission_draft_failed", EmailTemplate::MissionDraftFailed),
            ("data_export_ready", EmailTemplate::DataExportReady),
        ] {
            let rendered = templates
                .render(
                    template,
                    &EmailContext {
                        name: Some("Ada".into()),
                        link: format!("https://app.example.org/{name}?token=TOKEN"),
                        token: "TOKEN".into(),
                        inviter: Some("Dr Åsa Öberg".into()),
                    },
                )
                .unwrap();
            insta::assert_snapshot!(
                format!("{name}.txt"),
                format!("Subject: {}\n\n{}", rendered.subject, rendered.text)
            );
            insta::assert_snapshot!(format!("{name}.html"), rendered.html);
        }
    }
}

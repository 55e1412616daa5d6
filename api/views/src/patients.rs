//! A patient record as its practitioner reads it.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use tend_shared::db::patients::Patient;

use crate::ms_to_datetime;

/// A patient as their practitioner sees them.
#[derive(Debug, Object)]
pub struct PatientView {
    /// The patient id.
    pub id: String,
    /// The name the practitioner uses.
    pub display_name: String,
    /// The practitioner's own reference (file number, initials).
    pub reference: Option<String>,
    /// The linked `patient` account, which reads the patient summaries of this patient's
    /// sessions (set once the invitation is accepted).
    pub linked_user_id: Option<String>,
    /// `none`, `invited` (an invitation is open) or `linked`.
    pub link_status: LinkStatus,
    /// The address of the open invitation.
    pub invited_email: Option<String>,
    /// When the open invitation lapses.
    pub invitation_expires_at: Option<DateTime<Utc>>,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Whether a patient account reads this patient's summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum LinkStatus {
    /// No account linked, no invitation open.
    None,
    /// An invitation was sent; nothing is linked until its addressee accepts.
    Invited,
    /// A patient account accepted the invitation.
    Linked,
}

impl From<Patient> for PatientView {
    fn from(p: Patient) -> Self {
        let link_status = match (&p.user_id, &p.invited_email) {
            (Some(_), _) => LinkStatus::Linked,
            (None, Some(_)) => LinkStatus::Invited,
            (None, None) => LinkStatus::None,
        };
        Self {
            id: p.id,
            display_name: p.display_name,
            reference: p.reference,
            linked_user_id: p.user_id,
            link_status,
            invited_email: p.invited_email,
            invitation_expires_at: p.invitation_expires_at.map(ms_to_datetime),
            created_at: ms_to_datetime(p.created_at),
            updated_at: ms_to_datetime(p.updated_at),
        }
    }
}

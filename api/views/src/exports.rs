//! A rendered document (session notes, progress report) as its practitioner reads it.

use poem_openapi::{Enum, Object};
use tend_shared::{
    db::{self, exports::ExportRow},
    lifecycle::ExportStatus as Stored,
};

use crate::ms_to_datetime;

/// Whether a file kept until `expires_at` is past it: its download answers 410, and its
/// export reads `expired` before the cleanup has removed it.
pub fn past_expiry(expires_at: Option<i64>) -> bool {
    expires_at.is_some_and(|at| at <= db::now_ms())
}

/// A document's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormat {
    /// PDF, A4.
    Pdf,
    /// Word (Office Open XML), A4.
    Docx,
}

/// What an export renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ExportType {
    /// One session's notes.
    SessionNotes,
    /// A patient's progress over weeks.
    ProgressReport,
}

/// Where an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExportStatus {
    /// Waiting for a worker.
    Queued,
    /// Being rendered.
    Rendering,
    /// The file can be downloaded until `expires_at`.
    Ready,
    /// Rendering failed; `error` says why.
    Failed,
    /// The file was removed after 7 days.
    Expired,
    /// Stopped by `POST /exports/{id}/cancel` (or an admin); no file.
    Cancelled,
}

/// An export.
#[derive(Debug, Object)]
pub struct ExportView {
    /// Its id.
    pub id: String,
    /// What it renders.
    #[oai(rename = "type")]
    pub kind: ExportType,
    /// Its format.
    pub format: ExportFormat,
    /// Where it is.
    pub status: ExportStatus,
    /// The session, for session notes.
    pub session_id: Option<String>,
    /// The patient.
    pub patient_id: String,
    /// Weeks covered, for a progress report.
    pub weeks: Option<i64>,
    /// The job rendering it (`GET /api/v1/jobs/{id}`).
    pub job_id: Option<String>,
    /// Why rendering failed (or why its last attempt did, while it is retried).
    pub error: Option<String>,
    /// The file's name, once ready.
    pub file_name: Option<String>,
    /// The file's size, once ready.
    pub size_bytes: Option<i64>,
    /// Where to download it, while ready.
    pub download_url: Option<String>,
    /// When it was asked for.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the file was ready.
    pub ready_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the file is (or was) removed.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<ExportRow> for ExportView {
    fn from(row: ExportRow) -> Self {
        let status = match row.status {
            Stored::Queued => ExportStatus::Queued,
            Stored::Rendering => ExportStatus::Rendering,
            // Past its time the file is gone (or about to be, once the cleanup runs): the
            // download answers 410, so the export reads expired already.
            Stored::Ready if past_expiry(row.expires_at) => ExportStatus::Expired,
            Stored::Ready => ExportStatus::Ready,
            Stored::Failed => ExportStatus::Failed,
            Stored::Expired => ExportStatus::Expired,
            Stored::Cancelled => ExportStatus::Cancelled,
        };
        Self {
            download_url: (status == ExportStatus::Ready)
                .then(|| format!("/api/v1/exports/{}/download", row.id)),
            kind: if row.kind == "progress_report" {
                ExportType::ProgressReport
            } else {
                ExportType::SessionNotes
            },
            format: if row.format == "docx" {
                ExportFormat::Docx
            } else {
                ExportFormat::Pdf
            },
            status,
            id: row.id,
            session_id: row.session_id,
            patient_id: row.patient_id,
            weeks: row.weeks,
            job_id: row.job_id,
            error: row.error,
            file_name: row.file_name,
            size_bytes: row.size_bytes,
            created_at: ms_to_datetime(row.created_at),
            ready_at: row.ready_at.map(ms_to_datetime),
            expires_at: row.expires_at.map(ms_to_datetime),
        }
    }
}

//! `/exports`: practice documents (a session's notes, a patient's progress report) rendered
//! as PDF or DOCX by the `render_export` job, listed, downloaded (audited) and deleted.
//!
//! Practitioners only, for their own patients; anything else is 404. At most
//! `EXPORTS_PER_HOUR` requests per account and hour (shared by API replicas through Redis);
//! a file is kept 7 days after it is ready, then the cleanup job removes it and the export
//! says `expired` (its download answers 410).

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi, Union,
    param::{Header, Path, Query},
    payload::Json,
    types::ToJSON,
};
use tend_shared::db::{
    self,
    audit::AuditAction,
    exports::{ExportRow, NewExport},
};
use tend_shared::jobs::kinds::render_export::{RenderExport, content_type};

use super::{
    ApiTags,
    cancel::{Work, cancel_own},
};
use crate::{
    body::{BodyRules, JsonBody},
    download::{FileDownload, Kinds, Stored},
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::{IdempotencyKey, PageCursor, RecordId},
    guards::Practitioner,
    idempotency::{self, Created, KeyedRequest},
    limits::{self, Budget},
    pagination::PageRequest,
    state::AppState,
};
pub use tend_views::exports::{ExportFormat, ExportStatus, ExportType, ExportView};

pub use crate::limits::EXPORTS_PER_HOUR;

/// What to render.
#[derive(Debug, Union)]
#[oai(discriminator_name = "type", one_of)]
pub enum NewExportRequest {
    /// The notes of one recorded session.
    #[oai(mapping = "session_notes")]
    SessionNotes(SessionNotesExport),
    /// A patient's last weeks: sessions as a table and mood as a chart.
    #[oai(mapping = "progress_report")]
    ProgressReport(ProgressReportExport),
}

impl BodyRules for NewExportRequest {}

/// A session-notes export.
#[derive(Debug, Object)]
pub struct SessionNotesExport {
    /// `pdf` (for the file) or `docx` (to edit).
    pub format: ExportFormat,
    /// The session; it must have notes (422 otherwise).
    pub session_id: RecordId,
}

/// A progress-report export.
#[derive(Debug, Object)]
pub struct ProgressReportExport {
    /// `pdf` or `docx`.
    pub format: ExportFormat,
    /// The patient.
    pub patient_id: RecordId,
    /// Weeks covered, through the current one: 1 to 52 (default 12).
    #[oai(validator(minimum(value = "1"), maximum(value = "52")))]
    pub weeks: Option<i64>,
}

/// A page of exports.
#[derive(Debug, Object)]
pub struct ExportPage {
    /// Newest first.
    pub items: Vec<ExportView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum ExportAccepted {
    /// Queued; follow `status` at `GET /api/v1/exports/{id}`.
    #[oai(status = 202)]
    Accepted(Json<ExportView>, #[oai(header = "Location")] String),
    /// A request with this `Idempotency-Key` was accepted before: its export, as it is now.
    #[oai(status = 200)]
    Replayed(Json<ExportView>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum ExportResponse {
    /// The export.
    #[oai(status = 200)]
    Ok(Json<ExportView>),
}

#[derive(ApiResponse)]
enum ExportList {
    /// A page of your exports.
    #[oai(status = 200)]
    Ok(Json<ExportPage>),
}

#[derive(ApiResponse)]
enum ExportDeleted {
    /// The export and its file are gone.
    #[oai(status = 204)]
    Done,
}

/// The formats an export download sends.
pub struct ExportFiles;

impl Kinds for ExportFiles {
    const CONTENT_TYPES: &'static [&'static str] = &[
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ];
    const DESCRIPTION: &'static str = "The document (PDF or DOCX, as the export's `format`).";
}

/// The `/exports` operations.
pub struct ExportsApi;

#[OpenApi(prefix_path = "/api/v1/exports", tag = "ApiTags::Exports")]
impl ExportsApi {
    /// Render a session's notes or a patient's progress report as PDF or DOCX.
    ///
    /// Answers `202` with the export; the `render_export` job renders it within seconds.
    /// Your own patients and sessions only (404 otherwise); a session without notes yet is a
    /// 422. At most 20 requests per hour (429 with `Retry-After`). A retried request with the
    /// same `Idempotency-Key` answers the first export and starts nothing.
    #[oai(path = "/", method = "post", operation_id = "createExport")]
    async fn create(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        meta: RequestMeta,
        /// Makes a retried request safe: the same key answers the first export.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<IdempotencyKey>>,
        body: JsonBody<NewExportRequest>,
    ) -> ApiResult<ExportAccepted> {
        let keyed = KeyedRequest::new(idempotency_key.0.map(|k| k.0), || {
            body.0.to_json().unwrap_or_default()
        });
        if let Some(row) =
            idempotency::replayed::<ExportRow>(&state, &user.id, keyed.as_ref()).await?
        {
            let location = location(&row.id);
            return Ok(ExportAccepted::Replayed(Json(row.into()), location));
        }
        limits::spend(&state, Budget::Exports, &user.id).await?;
        let (kind, format, session_id, patient_id, weeks) = match &body.0 {
            NewExportRequest::SessionNotes(req) => {
                let session = db::sessions::find(&state.db, &req.session_id)
                    .await?
                    .filter(|s| s.practitioner_id == user.id)
                    .ok_or_else(|| ApiError::not_found("session"))?;
                let has_notes = db::sessions::texts(&state.db, &session.id)
                    .await?
                    .is_some_and(|t| t.notes.is_some());
                if !has_notes {
                    return Err(ApiError::invalid_field(
                        "session_id",
                        format!(
                            "the session has no notes yet (it is {})",
                            session.status().as_str()
                        ),
                    ));
                }
                (
                    "session_notes",
                    req.format,
                    Some(session.id),
                    session.patient_id,
                    None,
                )
            }
            NewExportRequest::ProgressReport(req) => {
                let patient = db::patients::find(&state.db, &req.patient_id)
                    .await?
                    .filter(|p| p.practitioner_id == user.id)
                    .ok_or_else(|| ApiError::not_found("patient"))?;
                let weeks = req.weeks.unwrap_or(12);
                ("progress_report", req.format, None, patient.id, Some(weeks))
            }
        };
        let id = db::new_id();
        let id_text = id.to_string();
        let mut tx = state.begin().await?;
        let job = tx
            .enqueue(
                &RenderExport { export_id: id },
                &meta.job_origin(Some(&user.id)),
            )
            .await?;
        let new = NewExport {
            id: &id_text,
            practitioner_id: &user.id,
            kind,
            format: match format {
                ExportFormat::Pdf => "pdf",
                ExportFormat::Docx => "docx",
            },
            session_id: session_id.as_deref(),
            patient_id: &patient_id,
            weeks,
            job_id: &job.id,
            idempotency_key: keyed.as_ref().map(|k| k.key.as_str()),
            idempotency_fingerprint: keyed.as_ref().map(|k| k.fingerprint.as_str()),
        };
        let inserted = db::exports::insert(&mut tx, &new).await;
        let created = idempotency::commit_created::<ExportRow>(
            &state,
            tx,
            inserted,
            &user.id,
            keyed.as_ref(),
            &id_text,
        )
        .await?;
        Ok(match created {
            Created::New(row) => ExportAccepted::Accepted(Json(row.into()), location(&id_text)),
            Created::Replayed(row) => {
                let location = location(&row.id);
                ExportAccepted::Replayed(Json(row.into()), location)
            }
        })
    }

    /// Your exports, newest first.
    #[oai(path = "/", method = "get", operation_id = "listExports")]
    async fn list(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<PageCursor>>,
    ) -> ApiResult<ExportList> {
        let page = PageRequest::parse(limit.0, cursor.0.map(|c| c.0))?;
        let rows = db::exports::list(
            &state.db,
            &user.id,
            page.cursor.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |r| r.id.clone());
        Ok(ExportList::Ok(Json(ExportPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        })))
    }

    /// One of your exports.
    #[oai(path = "/:id", method = "get", operation_id = "getExport")]
    async fn get(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        id: Path<String>,
    ) -> ApiResult<ExportResponse> {
        let row = own(&state, &user.id, &id.0).await?;
        Ok(ExportResponse::Ok(Json(row.into())))
    }

    /// Download the document (PDF or DOCX), streamed.
    ///
    /// Every download is written to the audit log with the IP and user agent. `409
    /// not-ready` before the file is ready (or when rendering failed); `410` once it expired.
    #[oai(
        path = "/:id/download",
        method = "get",
        operation_id = "downloadExport"
    )]
    async fn download(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<FileDownload<ExportFiles>> {
        let row = own(&state, &user.id, &id.0).await?;
        let stored = Stored {
            status: row.status.as_str(),
            expired: row.status == tend_shared::lifecycle::ExportStatus::Expired,
            expires_at: row.expires_at,
            object_key: row.object_key.as_deref(),
            what: "export",
        };
        let detail = serde_json::json!({"export_id": row.id, "patient_id": row.patient_id});
        FileDownload::open(
            &state,
            &meta,
            &user.id,
            stored,
            (AuditAction::ExportDownloaded, detail),
            content_type(&row.format),
            row.file_name
                .clone()
                .unwrap_or_else(|| format!("{}.{}", row.id, row.format)),
        )
        .await
    }

    /// Stop a queued or rendering export: it reads `cancelled` at once and no file is kept.
    /// 409 `not-cancellable` once it is ready, failed or cancelled.
    #[oai(path = "/:id/cancel", method = "post", operation_id = "cancelExport")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<ExportResponse> {
        let row = own(&state, &user.id, &id.0).await?;
        cancel_own(&state, &user.id, &meta, Work::Export, &row.id).await?;
        let row = own(&state, &user.id, &row.id).await?;
        Ok(ExportResponse::Ok(Json(row.into())))
    }

    /// Delete an export and its file.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteExport")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        id: Path<String>,
    ) -> ApiResult<ExportDeleted> {
        let row = own(&state, &user.id, &id.0).await?;
        if let Some(key) = &row.object_key {
            state.delete_objects(std::slice::from_ref(key)).await?;
        }
        db::exports::delete(&state.db, &row.id).await?;
        Ok(ExportDeleted::Done)
    }
}

fn location(id: &str) -> String {
    format!("/api/v1/exports/{id}")
}

async fn own(state: &AppState, user_id: &str, id: &str) -> ApiResult<ExportRow> {
    db::exports::find_own(&state.db, user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("export"))
}

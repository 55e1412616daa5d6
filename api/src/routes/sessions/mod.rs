//! `/sessions`: upload a recorded session (or its transcript), follow it through
//! transcription and extraction, read the transcript and notes, retry or re-extract, delete.
//!
//! Practitioners see their own sessions. A `patient` account sees the sessions of the patient
//! records linked to it, with the patient summary as the only part of the notes; everything
//! else answers 404 for it. Another practitioner's session is 404, never 403.

mod create;
pub mod upload;
pub mod views;

use poem::web::Data;
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use tend_shared::jobs::kinds::{extract::ExtractNotes, transcribe::TranscribeSession};
use tend_shared::{
    db::{
        self,
        sessions::{Reader, SessionFilter, SessionRow},
        users::User,
    },
    domain::Role,
    sessions::{SessionStatus, Stage},
};
use uuid::Uuid;

use self::{
    upload::SessionUpload,
    views::{
        NotesView, SessionPage, SessionStatusView, SessionView, StageQueued, TranscriptView,
        UsageSummary,
    },
};
use super::{
    ApiTags,
    cancel::{Work, cancel_own},
};
use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::{IdempotencyKey, PageCursor, RecordId},
    guards::{Practitioner, SignedIn},
    limits::{self, Budget},
    pagination::PageRequest,
    state::AppState,
};

#[derive(ApiResponse)]
enum SessionAccepted {
    /// Stored; processing is queued. Follow `status` at `GET /api/v1/sessions/{id}`.
    #[oai(status = 202)]
    Accepted(Json<SessionView>, #[oai(header = "Location")] String),
    /// An upload with this `Idempotency-Key` was accepted before: its session, as it is now.
    /// Nothing new was stored.
    #[oai(status = 200)]
    Replayed(Json<SessionView>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum SessionResponse {
    /// The session.
    #[oai(status = 200)]
    Ok(Json<SessionView>),
}

#[derive(ApiResponse)]
enum SessionList {
    /// A page of sessions.
    #[oai(status = 200)]
    Ok(Json<SessionPage>),
}

#[derive(ApiResponse)]
enum TranscriptResponse {
    /// The transcript.
    #[oai(status = 200)]
    Ok(Json<TranscriptView>),
}

#[derive(ApiResponse)]
enum NotesResponse {
    /// The notes.
    #[oai(status = 200)]
    Ok(Json<NotesView>),
}

#[derive(ApiResponse)]
enum StageResponse {
    /// The stage is queued.
    #[oai(status = 202)]
    Accepted(Json<StageQueued>),
}

#[derive(ApiResponse)]
enum SessionDeleted {
    /// The session, its transcript, notes and stored audio are gone.
    #[oai(status = 204)]
    Done,
}

/// The `/sessions` operations.
pub struct SessionsApi;

#[OpenApi(prefix_path = "/api/v1/sessions", tag = "ApiTags::Sessions")]
impl SessionsApi {
    /// Upload a recorded session (audio) or its transcript, for one of your patients.
    ///
    /// Answers `202` as soon as the file is stored; transcription (skipped for a transcript)
    /// and note extraction run as jobs. The file type is recognised from its content. Audio
    /// larger than `MAX_UPLOAD_BYTES` (default 500 MiB) answers `413` and nothing is kept.
    /// Each upload spends one of the account's `UPLOADS_PER_HOUR` (429 with `Retry-After`).
    #[oai(path = "/", method = "post", operation_id = "uploadSession")]
    async fn upload(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        meta: RequestMeta,
        /// Any unique string (a UUID, say), up to 255 characters. Sending the same upload
        /// again with the same key (after a timeout, say) answers `200` with the session the
        /// first one created, and stores nothing new.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<IdempotencyKey>>,
        body: SessionUpload,
    ) -> ApiResult<SessionAccepted> {
        limits::spend(&state, Budget::Uploads, &user.id).await?;
        create::accept(&state, &user, &meta, idempotency_key.0.map(|k| k.0), body).await
    }

    /// Sessions you may see, newest first, optionally of one patient or in one status.
    #[oai(path = "/", method = "get", operation_id = "listSessions")]
    async fn list(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        /// Only this patient's sessions.
        patient_id: Query<Option<RecordId>>,
        /// Only sessions in this status.
        status: Query<Option<SessionStatusView>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<PageCursor>>,
    ) -> ApiResult<SessionList> {
        let reader = reader(&user)?;
        let page = PageRequest::parse(limit.0, cursor.0.map(|c| c.0))?;
        let filter = SessionFilter {
            patient_id: patient_id.0.as_deref(),
            status: status.0.map(Into::into),
            cursor: page.cursor.as_deref(),
        };
        let rows = db::sessions::list(&state.db, reader, &filter, page.fetch_limit()).await?;
        let (rows, next_cursor) = page.finish(rows, |s| s.id.clone());
        let items = rows
            .into_iter()
            .map(|row| match reader {
                Reader::Practitioner(_) => SessionView::new(row, None),
                Reader::Patient(_) => SessionView::for_patient(row),
            })
            .collect();
        Ok(SessionList::Ok(Json(SessionPage { items, next_cursor })))
    }

    /// One session: status, failed stage and error, stage timings, provider usage and cost.
    #[oai(path = "/:id", method = "get", operation_id = "getSession")]
    async fn get(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        id: Path<String>,
    ) -> ApiResult<SessionResponse> {
        let reader = reader(&user)?;
        let row = find(&state, &id.0, reader).await?;
        let view = match reader {
            Reader::Practitioner(_) => {
                let usage = db::usage::of_session(&state.db, &row.id).await?;
                SessionView::new(row, Some(UsageSummary::new(usage)))
            }
            Reader::Patient(_) => SessionView::for_patient(row),
        };
        Ok(SessionResponse::Ok(Json(view)))
    }

    /// The transcript with timed segments (practitioners; `409` until transcribed).
    #[oai(
        path = "/:id/transcript",
        method = "get",
        operation_id = "getTranscript"
    )]
    async fn transcript(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        id: Path<String>,
    ) -> ApiResult<TranscriptResponse> {
        let row = find(&state, &id.0, Reader::Practitioner(&user.id)).await?;
        let texts = db::sessions::texts(&state.db, &row.id)
            .await?
            .ok_or_else(|| ApiError::not_found("session"))?;
        let view = TranscriptView::from_stored(&row, &texts).map_err(ApiError::internal)?;
        let Some(view) = view else {
            return Err(not_ready(&row, "The transcript is"));
        };
        Ok(TranscriptResponse::Ok(Json(view)))
    }

    /// The notes (`409` until processed). A patient gets the patient summary only.
    #[oai(path = "/:id/notes", method = "get", operation_id = "getNotes")]
    async fn notes(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        id: Path<String>,
    ) -> ApiResult<NotesResponse> {
        let reader = reader(&user)?;
        let row = find(&state, &id.0, reader).await?;
        let texts = db::sessions::texts(&state.db, &row.id)
            .await?
            .ok_or_else(|| ApiError::not_found("session"))?;
        let view = NotesView::from_stored(&row.id, &texts, reader).map_err(ApiError::internal)?;
        let Some(view) = view else {
            return Err(not_ready(&row, "The notes are"));
        };
        Ok(NotesResponse::Ok(Json(view)))
    }

    /// Extract the notes again from the stored transcript (after a prompt or model change,
    /// say). The current notes stay readable until the new ones replace them. Spends one of
    /// the account's `REEXTRACTIONS_PER_HOUR`, as a retry does (429 with `Retry-After`).
    #[oai(
        path = "/:id/extract-notes",
        method = "post",
        operation_id = "extractNotes"
    )]
    async fn extract_notes(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<StageResponse> {
        let row = find(&state, &id.0, Reader::Practitioner(&user.id)).await?;
        let status = row.status();
        let has_transcript = row.transcription_finished_at.is_some();
        let allowed = matches!(status, SessionStatus::Processed)
            || (status == SessionStatus::Failed && has_transcript);
        if !allowed {
            return Err(ApiError::conflict(
                "session-busy",
                format!(
                    "Notes can be extracted again once the session is processed (or failed after \
                     transcription); it is {}.",
                    status.as_str()
                ),
            ));
        }
        limits::spend(&state, Budget::ReExtractions, &user.id).await?;
        let queued = requeue(&state, &user, &meta, &row, Stage::Extraction).await?;
        Ok(StageResponse::Accepted(Json(queued)))
    }

    /// Resume a failed session from the stage that failed.
    #[oai(path = "/:id/retry", method = "post", operation_id = "retrySession")]
    async fn retry(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<StageResponse> {
        let row = find(&state, &id.0, Reader::Practitioner(&user.id)).await?;
        let stage = match (row.status(), row.failed_stage()) {
            (SessionStatus::Failed, Some(stage)) => stage,
            (status, _) => {
                return Err(ApiError::conflict(
                    "session-not-failed",
                    format!(
                        "Only a failed session can be retried; it is {}.",
                        status.as_str()
                    ),
                ));
            }
        };
        limits::spend(&state, Budget::ReExtractions, &user.id).await?;
        let queued = requeue(&state, &user, &meta, &row, stage).await?;
        Ok(StageResponse::Accepted(Json(queued)))
    }

    /// Stop a session in progress (or waiting for the practice's budget): it reads
    /// `cancelled` at once, a queued stage never runs and a running one stops within seconds;
    /// transcribed chunks kept for retries go. The recording stays until the session is
    /// deleted. 409 `not-cancellable` once processed, failed or cancelled.
    #[oai(path = "/:id/cancel", method = "post", operation_id = "cancelSession")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<SessionResponse> {
        let row = find(&state, &id.0, Reader::Practitioner(&user.id)).await?;
        cancel_own(&state, &user.id, &meta, Work::Session, &row.id).await?;
        let row = find(&state, &row.id, Reader::Practitioner(&user.id)).await?;
        let usage = db::usage::of_session(&state.db, &row.id).await?;
        let view = SessionView::new(row, Some(UsageSummary::new(usage)));
        Ok(SessionResponse::Ok(Json(view)))
    }

    /// Delete a session with its transcript, notes and stored audio.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteSession")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        id: Path<String>,
    ) -> ApiResult<SessionDeleted> {
        let row = find(&state, &id.0, Reader::Practitioner(&user.id)).await?;
        let mut keys: Vec<String> = row.object_key.iter().cloned().collect();
        // Exports of its notes go with it (their rows cascade).
        keys.extend(
            db::exports::objects_of(&state.db, db::exports::ExportOwner::Session, &row.id).await?,
        );
        state.delete_objects(&keys).await?;
        db::sessions::delete(&state.db, &row.id, &user.id).await?;
        tracing::info!(session_id = %row.id, "session deleted");
        Ok(SessionDeleted::Done)
    }
}

/// Queues `stage` again and answers with the new job.
async fn requeue(
    state: &AppState,
    user: &User,
    meta: &RequestMeta,
    row: &SessionRow,
    stage: Stage,
) -> ApiResult<StageQueued> {
    let session_id = Uuid::parse_str(&row.id)
        .map_err(|e| ApiError::internal(format!("stored session id is not a UUID: {e}")))?;
    let origin = meta.job_origin(Some(&user.id));
    let mut tx = state.begin().await?;
    let job = match stage {
        Stage::Transcription => {
            tx.enqueue(&TranscribeSession { session_id }, &origin)
                .await?
        }
        Stage::Extraction => tx.enqueue(&ExtractNotes { session_id }, &origin).await?,
    };
    if !db::sessions::requeue_stage(&mut tx, &row.id, stage, &job.id).await? {
        return Err(ApiError::conflict(
            "session-busy",
            "The session changed meanwhile; read it again.",
        ));
    }
    tx.commit().await?;
    tracing::info!(session_id = %row.id, stage = stage.as_str(), "stage queued again");
    Ok(StageQueued {
        session_id: row.id.clone(),
        status: stage.queued_status().into(),
        job_id: job.id,
    })
}

/// Whose sessions the caller reads (admins run the platform; they do not read clinical data).
fn reader(user: &User) -> ApiResult<Reader<'_>> {
    match user.role() {
        Role::Practitioner => Ok(Reader::Practitioner(&user.id)),
        Role::Patient => Ok(Reader::Patient(&user.id)),
        Role::Admin => Err(ApiError::forbidden(
            "Admin accounts do not read clinical data; use a practitioner account.",
        )),
    }
}

async fn find(state: &AppState, id: &str, reader: Reader<'_>) -> ApiResult<SessionRow> {
    db::sessions::find_for(&state.db, id, reader)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))
}

/// 409 for a part of the session not there yet; `what` is its subject and verb ("The notes
/// are").
fn not_ready(row: &SessionRow, what: &str) -> ApiError {
    ApiError::conflict(
        "not-ready",
        format!(
            "{what} not ready yet; the session is {}.",
            row.status().as_str()
        ),
    )
}

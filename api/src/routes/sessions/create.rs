//! The upload workflow behind `POST /sessions`: read the form while the file streams into the
//! store, then record the session and start its first job in one transaction (or answer the
//! session an earlier upload of the same request with the same `Idempotency-Key` made, and
//! refuse the key with another request). A refused upload leaves nothing behind.

use poem_openapi::payload::Json;
use tend_shared::jobs::kinds::{extract::ExtractNotes, transcribe::TranscribeSession};
use tend_shared::{
    auth::opaque,
    db::{
        self,
        sessions::{NewSession, SessionRow},
        users::User,
    },
    domain::FieldError,
    sessions::{SessionStatus, recording_key},
};
use uuid::Uuid;

use super::{
    SessionAccepted,
    upload::{SessionUpload, StoredFile, store_file, text_field},
    views::SessionView,
};
use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    idempotency::{self, Created, KeyedRequest},
    routes::patients::owned,
    state::AppState,
};

/// Accepts an upload: streams the form's file to the store, then records the session and its
/// first job, or answers an earlier upload with the same key.
pub(super) async fn accept(
    state: &AppState,
    user: &User,
    meta: &RequestMeta,
    idempotency_key: Option<String>,
    body: SessionUpload,
) -> ApiResult<SessionAccepted> {
    // The key's form was checked by the middleware. A retry with a key already used is read
    // like any upload, so that it can be compared with the request that used the key first;
    // its copy is then discarded.
    let session_id = db::new_id();
    let key = recording_key(&session_id);
    // Recorded first, so the cleanup job removes what a crash mid-upload leaves behind.
    db::uploads::begin_upload(&state.db, &key).await?;
    let mut form = UploadForm {
        idempotency_key,
        ..UploadForm::default()
    };
    let read = form.read(state, body.0, &key).await;
    let stored_audio = matches!(form.file, Some(StoredFile::Audio { .. }));
    let created = match read {
        Ok(()) => create_session(state, user, meta, session_id, form).await,
        Err(err) => Err(err),
    };
    match created {
        Ok(Created::New(row)) => {
            let location = format!("/api/v1/sessions/{}", row.id);
            Ok(SessionAccepted::Accepted(
                Json(SessionView::new(row, None)),
                location,
            ))
        }
        Ok(Created::Replayed(first)) => {
            // A twin with the same key won the race: keep its session, drop this copy.
            discard_upload(state, &key, stored_audio).await;
            let location = format!("/api/v1/sessions/{}", first.id);
            Ok(SessionAccepted::Replayed(
                Json(SessionView::new(first, None)),
                location,
            ))
        }
        Err(err) => {
            discard_upload(state, &key, stored_audio).await;
            Err(err)
        }
    }
}

/// Removes a refused upload's object, then forgets it (if removal fails, the pending row
/// stays and the cleanup job tries again later).
async fn discard_upload(state: &AppState, key: &str, stored: bool) {
    if stored && let Err(err) = state.store.discard(key).await {
        tracing::warn!(error = %format!("{err:#}"), "could not remove a refused upload; cleanup will");
        return;
    }
    if let Err(err) = db::uploads::end_upload(&state.db, key).await {
        tracing::warn!(error = %err, "could not forget a refused upload; cleanup will");
    }
}

/// What the multipart body of an upload held, and its `Idempotency-Key`.
#[derive(Default)]
struct UploadForm {
    patient_id: Option<String>,
    recorded_at: Option<String>,
    file: Option<StoredFile>,
    idempotency_key: Option<String>,
}

impl UploadForm {
    /// Walks the fields in whatever order they come, streaming the file to `key`.
    async fn read(
        &mut self,
        state: &AppState,
        mut multipart: poem::web::Multipart,
        key: &str,
    ) -> ApiResult<()> {
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(super::upload::body_error)?
        {
            match field.name() {
                Some("patient_id") => {
                    self.patient_id = Some(text_field(field, "patient_id").await?)
                }
                Some("recorded_at") => {
                    self.recorded_at = Some(text_field(field, "recorded_at").await?)
                }
                Some("file") if self.file.is_some() => {
                    return Err(ApiError::invalid_field("file", "send one file per session"));
                }
                Some("file") => self.file = Some(store_file(state, field, key).await?),
                // The spec says the form is closed: a misspelt field is named, not lost.
                other => {
                    let name = other
                        .unwrap_or_default()
                        .chars()
                        .take(64)
                        .collect::<String>();
                    return Err(ApiError::validation(vec![FieldError::new(
                        if name.is_empty() { "form" } else { &name },
                        "is not a field of this form (patient_id, recorded_at, file)",
                    )]));
                }
            }
        }
        Ok(())
    }
}

/// Checks the fields and stores the session with its first job.
async fn create_session(
    state: &AppState,
    user: &User,
    meta: &RequestMeta,
    session_id: Uuid,
    form: UploadForm,
) -> ApiResult<Created<SessionRow>> {
    let UploadForm {
        patient_id,
        recorded_at,
        file,
        idempotency_key,
    } = form;
    let mut errors = Vec::new();
    if patient_id.as_deref().is_none_or(|p| p.trim().is_empty()) {
        errors.push(FieldError::new("patient_id", "is required"));
    }
    let recorded_at = match recorded_at
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => match chrono::DateTime::parse_from_rfc3339(raw) {
            Ok(at) => Some(at.timestamp_millis()),
            Err(_) => {
                errors.push(FieldError::new(
                    "recorded_at",
                    "must be an RFC 3339 date-time, e.g. 2026-11-20T14:00:00Z",
                ));
                None
            }
        },
    };
    if file.is_none() {
        errors.push(FieldError::new("file", "is required"));
    }
    let (Some(patient_id), Some(file), true) = (patient_id, file, errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let patient = owned(state, patient_id.trim(), user).await?;

    let (status, source, media_type, object_key, size, transcript) = match &file {
        StoredFile::Audio {
            key,
            media_type,
            size,
        } => (
            SessionStatus::Uploaded,
            "audio",
            *media_type,
            Some(key.as_str()),
            *size,
            None,
        ),
        StoredFile::Transcript {
            format,
            transcript,
            size,
        } => (
            SessionStatus::Transcribed,
            "transcript",
            format.media_type(),
            None,
            *size,
            Some(transcript),
        ),
    };
    let segments_json = transcript
        .map(|t| serde_json::to_string(&t.segments))
        .transpose()
        .map_err(|e| ApiError::internal(format!("encoding segments: {e}")))?;

    let id = session_id.to_string();
    let origin = meta.job_origin(Some(&user.id));
    let mut tx = state.begin().await?;
    // Audio is transcribed first; a transcript goes straight to extraction.
    let job = match transcript {
        None => {
            tx.enqueue(&TranscribeSession { session_id }, &origin)
                .await?
        }
        Some(_) => tx.enqueue(&ExtractNotes { session_id }, &origin).await?,
    };
    // What the request asked for: the same key with another patient, time or file is refused.
    let keyed = KeyedRequest::new(idempotency_key, || {
        serde_json::json!({
            "patient_id": patient.id,
            "recorded_at": recorded_at,
            "source": source,
            "media_type": media_type,
            "size_bytes": size,
            "transcript": transcript.map(|t| opaque::digest(&t.text)),
        })
    });
    let new = NewSession {
        id: &id,
        practitioner_id: &user.id,
        patient_id: &patient.id,
        status,
        source,
        media_type,
        object_key,
        size_bytes: size as i64,
        recorded_at,
        duration_ms: transcript.and_then(|t| t.duration_ms),
        transcript: transcript.map(|t| t.text.as_str()),
        segments: segments_json.as_deref(),
        job_id: &job.id,
        idempotency_key: keyed.as_ref().map(|k| k.key.as_str()),
        idempotency_fingerprint: keyed.as_ref().map(|k| k.fingerprint.as_str()),
    };
    // The upload is the session's now: forgotten in the same transaction that records it.
    db::uploads::end_upload(&mut *tx, &recording_key(&session_id)).await?;
    let inserted = db::sessions::insert(&mut tx, &new).await;
    let created = idempotency::commit_created::<SessionRow>(
        state,
        tx,
        inserted,
        &user.id,
        keyed.as_ref(),
        &id,
    )
    .await?;
    if let Created::New(_) = created {
        tracing::info!(session_id = %id, source = new.source, size_bytes = new.size_bytes, "session uploaded");
    }
    Ok(created)
}

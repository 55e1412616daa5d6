//! The multipart body of `POST /sessions`, read as a stream.
//!
//! [`SessionUpload`] documents itself in the spec through [`SessionUploadForm`] (a derived
//! multipart schema) but parses nothing up front: the handler walks the fields, sniffs the
//! file's first bytes, and streams audio straight into the object store under its own size
//! limit, so a 500 MB recording never sits in memory or in a temporary file.

use crate::fields::{RecordId, Timestamp};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, stream};
use poem::{FromRequest, Request, RequestBody, web::Field};
use poem_openapi::{
    Multipart, impl_apirequest_for_payload,
    payload::{ParsePayload, Payload},
    registry::{MetaSchemaRef, Registry},
    types::multipart::Upload,
};
use tend_shared::{
    sessions::{
        Sniffed, TranscriptFormat,
        media::SNIFF_BYTES,
        sniff,
        transcript::{self, Transcript},
    },
    storage::PutError,
};
use tokio_util::io::ReaderStream;

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

/// Largest transcript file accepted (a long session's captions are well under 1 MB).
pub const MAX_TRANSCRIPT_BYTES: usize = 10 * 1024 * 1024;
/// Largest plain field (`patient_id`, `recorded_at`).
const MAX_FIELD_BYTES: usize = 1024;
/// Bytes read from the network at a time.
const READ_CHUNK: usize = 64 * 1024;

/// The form fields of `POST /sessions` (for the spec; the body is read by [`SessionUpload`]).
#[derive(Debug, Multipart)]
#[allow(dead_code)]
pub struct SessionUploadForm {
    /// The patient the session belongs to (one of yours).
    patient_id: RecordId,
    /// When the session took place (RFC 3339), if known.
    recorded_at: Option<Timestamp>,
    /// The recording (mp3, m4a/mp4, wav, ogg/opus, webm, flac) or a transcript (plain
    /// UTF-8 text, WebVTT or SRT), recognised by content, not by name or declared type.
    file: Upload,
}

/// The streamed multipart body of `POST /sessions`.
pub struct SessionUpload(pub poem::web::Multipart);

impl Payload for SessionUpload {
    const CONTENT_TYPE: &'static str = "multipart/form-data";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(Self::CONTENT_TYPE))
    }

    fn schema_ref() -> MetaSchemaRef {
        <SessionUploadForm as Payload>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <SessionUploadForm as Payload>::register(registry);
    }
}

impl ParsePayload for SessionUpload {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(
            poem::web::Multipart::from_request(request, body).await?,
        ))
    }
}

impl_apirequest_for_payload!(SessionUpload);

/// The file part of an upload, once handled.
pub enum StoredFile {
    /// Audio, now in the object store at `key`.
    Audio {
        /// The object key.
        key: String,
        /// The sniffed media type.
        media_type: &'static str,
        /// Bytes stored.
        size: u64,
    },
    /// A transcript, parsed (not stored as a file).
    Transcript {
        /// Its format.
        format: TranscriptFormat,
        /// The parsed text and segments.
        transcript: Transcript,
        /// Bytes received.
        size: u64,
    },
}

/// Reads a short text field.
pub async fn text_field(field: Field, name: &str) -> ApiResult<String> {
    let stream = ReaderStream::new(field.into_async_read());
    read_text(stream, Vec::new(), MAX_FIELD_BYTES, name)
        .await?
        .ok_or_else(|| ApiError::invalid_field(name, "is too long"))
}

/// Reads the rest of `stream` after `read`, as UTF-8 text of at most `max` bytes (`None`
/// when longer); `field` names the form field in errors.
async fn read_text<S>(
    mut stream: S,
    mut read: Vec<u8>,
    max: usize,
    field: &str,
) -> ApiResult<Option<String>>
where
    S: futures::Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.map_err(body_error)?);
        if read.len() > max {
            return Ok(None);
        }
    }
    String::from_utf8(read)
        .map(Some)
        .map_err(|_| ApiError::invalid_field(field, "is not UTF-8 text"))
}

/// Sniffs the file part and stores it: audio streamed to the store at `key`, a transcript
/// parsed in memory.
pub async fn store_file(state: &AppState, field: Field, key: &str) -> ApiResult<StoredFile> {
    let mut stream = ReaderStream::with_capacity(field.into_async_read(), READ_CHUNK);
    let mut head = BytesMut::new();
    let mut ended = false;
    while head.len() < SNIFF_BYTES {
        match stream.next().await {
            Some(chunk) => head.extend_from_slice(&chunk.map_err(body_error)?),
            None => {
                ended = true;
                break;
            }
        }
    }
    if head.is_empty() {
        return Err(ApiError::unsupported_media(
            "The file is empty: it is neither audio nor a transcript.",
        ));
    }
    let head = head.freeze();
    match sniff(&head, ended) {
        Sniffed::Audio(media_type) => {
            let body = stream::iter([Ok::<Bytes, std::io::Error>(head)]).chain(stream);
            let limit = state.settings.max_upload_bytes;
            let size = state
                .store
                .put(key, media_type, body, limit)
                .await
                .map_err(|err| match err {
                    PutError::TooLarge { limit } => ApiError::too_large(limit),
                    PutError::Body(e) => body_error(e),
                    PutError::Store(e) => {
                        tracing::error!(error = %format!("{e:#}"), "object store failed");
                        ApiError::unavailable(
                            "The object store is unavailable; nothing was kept. Try again.",
                        )
                    }
                })?;
            Ok(StoredFile::Audio {
                key: key.to_owned(),
                media_type,
                size,
            })
        }
        Sniffed::Transcript(format) => {
            let text = read_text(stream, head.to_vec(), MAX_TRANSCRIPT_BYTES, "file")
                .await?
                .ok_or_else(|| ApiError::too_large(MAX_TRANSCRIPT_BYTES as u64))?;
            let size = text.len() as u64;
            let transcript = transcript::parse(format, &text)
                .map_err(|message| ApiError::invalid_field("file", message))?;
            Ok(StoredFile::Transcript {
                format,
                transcript,
                size,
            })
        }
        Sniffed::Unsupported(kind) => Err(ApiError::unsupported_media(format!(
            "The file {} is neither supported audio (mp3, m4a/mp4, wav, ogg/opus, webm, flac) \
             nor a transcript (UTF-8 text, WebVTT, SRT).",
            match kind {
                Some(kind) => format!("looks like {kind}: it"),
                None => "is of an unknown type: it".into(),
            }
        ))),
    }
}

/// A broken body: the client's connection or encoding failed.
pub fn body_error(err: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        "malformed-body",
        format!("The request body could not be read: {err}"),
    )
}

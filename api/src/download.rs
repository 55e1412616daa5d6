//! [`FileDownload`]: a stored file streamed to the client (exports, personal data exports)
//! with its media type and a `Content-Disposition` file name. poem-openapi's payloads fix one
//! media type per response; this one states every type the operation can send ([`Kinds`]), so
//! the spec and the `Content-Type` header agree.

use std::marker::PhantomData;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use poem::{Body, IntoResponse, Response, http::header};
use poem_openapi::{
    ApiResponse,
    registry::{
        MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
    },
};
use tend_shared::{
    db::audit::{self, AuditAction},
    storage::ObjectReader,
};

use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    state::AppState,
};

/// The media types a download operation may answer with.
pub trait Kinds: Send {
    /// Every media type, for the spec.
    const CONTENT_TYPES: &'static [&'static str];
    /// What the 200 response says.
    const DESCRIPTION: &'static str;
}

/// A stored file, streamed.
pub struct FileDownload<K: Kinds> {
    /// Its media type (one of `K::CONTENT_TYPES`).
    pub content_type: &'static str,
    /// The name the browser saves it under.
    pub file_name: String,
    /// Its size.
    pub size: u64,
    /// The bytes.
    pub reader: ObjectReader,
    kinds: PhantomData<K>,
}

impl<K: Kinds> FileDownload<K> {
    /// A download of `reader` (`size` bytes) as `file_name`.
    pub fn new(
        content_type: &'static str,
        file_name: String,
        size: u64,
        reader: ObjectReader,
    ) -> Self {
        Self {
            content_type,
            file_name,
            size,
            reader,
            kinds: PhantomData,
        }
    }
}

/// A stored file to hand out, as its row describes it.
pub struct Stored<'a> {
    /// Its row's status (`ready`, `rendering`, ...), for messages.
    pub status: &'static str,
    /// Whether its row says the file was removed.
    pub expired: bool,
    /// When the file expires (ms).
    pub expires_at: Option<i64>,
    /// Its key in the store, once written.
    pub object_key: Option<&'a str>,
    /// What the row is, for messages ("export").
    pub what: &'a str,
}

impl<K: Kinds> FileDownload<K> {
    /// Opens the file `stored` describes, after writing `action` (with `detail`) to the audit
    /// log for `user_id` with the request's origin: 410 once expired, 409 `not-ready` before
    /// it is written, 503 when the store is down.
    pub async fn open(
        state: &AppState,
        meta: &RequestMeta,
        user_id: &str,
        stored: Stored<'_>,
        audit: (AuditAction, serde_json::Value),
        content_type: &'static str,
        file_name: String,
    ) -> ApiResult<Self> {
        if stored.expired || past_expiry(stored.expires_at) {
            return Err(ApiError::gone(
                "expired",
                format!(
                    "The {} was removed 7 days after it was ready; ask for a new one.",
                    stored.what
                ),
            ));
        }
        let Some(key) = stored.object_key else {
            return Err(ApiError::conflict(
                "not-ready",
                format!(
                    "The {} is {}; there is no file yet.",
                    stored.what, stored.status
                ),
            ));
        };
        let (size, reader) = state.store.reader(key).await.map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "object store unavailable");
            ApiError::unavailable("The file store is unavailable; try again shortly.")
        })?;
        let mut conn = state.db.acquire().await?;
        audit::record(
            &mut conn,
            audit.0,
            Some(user_id),
            &meta.origin(),
            Some(audit.1),
        )
        .await?;
        Ok(Self::new(content_type, file_name, size, reader))
    }
}

/// Characters kept as they are in an RFC 5987 `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `attachment` with an ASCII `filename` (others replaced) and the exact UTF-8 `filename*`.
pub fn content_disposition(file_name: &str) -> String {
    let ascii: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(file_name, ATTR_CHAR)
    )
}

impl<K: Kinds> IntoResponse for FileDownload<K> {
    fn into_response(self) -> Response {
        Response::builder()
            .header(header::CONTENT_TYPE, self.content_type)
            .header(header::CONTENT_LENGTH, self.size)
            .header(
                header::CONTENT_DISPOSITION,
                content_disposition(&self.file_name),
            )
            .header(header::CACHE_CONTROL, "private, no-store")
            .body(Body::from_async_read(self.reader))
    }
}

impl<K: Kinds> ApiResponse for FileDownload<K> {
    fn meta() -> MetaResponses {
        let binary =
            || MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary")));
        let text = || MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")));
        MetaResponses {
            responses: vec![MetaResponse {
                description: K::DESCRIPTION,
                status: Some(200),
                status_range: None,
                content: K::CONTENT_TYPES
                    .iter()
                    .map(|content_type| MetaMediaType {
                        content_type,
                        schema: binary(),
                    })
                    .collect(),
                headers: vec![MetaHeader {
                    name: "Content-Disposition".into(),
                    description: Some(
                        "`attachment` with the file's name (`filename*` in UTF-8).".into(),
                    ),
                    required: true,
                    deprecated: false,
                    schema: text(),
                }],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

pub use tend_views::exports::past_expiry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_their_accents_in_filename_star() {
        assert_eq!(
            content_disposition("notes Åsa.pdf"),
            "attachment; filename=\"notes__sa.pdf\"; filename*=UTF-8''notes%20%C3%85sa.pdf"
        );
    }
}

//! Cross-cutting HTTP behaviour: the request id and its tracing span, one access log line per
//! request, problem+json for every error, and security headers.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderName, HeaderValue, header},
};
use poem_openapi::OperationId;
use tend_shared::ratelimit::Decision;
use tracing::Instrument;

use crate::{
    error::{ApiError, render_error},
    fields::is_idempotency_key,
    state::{AppState, VerifiedToken},
};

pub use crate::extract::RequestId;

/// The header that carries it both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The header that makes a creating request safe to repeat.
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// An `Idempotency-Key` sent twice, or outside its pattern ([`is_idempotency_key`]).
fn bad_idempotency_key(headers: &poem::http::HeaderMap) -> bool {
    let mut keys = headers.get_all(&IDEMPOTENCY_KEY).iter();
    match (keys.next(), keys.next()) {
        (None, _) => false,
        (Some(key), None) => !is_idempotency_key(key.as_bytes()),
        (Some(_), Some(_)) => true,
    }
}

fn acceptable_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Wraps the whole app: request id, span, access log, error rendering, security headers.
pub async fn request_context<E: Endpoint>(
    next: Arc<E>,
    mut req: Request,
) -> poem::Result<Response> {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // A NUL can be in no id, name or filter (PostgreSQL cannot even compare one): a path
    // with one names nothing, a query with one is refused before any handler sees it.
    let nul_in = |raw: &str| percent_encoding::percent_decode_str(raw).any(|b| b == 0);
    let refusal = if nul_in(req.uri().path()) {
        Some(ApiError::not_found("resource"))
    } else if req.uri().query().is_some_and(nul_in) {
        Some(ApiError::invalid_field(
            "query",
            "must not contain NUL characters",
        ))
    } else if bad_idempotency_key(req.headers()) {
        // Checked here, for every operation that takes one: a key the operation could not
        // read (non-ASCII) would otherwise count as absent, and the request run twice.
        Some(ApiError::invalid_field(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters, sent once",
        ))
    } else {
        None
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    async move {
        let started = Instant::now();
        let result = match refusal {
            Some(refused) => Ok(refused.into_response()),
            None => next.call(req).await.map(IntoResponse::into_response),
        };
        let (mut response, operation) = match result {
            Ok(resp) => {
                let operation = resp.data::<OperationId>().map(|o| o.0);
                (resp, operation)
            }
            Err(err) => {
                let operation = err.data::<OperationId>().map(|o| o.0);
                (render_error(err), operation)
            }
        };
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        // By operation, never by path: ids in paths would make a series per resource.
        let operation = operation.unwrap_or(if path.starts_with("/api/") {
            "unmatched"
        } else {
            "other"
        });
        metrics::counter!(
            "tend_http_requests_total",
            "operation" => operation,
            "method" => method.to_string(),
            "status" => status.to_string()
        )
        .increment(1);
        metrics::histogram!(
            "tend_http_request_duration_seconds",
            "operation" => operation,
            "method" => method.to_string()
        )
        .record(elapsed.as_secs_f64());
        if status >= 500 {
            tracing::error!(status, latency_ms, "request failed");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert(X_REQUEST_ID.clone(), value);
        }
        add_security_headers(headers, &path);
        if status == 405
            && let Some(allow) = crate::spec::allowed_methods(&path)
        {
            headers.insert(poem::http::header::ALLOW, HeaderValue::from_static(allow));
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

fn add_security_headers(headers: &mut poem::http::HeaderMap, path: &str) {
    let set = |headers: &mut poem::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if path.starts_with("/api/") {
        // Answers carry tokens and personal data: never cache them, never render them.
        set(headers, header::CACHE_CONTROL, "no-store");
        set(
            headers,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        );
    }
}

/// Counts each request of a signed-in user against `API_RATE_LIMIT_PER_MINUTE` (shared by
/// replicas through Redis): past it, 429 with `Retry-After`. The user is the `sub` of a valid
/// bearer token, however the header spells the scheme (checked here only for its signature;
/// the operation checks the rest). Uploads
/// and requests without a token are not counted here (logins, registrations and mail
/// requests have limits of their own).
pub async fn limit_user_requests<E: Endpoint>(
    next: Arc<E>,
    mut req: Request,
) -> poem::Result<Response> {
    let token =
        crate::extract::bearer_token(req.headers()).filter(|_| !is_upload(&req) && !is_probe(&req));
    let verified = match (req.data::<AppState>(), token) {
        (Some(state), Some(token)) => {
            (state.keys.verify(&token).await.ok()).map(|claims| VerifiedToken { token, claims })
        }
        _ => None,
    };
    if let Some(verified) = verified {
        let user_id = verified.claims.sub.clone();
        // The operation's guard reads it back instead of verifying the token again.
        req.extensions_mut().insert(verified);
        if let Some(state) = req.data::<AppState>()
            && let Decision::Limited { retry_after } = state
                .limiter
                .hit(
                    &format!("api:user:{user_id}"),
                    state.settings.api_rate_limit_per_minute,
                    Duration::from_secs(60),
                )
                .await
        {
            return Ok(ApiError::rate_limited(retry_after).into_response());
        }
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// The one route whose body is streamed (session uploads): it has its own, larger limit,
/// enforced while streaming by the handler.
fn is_upload(req: &Request) -> bool {
    req.method() == poem::http::Method::POST
        && req.uri().path().trim_end_matches('/') == "/api/v1/sessions"
}

/// Liveness and readiness probes: never limited.
fn is_probe(req: &Request) -> bool {
    matches!(req.uri().path(), "/health" | "/ready")
}

/// Multipart framing (boundaries, part headers, small fields) allowed on top of the upload
/// limit before a declared `Content-Length` is refused outright.
const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

/// Refuses bodies over `max` bytes with 413: at once from `Content-Length`, or while reading a
/// chunked body (which is then buffered, bounded). Requests without a body pass untouched
/// (poem's own `SizeLimit` demands a `Content-Length` even on GET). Uploads are only checked
/// against `max_upload` by their declared length here; they are never buffered.
pub async fn limit_body<E: Endpoint>(
    next: Arc<E>,
    mut req: Request,
    max: usize,
    max_upload: u64,
) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if is_upload(&req) {
        if declared.is_some_and(|len| len > max_upload + MULTIPART_OVERHEAD) {
            return Err(poem::Error::from_string(
                format!(
                    "The upload is larger than the limit of {max_upload} bytes; nothing was kept."
                ),
                poem::http::StatusCode::PAYLOAD_TOO_LARGE,
            ));
        }
        return next.call(req).await.map(IntoResponse::into_response);
    }
    match declared {
        Some(len) if len > max as u64 => {
            return Err(poem::Error::from_string(
                format!("The request body is larger than {max} bytes."),
                poem::http::StatusCode::PAYLOAD_TOO_LARGE,
            ));
        }
        Some(_) => {}
        None if req.headers().contains_key(header::TRANSFER_ENCODING) => {
            let bytes = req.take_body().into_bytes_limit(max).await.map_err(|_| {
                poem::Error::from_string(
                    format!("The request body is larger than {max} bytes."),
                    poem::http::StatusCode::PAYLOAD_TOO_LARGE,
                )
            })?;
            req.set_body(bytes);
        }
        None => {}
    }
    next.call(req).await.map(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_bounded_and_plain() {
        assert!(super::acceptable_request_id("abc-123_x.y:z"));
        assert!(!super::acceptable_request_id(""));
        assert!(!super::acceptable_request_id("has space"));
        assert!(!super::acceptable_request_id(&"a".repeat(129)));
        assert!(!super::acceptable_request_id("line\nbreak"));
    }
}

//! The API's one error type, rendered as `application/problem+json` (RFC 9457).
//!
//! When to use what: handlers return [`ApiError`] for the caller's mistakes (4xx, with a
//! `type` a client can branch on and, for validation, every field's error at once). Anything
//! unexpected (a database error, a bug) becomes [`ApiError::internal`]: logged in full with the
//! request id, answered with a 500 that says nothing about the inside. Errors raised outside
//! our handlers (unknown route, malformed JSON, oversized body) are rendered the same way by
//! [`render_error`].

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{ApiResponse, Object, payload::Json};
use tend_shared::domain::FieldError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field's validation error.
#[derive(Debug, Clone, Object)]
pub struct FieldProblem {
    /// The JSON field name.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An error body (RFC 9457 problem details).
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A stable identifier of the kind of error, e.g. `/problems/validation`; clients branch on it.
    #[oai(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened this time, for a person.
    pub detail: String,
    /// Every invalid field, for validation errors.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<FieldProblem>>,
}

impl Problem {
    fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
        }
    }
}

/// Every error an operation can answer with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed or refers to something unusable (e.g. an expired link token).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing, invalid or expired credentials.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// Authenticated, but not allowed.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource (or not yours: ids do not leak).
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// Conflicts with existing data (e.g. the email is taken).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// It existed but is gone for good (an export's file past its expiry).
    #[oai(status = 410, content_type = "application/problem+json")]
    Gone(Json<Problem>),
    /// The upload is larger than the configured limit; nothing was kept.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The upload is not a supported kind of file (decided from its content).
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// Well-formed but invalid: `errors` lists every field.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// Too many attempts; retry after the number of seconds in `Retry-After`.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// Our fault; the request id in `X-Request-Id` finds it in the logs.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// A dependency (database, queue) is down, or the server is at capacity; nothing was
    /// changed. `Retry-After`, when present, says when to try again.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] Option<u64>),
}

impl ApiError {
    /// 410: the resource's file expired and was removed.
    pub fn gone(slug: &str, detail: impl Into<String>) -> Self {
        ApiError::Gone(Json(Problem::new(StatusCode::GONE, slug, "Gone", detail)))
    }

    /// 422 with every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid input",
            "One or more fields are invalid.",
        );
        problem.errors = Some(
            errors
                .into_iter()
                .map(|e| FieldProblem {
                    field: e.field,
                    message: e.message,
                })
                .collect(),
        );
        ApiError::Unprocessable(Json(problem))
    }

    /// 400 with a specific kind.
    pub fn bad_request(slug: &str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest(Json(Problem::new(
            StatusCode::BAD_REQUEST,
            slug,
            "Bad request",
            detail,
        )))
    }

    /// 401 with a specific kind.
    pub fn unauthorized(slug: &str, detail: impl Into<String>) -> Self {
        ApiError::Unauthorized(Json(Problem::new(
            StatusCode::UNAUTHORIZED,
            slug,
            "Unauthorized",
            detail,
        )))
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::Forbidden(Json(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            detail,
        )))
    }

    /// 403 for a password proof that is missing or wrong: the sign-in itself is fine (a 401
    /// would tell clients to sign in again), and the body breaks no rule of its schema.
    pub fn wrong_password(detail: impl Into<String>) -> Self {
        ApiError::Forbidden(Json(Problem::new(
            StatusCode::FORBIDDEN,
            "wrong-password",
            "Wrong password",
            detail,
        )))
    }

    /// 404 for `what`.
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(Json(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("No such {what}."),
        )))
    }

    /// 409 with a specific kind.
    pub fn conflict(slug: &str, detail: impl Into<String>) -> Self {
        ApiError::Conflict(Json(Problem::new(
            StatusCode::CONFLICT,
            slug,
            "Conflict",
            detail,
        )))
    }

    /// 422 for one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// 413: the upload passed `limit` bytes.
    pub fn too_large(limit: u64) -> Self {
        ApiError::PayloadTooLarge(Json(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("The upload is larger than the limit of {limit} bytes; nothing was kept."),
        )))
    }

    /// 415 with what is accepted.
    pub fn unsupported_media(detail: impl Into<String>) -> Self {
        ApiError::UnsupportedMediaType(Json(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )))
    }

    /// 429 with `Retry-After` (whole seconds, at least 1).
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        ApiError::TooManyRequests(
            Json(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("Too many attempts. Try again in {secs} seconds."),
            )),
            secs,
        )
    }

    /// 503: a dependency is down and nothing was changed.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        ApiError::Unavailable(
            Json(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                detail,
            )),
            None,
        )
    }

    /// 503 with `Retry-After`: a bounded resource (password hashing) is at capacity.
    pub fn busy(retry_after_secs: u64) -> Self {
        ApiError::Unavailable(
            Json(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Server busy",
                format!("The server is at capacity. Try again in {retry_after_secs} seconds."),
            )),
            Some(retry_after_secs),
        )
    }

    /// 500: logs the cause (inside the request's span) and answers without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError::Internal(Json(internal_problem()))
    }
}

fn internal_problem() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal server error",
        "Something went wrong on our side. Quote the X-Request-Id header when reporting it.",
    )
}

/// How long a client should wait before trying again after the database was out of reach (a
/// restart takes seconds).
const DATABASE_RETRY_AFTER_SECS: u64 = 2;

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if tend_shared::db::is_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return ApiError::Unavailable(
                Json(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "The database is unavailable; nothing was changed. Try again shortly.",
                )),
                Some(DATABASE_RETRY_AFTER_SECS),
            );
        }
        ApiError::internal(err)
    }
}

impl From<tend_shared::auth::password::HashError> for ApiError {
    fn from(err: tend_shared::auth::password::HashError) -> Self {
        use tend_shared::auth::password::HashError;
        match err {
            HashError::Busy => ApiError::busy(1),
            HashError::Failed(err) => err.into(),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        // A database outage that travelled through `?` with context is still a 503.
        match err.downcast::<sqlx::Error>() {
            Ok(err) => err.into(),
            Err(err) => ApiError::internal(format!("{err:#}")),
        }
    }
}

/// Renders any error that escaped a handler (routing, body parsing, size limit) as a problem.
pub fn render_error(err: poem::Error) -> Response {
    // A query or path parameter of the wrong type is a validation error like any other.
    if let Some(param) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        return ApiError::invalid_field(param.name, param.reason.clone()).into_response();
    }
    // A path segment outside what the spec lists (a queue name, say) names nothing: 404,
    // naming the parameter as the spec does.
    if let Some(param) = err.downcast_ref::<poem_openapi::error::ParsePathError>() {
        let name = err
            .data::<poem_openapi::OperationId>()
            .and_then(|op| crate::spec::path_param_name(op.0, param.name))
            .unwrap_or("resource");
        return ApiError::not_found(name).into_response();
    }
    let status = err.status();
    let message = err.to_string();
    let response = err.into_response();
    let is_problem = response
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if is_problem {
        return response;
    }
    let problem = if status.is_server_error() {
        tracing::error!(error = %message, %status, "unhandled server error");
        internal_problem()
    } else {
        let (slug, title) = match status {
            StatusCode::NOT_FOUND => ("not-found", "Not found"),
            StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "Payload too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported-media-type", "Unsupported media type")
            }
            StatusCode::UNAUTHORIZED => ("unauthorized", "Unauthorized"),
            _ => ("bad-request", "Bad request"),
        };
        Problem::new(status, slug, title, message)
    };
    let mut out = Json(problem).into_response();
    out.set_status(status);
    out.headers_mut().insert(
        poem::http::header::CONTENT_TYPE,
        poem::http::HeaderValue::from_static(PROBLEM_JSON),
    );
    // Keep headers such as WWW-Authenticate or Retry-After from the original error.
    for (name, value) in response.headers() {
        if name != poem::http::header::CONTENT_TYPE && name != poem::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The result type of every operation.
pub type ApiResult<T> = Result<T, ApiError>;

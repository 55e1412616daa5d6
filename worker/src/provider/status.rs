//! A tower service under async-openai that sends a request once and reports an error status
//! with its `Retry-After`, which async-openai's own error type drops.

use std::{
    future::Future,
    pin::Pin,
    task::Poll,
    time::{Duration, SystemTime},
};

use async_openai::{error::OpenAIError, middleware::HttpRequestFactory};
use reqwest::{StatusCode, header::RETRY_AFTER};
use tend_shared::jobs::JobError;

/// An error status from the provider.
#[derive(Debug)]
pub struct HttpFailure {
    /// The HTTP status.
    pub status: StatusCode,
    /// `Retry-After`, in seconds, when the provider sent one.
    pub retry_after: Option<Duration>,
    /// The provider's `error.message` (or the start of a non-JSON body).
    pub message: String,
}

impl std::fmt::Display for HttpFailure {
    /// The status only: the provider's message may echo what was sent (patient text), and it
    /// goes where users read (a session's error); it is logged instead.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status.as_u16())
    }
}

impl std::error::Error for HttpFailure {}

impl HttpFailure {
    /// Builds a failure, trimming the message.
    pub fn new(status: StatusCode, retry_after: Option<Duration>, message: String) -> Self {
        let mut message = message.trim().to_owned();
        if message.len() > 300 {
            let cut = (0..=300)
                .rev()
                .find(|&i| message.is_char_boundary(i))
                .unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        Self {
            status,
            retry_after,
            message,
        }
    }

    /// Whether retrying the same request later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS
        ) || self.status.is_server_error()
    }

    /// The job error for this failure: a short message of our own words and the status (what
    /// a session's `error` shows). The provider's message goes to the log only, with what it
    /// quotes left out (`unquoted`).
    pub fn into_job_error(self, stage: &str) -> JobError {
        tracing::warn!(
            stage,
            status = self.status.as_u16(),
            provider_message = %unquoted(&self.message),
            "the provider answered with an error"
        );
        let what = match self.status {
            StatusCode::TOO_MANY_REQUESTS => "the provider is rate limiting us",
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                "the provider refused our credentials (check OPENAI_API_KEY)"
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                "the provider refused the upload as too large (lower TRANSCRIPTION_MAX_UPLOAD_BYTES)"
            }
            s if s.is_server_error() => "the provider failed",
            _ => "the provider refused the request",
        };
        let message = format!("{stage}: {what} ({self})");
        match (self.is_transient(), self.retry_after) {
            (true, Some(after)) => JobError::RetryAfter(message, after),
            (true, None) => JobError::Transient(message),
            (false, _) => JobError::Permanent(message),
        }
    }
}

/// Sends each request once; error statuses become [`HttpFailure`]s.
#[derive(Clone)]
pub struct StatusCheck {
    http: reqwest::Client,
}

impl StatusCheck {
    /// Wraps an HTTP client (with its timeouts).
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send + 'static>>;

impl tower::Service<HttpRequestFactory> for StatusCheck {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            // The endpoint (`audio/transcriptions`, `chat/completions`), not the full URL.
            let endpoint = endpoint_of(request.url().path());
            let started = std::time::Instant::now();
            let sent = http.execute(request).await;
            metrics::histogram!("tend_provider_request_duration_seconds", "endpoint" => endpoint)
                .record(started.elapsed().as_secs_f64());
            let status_label = match &sent {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "error".to_owned(),
            };
            metrics::counter!(
                "tend_provider_requests_total",
                "endpoint" => endpoint,
                "status" => status_label
            )
            .increment(1);
            let response = sent.map_err(OpenAIError::Reqwest)?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, SystemTime::now()));
            let body = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            Err(OpenAIError::Boxed(Box::new(HttpFailure::new(
                status,
                retry_after,
                message,
            ))))
        })
    }
}

/// A `Retry-After` value as a wait from `now`: seconds (OpenAI sends fractions too), or an HTTP
/// date (RFC 9110; a date already past is no wait). `None` when it is neither.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// The provider endpoint a request path names (the path's last two segments).
fn endpoint_of(path: &str) -> &'static str {
    if path.ends_with("audio/transcriptions") {
        "audio/transcriptions"
    } else if path.ends_with("chat/completions") {
        "chat/completions"
    } else {
        "other"
    }
}

/// Longest provider message logged.
const LOGGED_MESSAGE_CHARS: usize = 300;

/// A provider's error message fit for the log: what it quotes (`'...'`, `"..."`, `` `...` ``,
/// where a provider echoes what it was sent, patient text included) replaced by `…`, and cut
/// to [`LOGGED_MESSAGE_CHARS`].
fn unquoted(message: &str) -> String {
    let mut out = String::new();
    let mut open: Option<char> = None;
    for c in message.chars().take(LOGGED_MESSAGE_CHARS) {
        match open {
            Some(quote) if c == quote => {
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if matches!(c, '\'' | '"' | '`') => {
                out.push(c);
                out.push('…');
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_sorted_into_transient_and_permanent() {
        let fail = |code: u16, after: Option<u64>| {
            HttpFailure::new(
                StatusCode::from_u16(code).unwrap(),
                after.map(Duration::from_secs),
                "x".into(),
            )
            .into_job_error("transcription")
        };
        assert!(
            matches!(fail(429, Some(7)), JobError::RetryAfter(_, d) if d == Duration::from_secs(7))
        );
        assert!(matches!(fail(429, None), JobError::Transient(_)));
        assert!(matches!(fail(503, None), JobError::Transient(_)));
        assert!(matches!(fail(400, None), JobError::Permanent(_)));
        assert!(matches!(fail(401, None), JobError::Permanent(m) if m.contains("OPENAI_API_KEY")));
        assert!(matches!(fail(413, None), JobError::Permanent(_)));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Mon, 07 Dec 2026 07:00:00 GMT").unwrap();
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 1.5 ", now), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_after("Mon, 07 Dec 2026 07:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Mon, 07 Dec 2026 06:59:00 GMT", now),
            Some(Duration::ZERO),
            "a date past is no wait"
        );
        assert_eq!(retry_after("-3", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn a_logged_provider_message_leaves_out_what_it_quotes() {
        assert_eq!(
            unquoted("Invalid input: 'I felt so alone' in \"messages[1]\""),
            "Invalid input: '…' in \"…\""
        );
        assert_eq!(unquoted("model `gpt-x` not found"), "model `…` not found");
        assert_eq!(unquoted("unclosed 'I felt"), "unclosed '…");
        assert_eq!(unquoted(&"x".repeat(1000)).len(), LOGGED_MESSAGE_CHARS);
    }

    #[test]
    fn the_providers_own_words_stay_out_of_the_message() {
        let error = HttpFailure::new(
            StatusCode::BAD_REQUEST,
            None,
            "<b>Invalid</b> input: 'I felt so alone last week'".into(),
        )
        .into_job_error("extraction");
        let JobError::Permanent(message) = error else {
            panic!("a 400 is permanent")
        };
        assert_eq!(
            message,
            "extraction: the provider refused the request (HTTP 400)"
        );
    }
}

//! The bodies of the `/sessions` operations: what a session reads as lives in
//! `tend_views::sessions`; the page and the requeue answer are the API's own.

use poem_openapi::Object;
pub use tend_views::sessions::*;

/// One page of sessions.
#[derive(Debug, Object)]
pub struct SessionPage {
    /// The sessions, newest first.
    pub items: Vec<SessionView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A stage (re)queued.
#[derive(Debug, Clone, Object)]
pub struct StageQueued {
    /// The session.
    pub session_id: String,
    /// Its status now.
    pub status: SessionStatusView,
    /// The queued job: `GET /api/v1/jobs/{job_id}`.
    pub job_id: String,
}

//! A recorded session as its readers see it: status, timings, usage, transcript and notes.

mod texts;

pub use texts::*;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use tend_shared::{
    db::{
        sessions::{Reader, SessionRow, SessionTexts},
        usage::UsageRow,
    },
    sessions::{MoodTrajectory, Notes, Segment, SessionMood, SessionStatus, Stage},
};

use crate::{Unreadable, ms_to_datetime};

/// Where a session is: `uploaded -> transcribing -> transcribed -> extracting -> processed`,
/// or `failed` (see `failed_stage` and `error`), `budget_exceeded` (a paid stage waits for the
/// practice's budget) or `cancelled`.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum SessionStatusView {
    /// Stored; transcription is queued.
    Uploaded,
    /// Being transcribed (or waiting for a retry; see `error`).
    Transcribing,
    /// Transcript ready; extraction is queued.
    Transcribed,
    /// Notes being extracted (or waiting for a retry).
    Extracting,
    /// Notes ready.
    Processed,
    /// A stage failed for good; `POST /sessions/{id}/retry` resumes it.
    Failed,
    /// A paid stage waits: the practice's monthly budget is spent (see `error`). It resumes
    /// by itself when an admin raises the budget or a new month begins.
    #[oai(rename = "budget_exceeded")]
    BudgetExceeded,
    /// Stopped by `POST /sessions/{id}/cancel` (or an admin); nothing more is processed.
    Cancelled,
}

impl From<SessionStatus> for SessionStatusView {
    fn from(s: SessionStatus) -> Self {
        match s {
            SessionStatus::Uploaded => Self::Uploaded,
            SessionStatus::Transcribing => Self::Transcribing,
            SessionStatus::Transcribed => Self::Transcribed,
            SessionStatus::Extracting => Self::Extracting,
            SessionStatus::Processed => Self::Processed,
            SessionStatus::Failed => Self::Failed,
            SessionStatus::BudgetExceeded => Self::BudgetExceeded,
            SessionStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<SessionStatusView> for SessionStatus {
    fn from(s: SessionStatusView) -> Self {
        match s {
            SessionStatusView::Uploaded => Self::Uploaded,
            SessionStatusView::Transcribing => Self::Transcribing,
            SessionStatusView::Transcribed => Self::Transcribed,
            SessionStatusView::Extracting => Self::Extracting,
            SessionStatusView::Processed => Self::Processed,
            SessionStatusView::Failed => Self::Failed,
            SessionStatusView::BudgetExceeded => Self::BudgetExceeded,
            SessionStatusView::Cancelled => Self::Cancelled,
        }
    }
}

/// A processing stage.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum StageView {
    /// Audio to transcript.
    Transcription,
    /// Transcript to notes.
    Extraction,
}

impl From<Stage> for StageView {
    fn from(s: Stage) -> Self {
        match s {
            Stage::Transcription => Self::Transcription,
            Stage::Extraction => Self::Extraction,
        }
    }
}

/// What was uploaded.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum SourceView {
    /// A recording, transcribed by the provider.
    Audio,
    /// A transcript (text, WebVTT, SRT): transcription was skipped.
    Transcript,
}

/// When a stage ran.
#[derive(Debug, Clone, Object)]
pub struct StageTiming {
    /// When its first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long it took, start to finish (retries included).
    pub duration_ms: Option<i64>,
}

impl StageTiming {
    fn new(started: Option<i64>, finished: Option<i64>) -> Self {
        Self {
            started_at: started.map(ms_to_datetime),
            finished_at: finished.map(ms_to_datetime),
            duration_ms: started.zip(finished).map(|(s, f)| (f - s).max(0)),
        }
    }
}

/// The timings of both stages.
#[derive(Debug, Clone, Object)]
pub struct StageTimings {
    /// Audio to transcript (absent work for uploaded transcripts).
    pub transcription: StageTiming,
    /// Transcript to notes.
    pub extraction: StageTiming,
}

/// One paid provider call.
#[derive(Debug, Clone, Object)]
pub struct UsageItem {
    /// `transcription` or `extraction`.
    pub stage: String,
    /// The model called.
    pub model: String,
    /// Audio transcribed, in seconds.
    pub audio_seconds: f64,
    /// Prompt tokens billed.
    pub prompt_tokens: i64,
    /// Completion tokens billed.
    pub completion_tokens: i64,
    /// Estimated cost in US dollars, from the configured prices.
    pub cost_usd: f64,
    /// When the call was made.
    pub created_at: DateTime<Utc>,
}

/// Everything the provider was paid for, for this session (retries and re-extractions
/// included).
#[derive(Debug, Clone, Object)]
pub struct UsageSummary {
    /// Audio seconds transcribed.
    pub audio_seconds: f64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Estimated total cost in US dollars.
    pub estimated_cost_usd: f64,
    /// Each call.
    pub calls: Vec<UsageItem>,
}

impl UsageSummary {
    /// Sums the calls.
    pub fn new(rows: Vec<UsageRow>) -> Self {
        // Summed as integers: a float sum of nothing is -0.0, which a client would print.
        let audio_ms: i64 = rows.iter().map(|u| u.audio_ms).sum();
        let cost_micro_usd: i64 = rows.iter().map(|u| u.cost_micro_usd).sum();
        let calls: Vec<UsageItem> = rows
            .into_iter()
            .map(|u| UsageItem {
                stage: u.stage,
                model: u.model,
                audio_seconds: u.audio_ms as f64 / 1000.0,
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                cost_usd: u.cost_micro_usd as f64 / 1e6,
                created_at: ms_to_datetime(u.created_at),
            })
            .collect();
        Self {
            audio_seconds: audio_ms as f64 / 1000.0,
            prompt_tokens: calls.iter().map(|c| c.prompt_tokens).sum(),
            completion_tokens: calls.iter().map(|c| c.completion_tokens).sum(),
            estimated_cost_usd: cost_micro_usd as f64 / 1e6,
            calls,
        }
    }
}

/// A chunked transcription's progress.
#[derive(Debug, Clone, Object)]
pub struct ChunkProgress {
    /// Chunks transcribed.
    pub done: i64,
    /// Chunks the recording was cut into.
    pub total: i64,
}

/// A recorded session. Patients reading their own sessions see no error or usage.
#[derive(Debug, Clone, Object)]
pub struct SessionView {
    /// The session id.
    pub id: String,
    /// Its patient.
    pub patient_id: String,
    /// Where it is.
    pub status: SessionStatusView,
    /// The stage that failed, when `status` is `failed`.
    pub failed_stage: Option<StageView>,
    /// Why it failed, or why the current stage's last attempt failed while it is retried.
    pub error: Option<String>,
    /// What was uploaded.
    pub source: SourceView,
    /// The upload's type, recognised from its content.
    pub media_type: String,
    /// The upload's size.
    pub size_bytes: i64,
    /// When the session took place, if given.
    pub recorded_at: Option<DateTime<Utc>>,
    /// The recording's length (or the last caption's end).
    pub duration_seconds: Option<f64>,
    /// The job of the current (or last) stage: `GET /api/v1/jobs/{job_id}`.
    pub job_id: Option<String>,
    /// When each stage ran.
    pub stages: StageTimings,
    /// A long recording's transcription progress: chunks transcribed, of how many (absent
    /// when the audio went in one request).
    pub chunks: Option<ChunkProgress>,
    /// Provider usage and estimated cost (practitioners only).
    pub usage: Option<UsageSummary>,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl SessionView {
    /// The practitioner's view (with `usage` if given).
    pub fn new(row: SessionRow, usage: Option<UsageSummary>) -> Self {
        Self {
            status: row.status().into(),
            failed_stage: row.failed_stage().map(Into::into),
            source: if row.source == "audio" {
                SourceView::Audio
            } else {
                SourceView::Transcript
            },
            stages: StageTimings {
                transcription: StageTiming::new(
                    row.transcription_started_at,
                    row.transcription_finished_at,
                ),
                extraction: StageTiming::new(row.extraction_started_at, row.extraction_finished_at),
            },
            chunks: match (row.chunks_done, row.chunks_total) {
                (Some(done), Some(total)) => Some(ChunkProgress { done, total }),
                _ => None,
            },
            recorded_at: row.recorded_at.map(ms_to_datetime),
            duration_seconds: row.duration_ms.map(|ms| ms as f64 / 1000.0),
            created_at: ms_to_datetime(row.created_at),
            updated_at: ms_to_datetime(row.updated_at),
            usage,
            id: row.id,
            patient_id: row.patient_id,
            error: row.error,
            media_type: row.media_type,
            size_bytes: row.size_bytes,
            job_id: row.job_id,
        }
    }

    /// What a patient account sees of its own session.
    pub fn for_patient(row: SessionRow) -> Self {
        let mut view = Self::new(row, None);
        view.error = None;
        view.job_id = None;
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_without_paid_calls_costs_zero_not_minus_zero() {
        let usage = UsageSummary::new(Vec::new());
        let json = serde_json::to_string(&(usage.audio_seconds, usage.estimated_cost_usd)).unwrap();
        assert_eq!(json, "[0.0,0.0]");
    }
}

//! A training mission: the questionnaire, the plan, the draft a model writes and the mission
//! a practitioner confirms, as their readers see them. The questionnaire and the plan are
//! request bodies too.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use tend_shared::{
    db::missions::{DraftRow, MissionRow},
    lifecycle::DraftStatus as Stored,
};

use crate::{Unreadable, fields::CalendarDate, ms_to_datetime};

/// The event a mission trains for.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MissionTypeView {
    /// A long unpaved race.
    GravelUltra,
    /// 100 miles on the road.
    RoadCentury,
    /// A series of criteriums.
    CritSeries,
    /// A mass-start long ride.
    GranFondo,
}

/// How the client rides.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RidingStyleView {
    /// Consistent, all-round.
    Gc,
    /// Even pacing (the default).
    Steady,
    /// Long solo efforts.
    Breakaway,
    /// Attacks and surges.
    Aggressive,
    /// A bit of everything.
    Mixed,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DayView {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// A kind of training session.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SessionKindView {
    Endurance,
    Tempo,
    SweetSpot,
    Threshold,
    Vo2max,
    Sprints,
    Recovery,
    LongRide,
    RaceSimulation,
}

/// Hours a week the client can train.
#[derive(Debug, Clone, Object)]
pub struct WeeklyHours {
    /// At least, 1 to 40.
    #[oai(validator(minimum(value = "1"), maximum(value = "40")))]
    pub min: i64,
    /// At most, 1 to 40, not below `min`.
    #[oai(validator(minimum(value = "1"), maximum(value = "40")))]
    pub max: i64,
}

/// Which reminders the client wants.
#[derive(Debug, Clone, Object)]
pub struct NotificationPreferences {
    /// A briefing each training morning.
    #[oai(default)]
    pub morning_briefing: bool,
    /// A summary each evening.
    #[oai(default)]
    pub evening_summary: bool,
    /// A review each week.
    #[oai(default)]
    pub weekly_review: bool,
}

/// The mission questionnaire.
#[derive(Debug, Clone, Object)]
pub struct QuestionnaireBody {
    /// The event, 1 to 255 characters, one line (no control, text-direction or invisible
    /// characters).
    #[oai(validator(min_length = 1, max_length = 255))]
    pub event_name: String,
    /// The event's day: in the future, within 366 days.
    pub event_date: CalendarDate,
    /// What kind of event.
    pub mission_type: MissionTypeView,
    /// Training hours a week.
    pub weekly_hours: WeeklyHours,
    /// Functional threshold power, 50 to 500 W.
    #[oai(validator(minimum(value = "50"), maximum(value = "500")))]
    pub current_ftp: i64,
    /// Days the client can train (each at most once); any day when absent.
    pub preferred_training_days: Option<Vec<DayView>>,
    /// Injuries, equipment, travel...: at most 1000 characters.
    #[oai(validator(max_length = 1000))]
    pub constraints: Option<String>,
    /// Riding style; `steady` when absent.
    pub riding_style: Option<RidingStyleView>,
    /// Reminders; none when absent.
    pub notification_preferences: Option<NotificationPreferences>,
}

/// One planned session.
#[derive(Debug, Clone, Object)]
pub struct PlannedSession {
    /// Its day in the week.
    pub day: DayView,
    /// What it trains.
    pub kind: SessionKindView,
    /// Its length, 15 to 600 minutes.
    #[oai(validator(minimum(value = "15"), maximum(value = "600")))]
    pub duration_minutes: i64,
    /// Target power, low end, in watts (at least 40 % of the FTP).
    #[oai(validator(minimum(value = "0"), maximum(value = "2000")))]
    pub target_power_low_w: i64,
    /// Target power, high end (at most 150 % of the FTP).
    #[oai(validator(minimum(value = "0"), maximum(value = "2000")))]
    pub target_power_high_w: i64,
    /// What to do: at most 1,000 characters (lines allowed; no control, text-direction or
    /// invisible characters).
    #[oai(validator(max_length = 1000))]
    pub description: String,
}

/// One week of a plan.
#[derive(Debug, Clone, Object)]
pub struct PlanWeek {
    /// Its Monday.
    pub week_start: CalendarDate,
    /// What the week builds: one line, at most 200 characters.
    #[oai(validator(max_length = 200))]
    pub focus: String,
    /// Its sessions.
    pub sessions: Vec<PlannedSession>,
}

/// A training plan: one week each from the week it was drafted to the event's.
#[derive(Debug, Clone, Object)]
pub struct PlanBody {
    /// The weeks, in order.
    pub weeks: Vec<PlanWeek>,
    /// Advice for the whole plan: at most 4,000 characters (lines allowed).
    #[oai(validator(max_length = 4000))]
    pub notes: String,
}

/// Where a draft is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DraftStatus {
    /// Waiting for a worker.
    Queued,
    /// The model is writing it.
    Generating,
    /// `draft` holds the plan.
    Ready,
    /// No plan; `error` says why.
    Failed,
    /// Waits: the practice's monthly budget is spent (`error` says so). It resumes by itself
    /// when an admin raises the budget or a new month begins.
    #[oai(rename = "budget_exceeded")]
    BudgetExceeded,
    /// Stopped by `POST /missions/drafts/{id}/cancel` (or an admin).
    Cancelled,
}

/// A mission draft.
#[derive(Debug, Object)]
pub struct DraftView {
    /// Its id.
    pub id: String,
    /// The client record.
    pub patient_id: String,
    /// Where it is.
    pub status: DraftStatus,
    /// Why it failed (or why its last attempt did, while retried).
    pub error: Option<String>,
    /// The job drafting it (`GET /api/v1/jobs/{id}`).
    pub job_id: Option<String>,
    /// The questionnaire.
    pub questionnaire: QuestionnaireBody,
    /// The plan, when ready.
    pub draft: Option<PlanBody>,
    /// When the plan was written.
    pub generated_at: Option<DateTime<Utc>>,
    /// The chat model that wrote it.
    pub model_used: Option<String>,
    /// Prompt tokens over every call for this draft.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens over every call.
    pub completion_tokens: Option<i64>,
    /// What those calls cost, in US dollars.
    pub cost_usd: Option<f64>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
}

/// A confirmed mission.
#[derive(Debug, Object)]
pub struct MissionView {
    /// Its id.
    pub id: String,
    /// The client record.
    pub patient_id: String,
    /// The draft it came from.
    pub draft_id: Option<String>,
    /// The questionnaire.
    pub questionnaire: QuestionnaireBody,
    /// The plan.
    pub plan: PlanBody,
    /// The day the plan's rules count from.
    pub planned_on: CalendarDate,
    /// When it was confirmed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl DraftView {
    /// The draft as stored.
    pub fn from_row(row: DraftRow) -> Result<Self, Unreadable> {
        let status = match row.status {
            Stored::Queued => DraftStatus::Queued,
            Stored::Generating => DraftStatus::Generating,
            Stored::Ready => DraftStatus::Ready,
            Stored::Failed => DraftStatus::Failed,
            Stored::BudgetExceeded => DraftStatus::BudgetExceeded,
            Stored::Cancelled => DraftStatus::Cancelled,
        };
        Ok(Self {
            questionnaire: crate::parse_stored("questionnaire", &row.questionnaire)?,
            draft: row
                .plan
                .as_deref()
                .map(|plan| crate::parse_stored("plan", plan))
                .transpose()?,
            id: row.id,
            patient_id: row.patient_id,
            status,
            error: row.error,
            job_id: row.job_id,
            generated_at: row.generated_at.map(ms_to_datetime),
            model_used: row.model_used,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            cost_usd: row.cost_micro_usd.map(|c| c as f64 / 1_000_000.0),
            created_at: ms_to_datetime(row.created_at),
        })
    }
}

impl MissionView {
    /// The mission as stored.
    pub fn from_row(row: MissionRow) -> Result<Self, Unreadable> {
        Ok(Self {
            questionnaire: crate::parse_stored("questionnaire", &row.questionnaire)?,
            plan: crate::parse_stored("plan", &row.plan)?,
            planned_on: CalendarDate(row.planned_on.clone()),
            id: row.id,
            patient_id: row.patient_id,
            draft_id: row.draft_id,
            created_at: ms_to_datetime(row.created_at),
            updated_at: ms_to_datetime(row.updated_at),
        })
    }
}

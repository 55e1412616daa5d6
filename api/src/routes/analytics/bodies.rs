//! What the analytics operations answer: the figures' schemas, and the periods and
//! granularities they are asked for.

use super::*;

/// A practitioner's practice at a glance.
#[derive(Debug, Object)]
pub struct Overview {
    /// Patients on record.
    pub patients: i64,
    /// Patients with a processed session in the last 30 days.
    pub active_patients: i64,
    /// Processed sessions held this ISO week (Monday to Sunday, UTC).
    pub sessions_this_week: i64,
    /// Processed sessions held last ISO week.
    pub sessions_last_week: i64,
    /// Average mood score (1-5) of the last 30 days' sessions; absent without any.
    pub average_mood: Option<f64>,
    /// Provider cost of this calendar month's calls for your sessions, in US dollars.
    pub cost_this_month_usd: f64,
}

/// How a week's sessions moved.
#[derive(Debug, Object)]
pub struct Trajectories {
    /// Sessions that ended better than they started.
    pub improving: i64,
    /// Sessions that ended worse.
    pub declining: i64,
    /// About the same throughout.
    pub stable: i64,
    /// Up and down.
    pub fluctuating: i64,
}

/// A topic and how many sessions raised it.
#[derive(Debug, Object)]
pub struct TopicCount {
    /// The topic, in its most frequent spelling.
    pub topic: String,
    /// Sessions that raised it.
    pub sessions: i64,
}

/// Where a week's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum WeekSource {
    /// The weekly snapshot.
    Snapshot,
    /// Computed now (the current week, or one no snapshot holds yet).
    Live,
}

/// One ISO week of a patient's progress.
#[derive(Debug, Object)]
pub struct ProgressWeek {
    /// The ISO week, e.g. `2026-W49`.
    pub week: String,
    /// Its Monday.
    pub week_start: NaiveDate,
    /// Processed sessions held that week.
    pub sessions: i64,
    /// Their average mood score (1-5); absent without sessions.
    pub average_mood: Option<f64>,
    /// This week's average minus the average of the (up to four) weeks before it that had
    /// sessions; absent when either side has none.
    pub mood_trend: Option<f64>,
    /// How the sessions moved.
    pub trajectories: Trajectories,
    /// The week's most frequent topics (at most five).
    pub top_topics: Vec<TopicCount>,
    /// Action items agreed in the week's sessions.
    pub action_items: i64,
    /// Risk flags raised in the week's sessions.
    pub risk_flags: i64,
    /// Snapshot or live.
    pub source: WeekSource,
}

/// A patient's weekly series, oldest first, ending with the current week.
#[derive(Debug, Object)]
pub struct Progress {
    /// The patient.
    pub patient_id: String,
    /// One entry per week, weeks without sessions included.
    pub weeks: Vec<ProgressWeek>,
}

/// The span `session-trends` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Period {
    /// The last 7 days.
    #[oai(rename = "7d")]
    Days7,
    /// The last 30 days.
    #[oai(rename = "30d")]
    Days30,
    /// The last 90 days.
    #[oai(rename = "90d")]
    Days90,
    /// The last 365 days.
    #[oai(rename = "1y")]
    Year,
}

impl Period {
    pub(super) fn days(self) -> u64 {
        match self {
            Period::Days7 => 7,
            Period::Days30 => 30,
            Period::Days90 => 90,
            Period::Year => 365,
        }
    }
}

/// The bucket size of `session-trends`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Granularity {
    /// UTC days.
    Day,
    /// ISO weeks (Monday to Sunday).
    Week,
    /// Calendar months.
    Month,
}

/// One bucket of `session-trends`.
#[derive(Debug, Object)]
pub struct TrendBucket {
    /// The first day of the bucket (a Monday for weeks, the 1st for months).
    pub start: NaiveDate,
    /// Processed sessions held in it.
    pub sessions: i64,
    /// Their average mood score; absent without sessions.
    pub average_mood: Option<f64>,
}

/// Sessions and mood over time, oldest bucket first, empty buckets included.
#[derive(Debug, Object)]
pub struct SessionTrends {
    /// The buckets.
    pub buckets: Vec<TrendBucket>,
}

/// The topics raised across your sessions.
#[derive(Debug, Object)]
pub struct CommonTopics {
    /// Most frequent first (case and trivial plural differences folded).
    pub items: Vec<TopicCount>,
    /// Sessions counted.
    pub sessions: i64,
}

#[derive(ApiResponse)]
pub(super) enum OverviewResponse {
    /// The figures.
    #[oai(status = 200)]
    Ok(Json<Overview>),
}

#[derive(ApiResponse)]
pub(super) enum ProgressResponse {
    /// The series.
    #[oai(status = 200)]
    Ok(Json<Progress>),
}

#[derive(ApiResponse)]
pub(super) enum TrendsResponse {
    /// The buckets.
    #[oai(status = 200)]
    Ok(Json<SessionTrends>),
}

#[derive(ApiResponse)]
pub(super) enum TopicsResponse {
    /// The topics.
    #[oai(status = 200)]
    Ok(Json<CommonTopics>),
}

pub(super) fn default_weeks() -> u32 {
    12
}

pub(super) fn default_topics() -> u32 {
    20
}

pub(super) fn default_period() -> Period {
    Period::Days30
}

pub(super) fn default_granularity() -> Granularity {
    Granularity::Day
}

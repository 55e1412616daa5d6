//! Training missions: the questionnaire a coach (or the client's own account) fills in, the
//! plan the chat model drafts from it, and the rules that tie them: every rule here is
//! checked on the questionnaire when a draft is asked for (422s naming each field), on the
//! model's answer (a misfit is asked again once, then fails the draft) and on a coach's
//! edits when a mission is confirmed or changed.

use std::{borrow::Cow, collections::BTreeSet};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::{FieldError, text_error};

/// Longest event name.
pub const EVENT_NAME_MAX_CHARS: usize = 255;
/// Longest constraints text.
pub const CONSTRAINTS_MAX_CHARS: usize = 1_000;
/// Longest advice for a whole plan.
pub const PLAN_NOTES_MAX_CHARS: usize = 4_000;
/// Longest focus of a week.
pub const WEEK_FOCUS_MAX_CHARS: usize = 200;
/// Longest description of a session.
pub const SESSION_DESCRIPTION_MAX_CHARS: usize = 1_000;

/// Weekly hours a client may offer, each bound.
pub const WEEKLY_HOURS: std::ops::RangeInclusive<u32> = 1..=40;
/// The FTP range accepted, in watts.
pub const FTP_WATTS: std::ops::RangeInclusive<u32> = 50..=500;
/// How far ahead an event may be: a plan of more than a year is not a plan.
pub const MAX_DAYS_AHEAD: u64 = 366;
/// Target power bounds, as percentages of FTP.
pub const POWER_PERCENT: std::ops::RangeInclusive<u32> = 40..=150;
/// One session's length, in minutes.
pub const SESSION_MINUTES: std::ops::RangeInclusive<u32> = 15..=600;

/// What the client trains for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissionType {
    /// A long unpaved race.
    GravelUltra,
    /// 100 miles on the road.
    RoadCentury,
    /// A series of criteriums.
    CritSeries,
    /// A mass-start long ride.
    GranFondo,
}

/// How the client likes to ride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RidingStyle {
    /// General classification: consistent, all-round.
    Gc,
    /// Even pacing.
    #[default]
    Steady,
    /// Long solo efforts.
    Breakaway,
    /// Attacks and surges.
    Aggressive,
    /// A bit of everything.
    Mixed,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Day {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Day {
    /// Every day, Monday first.
    pub const ALL: [Day; 7] = [
        Day::Monday,
        Day::Tuesday,
        Day::Wednesday,
        Day::Thursday,
        Day::Friday,
        Day::Saturday,
        Day::Sunday,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Day::Monday => "monday",
            Day::Tuesday => "tuesday",
            Day::Wednesday => "wednesday",
            Day::Thursday => "thursday",
            Day::Friday => "friday",
            Day::Saturday => "saturday",
            Day::Sunday => "sunday",
        }
    }

    /// Days after Monday.
    pub fn offset(self) -> u64 {
        Day::ALL.iter().position(|d| *d == self).unwrap_or(0) as u64
    }

    /// The day of `date`.
    pub fn of(date: NaiveDate) -> Self {
        Day::ALL[date.weekday().num_days_from_monday() as usize]
    }
}

/// The weekly hours a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoursRange {
    pub min: u32,
    pub max: u32,
}

/// Which reminders the client wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationPreferences {
    pub morning_briefing: bool,
    pub evening_summary: bool,
    pub weekly_review: bool,
}

/// The questionnaire a mission is drafted from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Questionnaire {
    pub event_name: String,
    pub event_date: NaiveDate,
    pub mission_type: MissionType,
    pub weekly_hours: HoursRange,
    pub current_ftp: u32,
    /// Days the client can train; empty means any day.
    #[serde(default)]
    pub preferred_training_days: Vec<Day>,
    #[serde(default)]
    pub constraints: Option<String>,
    #[serde(default)]
    pub riding_style: RidingStyle,
    #[serde(default)]
    pub notification_preferences: NotificationPreferences,
}

/// A questionnaire's fields as far as they could be read: each rule runs on those it needs,
/// so the typed questionnaire and a request body in JSON are held to one set of rules.
struct Readable<'a> {
    event_name: Option<&'a str>,
    event_date: Option<NaiveDate>,
    weekly_hours: (Option<u32>, Option<u32>),
    current_ftp: Option<u32>,
    preferred_training_days: Option<Cow<'a, [Day]>>,
    constraints: Option<&'a str>,
}

impl Readable<'_> {
    /// Every rule the readable fields break, as of `today`.
    fn errors(&self, today: NaiveDate) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(event_name) = self.event_name {
            if event_name.trim().is_empty() {
                errors.push(FieldError::new("event_name", "must not be empty"));
            } else if let Some(error) = text_error(event_name, EVENT_NAME_MAX_CHARS, true) {
                errors.push(FieldError::new("event_name", error));
            }
        }
        if let Some(event_date) = self.event_date {
            if event_date <= today {
                errors.push(FieldError::new("event_date", "must be a future date"));
            } else if event_date > today + Days::new(MAX_DAYS_AHEAD) {
                errors.push(FieldError::new(
                    "event_date",
                    format!("must be within {MAX_DAYS_AHEAD} days"),
                ));
            }
        }
        let (min, max) = self.weekly_hours;
        for (field, value) in [("weekly_hours.min", min), ("weekly_hours.max", max)] {
            if value.is_some_and(|v| !WEEKLY_HOURS.contains(&v)) {
                errors.push(FieldError::new(field, "must be between 1 and 40"));
            }
        }
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            errors.push(FieldError::new(
                "weekly_hours",
                "min must not be greater than max",
            ));
        }
        if self
            .current_ftp
            .is_some_and(|ftp| !FTP_WATTS.contains(&ftp))
        {
            errors.push(FieldError::new(
                "current_ftp",
                "must be between 50 and 500 watts",
            ));
        }
        if let Some(listed) = &self.preferred_training_days {
            let days: BTreeSet<Day> = listed.iter().copied().collect();
            if days.len() != listed.len() {
                errors.push(FieldError::new(
                    "preferred_training_days",
                    "must not repeat a day",
                ));
            }
        }
        if let Some(error) = self
            .constraints
            .and_then(|c| text_error(c, CONSTRAINTS_MAX_CHARS, false))
        {
            errors.push(FieldError::new("constraints", error));
        }
        errors
    }
}

impl Questionnaire {
    /// Every rule the questionnaire breaks, named by field, as of `today`.
    pub fn check(&self, today: NaiveDate) -> Vec<FieldError> {
        Readable {
            event_name: Some(&self.event_name),
            event_date: Some(self.event_date),
            weekly_hours: (Some(self.weekly_hours.min), Some(self.weekly_hours.max)),
            current_ftp: Some(self.current_ftp),
            preferred_training_days: Some(Cow::Borrowed(&self.preferred_training_days)),
            constraints: self.constraints.as_deref(),
        }
        .errors(today)
    }

    /// The same rules on a questionnaire still in JSON, on the fields that can be read: a
    /// request body with a mistyped field is refused with the rules the others break too.
    pub fn check_json(body: &Value, today: NaiveDate) -> Vec<FieldError> {
        let number = |value: Option<&Value>| {
            value
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        let hours = body.get("weekly_hours");
        Readable {
            event_name: body.get("event_name").and_then(Value::as_str),
            event_date: body
                .get("event_date")
                .and_then(Value::as_str)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
            weekly_hours: (
                number(hours.and_then(|h| h.get("min"))),
                number(hours.and_then(|h| h.get("max"))),
            ),
            current_ftp: number(body.get("current_ftp")),
            preferred_training_days: body
                .get("preferred_training_days")
                .and_then(|days| Vec::<Day>::deserialize(days).ok())
                .map(Cow::Owned),
            constraints: body.get("constraints").and_then(Value::as_str),
        }
        .errors(today)
    }

    /// The days sessions may fall on.
    pub fn training_days(&self) -> Vec<Day> {
        if self.preferred_training_days.is_empty() {
            Day::ALL.to_vec()
        } else {
            self.preferred_training_days.clone()
        }
    }

    /// The Mondays of the plan's weeks: the week of `today` through the event's week.
    pub fn plan_weeks(&self, today: NaiveDate) -> Vec<NaiveDate> {
        let first = monday(today);
        let last = monday(self.event_date);
        let mut weeks = Vec::new();
        let mut week = first;
        while week <= last {
            weeks.push(week);
            week = week + Days::new(7);
        }
        weeks
    }

    /// The target power bounds allowed, in watts.
    pub fn power_bounds(&self) -> (u32, u32) {
        (
            self.current_ftp * POWER_PERCENT.start() / 100,
            (self.current_ftp * POWER_PERCENT.end()).div_ceil(100),
        )
    }
}

fn monday(date: NaiveDate) -> NaiveDate {
    date.week(Weekday::Mon).first_day()
}

/// What one training session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
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

impl SessionKind {
    /// Every kind.
    pub const ALL: [&'static str; 9] = [
        "endurance",
        "tempo",
        "sweet_spot",
        "threshold",
        "vo2max",
        "sprints",
        "recovery",
        "long_ride",
        "race_simulation",
    ];
}

/// One planned session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedSession {
    pub day: Day,
    pub kind: SessionKind,
    pub duration_minutes: u32,
    pub target_power_low_w: u32,
    pub target_power_high_w: u32,
    pub description: String,
}

/// One week of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanWeek {
    /// Its Monday.
    pub week_start: NaiveDate,
    pub focus: String,
    pub sessions: Vec<PlannedSession>,
}

/// A training plan: weeks up to the event, and notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub weeks: Vec<PlanWeek>,
    pub notes: String,
}

impl Plan {
    /// The strict JSON schema the chat model answers in.
    pub fn json_schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["weeks", "notes"],
            "properties": {
                "weeks": {
                    "type": "array",
                    "description": "One entry per week, from the current week to the event's week, in order",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["week_start", "focus", "sessions"],
                        "properties": {
                            "week_start": {"type": "string", "description": "The week's Monday, YYYY-MM-DD"},
                            "focus": {"type": "string", "description": "What the week builds"},
                            "sessions": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "required": ["day", "kind", "duration_minutes", "target_power_low_w", "target_power_high_w", "description"],
                                    "properties": {
                                        "day": {"type": "string", "enum": Day::ALL.map(Day::as_str)},
                                        "kind": {"type": "string", "enum": SessionKind::ALL},
                                        "duration_minutes": {"type": "integer"},
                                        "target_power_low_w": {"type": "integer"},
                                        "target_power_high_w": {"type": "integer"},
                                        "description": {"type": "string"}
                                    }
                                }
                            }
                        }
                    }
                },
                "notes": {"type": "string", "description": "Advice for the whole plan"}
            }
        })
    }

    /// Reads and checks the model's answer; the reason never quotes it.
    pub fn from_model_answer(
        answer: &str,
        questionnaire: &Questionnaire,
        today: NaiveDate,
    ) -> Result<Self, String> {
        let plan: Plan = serde_json::from_str(answer.trim())
            .map_err(|e| format!("the answer is not valid JSON for the schema: {e}"))?;
        let errors = plan.check(questionnaire, today);
        if errors.is_empty() {
            return Ok(plan);
        }
        let reasons: Vec<String> = errors
            .iter()
            .take(10)
            .map(|e| format!("{} {}", e.field, e.message))
            .collect();
        Err(reasons.join("; "))
    }

    /// Every rule the plan breaks against its questionnaire, named by path
    /// (`weeks[2].sessions[0].day`): the weeks run from the week of `today` to the event's;
    /// sessions fall on offered days, not before today nor after the event, last 15 to 600
    /// minutes, with a power range inside 40-150 % of FTP; each full week's hours are within
    /// the offered range (the first and the event's week, which may be partial, only at
    /// most the maximum).
    pub fn check(&self, q: &Questionnaire, today: NaiveDate) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let expected = q.plan_weeks(today);
        let starts: Vec<NaiveDate> = self.weeks.iter().map(|w| w.week_start).collect();
        if starts != expected {
            errors.push(FieldError::new(
                "weeks",
                format!(
                    "must be the {} weeks from the week of {} to the week of the event ({}), each starting on its Monday",
                    expected.len(),
                    expected.first().map_or(String::new(), |d| d.to_string()),
                    q.event_date
                ),
            ));
        }
        if self.notes.trim().is_empty() {
            errors.push(FieldError::new("notes", "must not be empty"));
        } else if let Some(error) = text_error(&self.notes, PLAN_NOTES_MAX_CHARS, false) {
            errors.push(FieldError::new("notes", error));
        }
        let days = q.training_days();
        let (low, high) = q.power_bounds();
        let last = self.weeks.len().saturating_sub(1);
        for (w, week) in self.weeks.iter().enumerate() {
            let at = |field: &str| format!("weeks[{w}].{field}");
            if week.focus.trim().is_empty() {
                errors.push(FieldError::new(&at("focus"), "must not be empty"));
            } else if let Some(error) = text_error(&week.focus, WEEK_FOCUS_MAX_CHARS, true) {
                errors.push(FieldError::new(&at("focus"), error));
            }
            let mut minutes = 0;
            for (s, session) in week.sessions.iter().enumerate() {
                let at = |field: &str| format!("weeks[{w}].sessions[{s}].{field}");
                minutes += session.duration_minutes;
                let date = week.week_start + Days::new(session.day.offset());
                if !days.contains(&session.day) {
                    errors.push(FieldError::new(
                        &at("day"),
                        format!(
                            "{} is not one of the client's training days",
                            session.day.as_str()
                        ),
                    ));
                } else if date > q.event_date {
                    errors.push(FieldError::new(
                        &at("day"),
                        format!("{date} is after the event"),
                    ));
                } else if date < today {
                    errors.push(FieldError::new(
                        &at("day"),
                        format!("{date} is in the past"),
                    ));
                }
                if let Some(error) =
                    text_error(&session.description, SESSION_DESCRIPTION_MAX_CHARS, false)
                {
                    errors.push(FieldError::new(&at("description"), error));
                }
                if !SESSION_MINUTES.contains(&session.duration_minutes) {
                    errors.push(FieldError::new(
                        &at("duration_minutes"),
                        "must be between 15 and 600",
                    ));
                }
                if session.target_power_low_w < low || session.target_power_high_w > high {
                    errors.push(FieldError::new(
                        &at("target_power_low_w"),
                        format!("the range must lie within {low}-{high} W (40-150 % of the FTP)"),
                    ));
                } else if session.target_power_low_w > session.target_power_high_w {
                    errors.push(FieldError::new(
                        &at("target_power_low_w"),
                        "must not be above target_power_high_w",
                    ));
                }
                if session.description.trim().is_empty() {
                    errors.push(FieldError::new(&at("description"), "must not be empty"));
                }
            }
            let hours = f64::from(minutes) / 60.0;
            let partial = w == 0 || w == last;
            let HoursRange { min, max } = q.weekly_hours;
            if hours > f64::from(max) + 1e-9 || (!partial && hours + 1e-9 < f64::from(min)) {
                errors.push(FieldError::new(
                    &at("sessions"),
                    format!(
                        "add up to {hours:.1} hours, outside the client's {min}-{max} hours a week"
                    ),
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn questionnaire(today: NaiveDate) -> Questionnaire {
        Questionnaire {
            event_name: "Unbound".into(),
            event_date: today + Days::new(25),
            mission_type: MissionType::GravelUltra,
            weekly_hours: HoursRange { min: 4, max: 8 },
            current_ftp: 250,
            preferred_training_days: vec![Day::Tuesday, Day::Thursday, Day::Saturday],
            constraints: None,
            riding_style: RidingStyle::Steady,
            notification_preferences: NotificationPreferences::default(),
        }
    }

    #[test]
    fn a_plan_that_keeps_the_rules_passes_and_each_break_is_named() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(); // a Tuesday
        let q = questionnaire(today);
        let session = |day, minutes| PlannedSession {
            day,
            kind: SessionKind::Endurance,
            duration_minutes: minutes,
            target_power_low_w: 150,
            target_power_high_w: 190,
            description: "steady".into(),
        };
        let weeks = q
            .plan_weeks(today)
            .into_iter()
            .map(|week_start| PlanWeek {
                week_start,
                focus: "base".into(),
                sessions: vec![session(Day::Thursday, 120), session(Day::Saturday, 180)],
            })
            .collect::<Vec<_>>();
        let mut plan = Plan {
            weeks,
            notes: "ride easy".into(),
        };
        assert_eq!(plan.weeks.len(), 4);
        assert!(
            plan.check(&q, today).is_empty(),
            "{:?}",
            plan.check(&q, today)
        );
        plan.weeks[1].sessions[0].day = Day::Monday;
        plan.weeks[2].sessions[1].target_power_high_w = 400;
        let fields: Vec<String> = plan.check(&q, today).into_iter().map(|e| e.field).collect();
        assert!(
            fields.contains(&"weeks[1].sessions[0].day".to_owned()),
            "{fields:?}"
        );
        assert!(fields.contains(&"weeks[2].sessions[1].target_power_low_w".to_owned()));
        let mut earlier = q.clone();
        earlier.event_date = today + Days::new(24); // Friday 12-25: Saturday's ride is after it
        let fields: Vec<String> = plan
            .check(&earlier, today)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert!(
            fields.contains(&"weeks[3].sessions[1].day".to_owned()),
            "{fields:?}"
        );
    }

    #[test]
    fn questionnaire_rules_name_their_fields() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let mut q = questionnaire(today);
        assert!(q.check(today).is_empty());
        q.event_date = today;
        q.weekly_hours = HoursRange { min: 41, max: 9 };
        q.current_ftp = 20;
        let fields: Vec<String> = q.check(today).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "event_date",
                "weekly_hours.min",
                "weekly_hours",
                "current_ftp"
            ]
        );
    }
}

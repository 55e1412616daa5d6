//! The questionnaire a draft is asked for with, and its rules (each broken one named by
//! field).

use super::*;

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

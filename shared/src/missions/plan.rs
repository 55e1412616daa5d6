//! The plan the chat model drafts and a coach may edit, and its rules: checked on the model's
//! answer and on every edit, against the questionnaire it answers.

use super::*;

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

//! Training missions: the questionnaire a coach (or the client's own account) fills in, the
//! plan the chat model drafts from it, and the rules that tie them: every rule here is
//! checked on the questionnaire when a draft is asked for (422s naming each field), on the
//! model's answer (a misfit is asked again once, then fails the draft) and on a coach's
//! edits when a mission is confirmed or changed.

mod plan;
mod questionnaire;

pub use plan::*;
pub use questionnaire::*;

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

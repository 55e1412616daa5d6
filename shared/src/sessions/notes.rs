//! The structured notes extracted from a session, the JSON schema the model must answer with,
//! and the checks an answer must pass beyond the schema.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::text_error;

/// The patient's overall mood in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMood {
    /// 1 on the mood scale.
    VeryLow,
    /// 2.
    Low,
    /// 3.
    Neutral,
    /// 4.
    Positive,
    /// 5.
    VeryPositive,
}

impl SessionMood {
    /// Every value, low to high.
    pub const ALL: [SessionMood; 5] = [
        SessionMood::VeryLow,
        SessionMood::Low,
        SessionMood::Neutral,
        SessionMood::Positive,
        SessionMood::VeryPositive,
    ];

    /// The mood on a 1-5 scale, for analytics.
    pub fn score(self) -> i64 {
        match self {
            SessionMood::VeryLow => 1,
            SessionMood::Low => 2,
            SessionMood::Neutral => 3,
            SessionMood::Positive => 4,
            SessionMood::VeryPositive => 5,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMood::VeryLow => "very_low",
            SessionMood::Low => "low",
            SessionMood::Neutral => "neutral",
            SessionMood::Positive => "positive",
            SessionMood::VeryPositive => "very_positive",
        }
    }
}

/// How the mood moved during the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoodTrajectory {
    /// Better at the end than at the start.
    Improving,
    /// Worse at the end.
    Declining,
    /// About the same throughout.
    Stable,
    /// Up and down.
    Fluctuating,
}

impl MoodTrajectory {
    /// Every value.
    pub const ALL: [MoodTrajectory; 4] = [
        MoodTrajectory::Improving,
        MoodTrajectory::Declining,
        MoodTrajectory::Stable,
        MoodTrajectory::Fluctuating,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MoodTrajectory::Improving => "improving",
            MoodTrajectory::Declining => "declining",
            MoodTrajectory::Stable => "stable",
            MoodTrajectory::Fluctuating => "fluctuating",
        }
    }
}

/// Fewest and most key topics.
pub const KEY_TOPICS: std::ops::RangeInclusive<usize> = 3..=7;
/// Longest topic label (one line).
pub const KEY_TOPIC_MAX_CHARS: usize = 80;
/// Most items in `strategies`, `action_items` and `risk_flags`.
pub const LIST_MAX_ITEMS: usize = 20;
/// Longest item of those lists.
pub const LIST_ITEM_MAX_CHARS: usize = 500;
/// Longest `topic_summary` and `patient_summary`.
pub const SUMMARY_MAX_CHARS: usize = 4_000;
/// Longest `therapist_notes`.
pub const THERAPIST_NOTES_MAX_CHARS: usize = 8_000;

/// The notes of one session, as stored and as the model must produce them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notes {
    /// Three to seven short topic labels.
    pub key_topics: Vec<String>,
    /// A paragraph on what was discussed.
    pub topic_summary: String,
    /// Coping strategies or techniques discussed or practised.
    pub strategies: Vec<String>,
    /// Concrete next steps agreed for the patient (or the practitioner).
    pub action_items: Vec<String>,
    /// The overall mood.
    pub session_mood: SessionMood,
    /// How the mood moved.
    pub mood_trajectory: MoodTrajectory,
    /// Clinical observations for the practitioner only.
    pub therapist_notes: String,
    /// A warm, plain-language summary addressed to the patient (the only part patients see).
    pub patient_summary: String,
    /// Signs of risk (self-harm, harm to others, abuse, crisis); empty when none.
    pub risk_flags: Vec<String>,
}

impl Notes {
    /// Parses and checks a model answer; the error says what is wrong, for the corrective
    /// retry message (it never quotes the answer).
    pub fn from_model_answer(answer: &str) -> Result<Self, String> {
        let notes: Notes = serde_json::from_str(answer.trim())
            .map_err(|e| format!("the answer is not valid JSON for the schema: {e}"))?;
        notes.check()?;
        Ok(notes)
    }

    /// Checks what the schema cannot: counts, non-empty text, and every field's length and
    /// characters (the limits the API documents): an oversized answer is a misfit, asked
    /// again once, never stored.
    pub fn check(&self) -> Result<(), String> {
        if !KEY_TOPICS.contains(&self.key_topics.len()) {
            return Err(format!(
                "key_topics must have {} to {} items, not {}",
                KEY_TOPICS.start(),
                KEY_TOPICS.end(),
                self.key_topics.len()
            ));
        }
        // Each list: its most items, each item's most characters, and whether items are
        // one-line labels.
        let lists = [
            (
                "key_topics",
                &self.key_topics,
                *KEY_TOPICS.end(),
                KEY_TOPIC_MAX_CHARS,
                true,
            ),
            (
                "strategies",
                &self.strategies,
                LIST_MAX_ITEMS,
                LIST_ITEM_MAX_CHARS,
                false,
            ),
            (
                "action_items",
                &self.action_items,
                LIST_MAX_ITEMS,
                LIST_ITEM_MAX_CHARS,
                false,
            ),
            (
                "risk_flags",
                &self.risk_flags,
                LIST_MAX_ITEMS,
                LIST_ITEM_MAX_CHARS,
                false,
            ),
        ];
        for (name, items, max_items, max_chars, one_line) in lists {
            if items.iter().any(|item| item.trim().is_empty()) {
                return Err(format!("{name} must not contain empty strings"));
            }
            if items.len() > max_items {
                return Err(format!("{name} must have at most {max_items} items"));
            }
            if let Some(error) = items
                .iter()
                .find_map(|item| text_error(item, max_chars, one_line))
            {
                return Err(format!("each of {name} {error}"));
            }
        }
        // Each text: its most characters, and whether it may be empty.
        let texts = [
            (
                "topic_summary",
                &self.topic_summary,
                SUMMARY_MAX_CHARS,
                false,
            ),
            (
                "patient_summary",
                &self.patient_summary,
                SUMMARY_MAX_CHARS,
                false,
            ),
            (
                "therapist_notes",
                &self.therapist_notes,
                THERAPIST_NOTES_MAX_CHARS,
                true,
            ),
        ];
        for (name, text, max_chars, may_be_empty) in texts {
            if !may_be_empty && text.trim().is_empty() {
                return Err(format!("{name} must not be empty"));
            }
            if let Some(error) = text_error(text, max_chars, false) {
                return Err(format!("{name} {error}"));
            }
        }
        Ok(())
    }

    /// The JSON schema sent as the `response_format` (OpenAI strict structured output).
    pub fn json_schema() -> Value {
        let strings = |description: &str| {
            json!({
                "type": "array",
                "items": {"type": "string"},
                "maxItems": LIST_MAX_ITEMS,
                "description": format!("{description}; each at most {LIST_ITEM_MAX_CHARS} characters")
            })
        };
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": [
                "key_topics", "topic_summary", "strategies", "action_items", "session_mood",
                "mood_trajectory", "therapist_notes", "patient_summary", "risk_flags"
            ],
            "properties": {
                "key_topics": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": KEY_TOPICS.start(),
                    "maxItems": KEY_TOPICS.end(),
                    "description": format!("3 to 7 short labels of the main topics, each at most {KEY_TOPIC_MAX_CHARS} characters")
                },
                "topic_summary": {"type": "string", "description": format!("What was discussed, one paragraph, at most {SUMMARY_MAX_CHARS} characters")},
                "strategies": strings("Coping strategies or techniques discussed or practised"),
                "action_items": strings("Concrete next steps agreed in the session"),
                "session_mood": {
                    "type": "string",
                    "enum": SessionMood::ALL.map(SessionMood::as_str),
                    "description": "The patient's overall mood"
                },
                "mood_trajectory": {
                    "type": "string",
                    "enum": MoodTrajectory::ALL.map(MoodTrajectory::as_str),
                    "description": "How the mood moved during the session"
                },
                "therapist_notes": {"type": "string", "description": format!("Clinical observations for the practitioner, at most {THERAPIST_NOTES_MAX_CHARS} characters")},
                "patient_summary": {"type": "string", "description": format!("A warm, plain-language summary addressed to the patient, at most {SUMMARY_MAX_CHARS} characters")},
                "risk_flags": strings("Signs of risk (self-harm, harm to others, abuse, crisis); empty if none")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "key_topics": ["sleep", "work stress", "family"],
            "topic_summary": "We talked.",
            "strategies": ["box breathing"],
            "action_items": ["keep a sleep diary"],
            "session_mood": "neutral",
            "mood_trajectory": "improving",
            "therapist_notes": "Engaged.",
            "patient_summary": "You did well.",
            "risk_flags": []
        })
    }

    #[test]
    fn a_valid_answer_parses() {
        let notes = Notes::from_model_answer(&sample().to_string()).unwrap();
        assert_eq!(notes.session_mood.score(), 3);
    }

    #[test]
    fn answers_outside_the_rules_are_refused_with_a_reason() {
        let mut few = sample();
        few["key_topics"] = json!(["one"]);
        assert!(
            Notes::from_model_answer(&few.to_string())
                .unwrap_err()
                .contains("key_topics")
        );
        let mut mood = sample();
        mood["session_mood"] = json!("ecstatic");
        assert!(Notes::from_model_answer(&mood.to_string()).is_err());
        let mut extra = sample();
        extra["diagnosis"] = json!("x");
        assert!(Notes::from_model_answer(&extra.to_string()).is_err());
        assert!(Notes::from_model_answer("{not json").is_err());
    }

    #[test]
    fn oversized_or_hidden_text_is_refused() {
        let cases = [
            (
                "therapist_notes",
                json!("x".repeat(THERAPIST_NOTES_MAX_CHARS + 1)),
            ),
            ("patient_summary", json!("x".repeat(SUMMARY_MAX_CHARS + 1))),
            (
                "key_topics",
                json!(["sleep", "work\nX-Injected: 1", "family"]),
            ),
            ("key_topics", json!(["sleep", "y".repeat(81), "family"])),
            ("strategies", json!(vec!["breathe"; LIST_MAX_ITEMS + 1])),
            ("action_items", json!(["z".repeat(LIST_ITEM_MAX_CHARS + 1)])),
            ("topic_summary", json!("hidden \u{202e} text")),
        ];
        for (field, value) in cases {
            let mut answer = sample();
            answer[field] = value;
            let error = Notes::from_model_answer(&answer.to_string()).unwrap_err();
            assert!(error.contains(field), "{field}: {error}");
        }
        let mut fine = sample();
        fine["therapist_notes"] = json!("x".repeat(THERAPIST_NOTES_MAX_CHARS));
        fine["topic_summary"] = json!("Line one.\nLine two.");
        Notes::from_model_answer(&fine.to_string()).unwrap();
    }

    #[test]
    fn the_schema_requires_every_field() {
        let schema = Notes::json_schema();
        let required = schema["required"].as_array().unwrap();
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(required.len(), properties.len());
    }
}

//! The structured notes extracted from a session, the JSON schema the model must answer with,
//! and the checks an answer must pass beyond the schema.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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

    /// Checks what the schema cannot: counts and non-empty text.
    pub fn check(&self) -> Result<(), String> {
        if !KEY_TOPICS.contains(&self.key_topics.len()) {
            return Err(format!(
                "key_topics must have {} to {} items, not {}",
                KEY_TOPICS.start(),
                KEY_TOPICS.end(),
                self.key_topics.len()
            ));
        }
        let lists = [
            ("key_topics", &self.key_topics),
            ("strategies", &self.strategies),
            ("action_items", &self.action_items),
            ("risk_flags", &self.risk_flags),
        ];
        for (name, items) in lists {
            if items.iter().any(|item| item.trim().is_empty()) {
                return Err(format!("{name} must not contain empty strings"));
            }
        }
        let texts = [
            ("topic_summary", &self.topic_summary),
            ("patient_summary", &self.patient_summary),
        ];
        for (name, text) in texts {
            if text.trim().is_empty() {
                return Err(format!("{name} must not be empty"));
            }
        }
        Ok(())
    }

    /// The JSON schema sent as the `response_format` (OpenAI strict structured output).
    pub fn json_schema() -> Value {
        let strings = |description: &str| json!({"type": "array", "items": {"type": "string"}, "description": description});
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
                    "description": "3 to 7 short labels of the main topics"
                },
                "topic_summary": {"type": "string", "description": "What was discussed, one paragraph"},
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
                "therapist_notes": {"type": "string", "description": "Clinical observations for the practitioner"},
                "patient_summary": {"type": "string", "description": "A warm, plain-language summary addressed to the patient"},
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
    fn the_schema_requires_every_field() {
        let schema = Notes::json_schema();
        let required = schema["required"].as_array().unwrap();
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(required.len(), properties.len());
    }
}

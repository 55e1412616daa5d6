//! A session's texts as they are read: its transcript (with timed segments) and its notes,
//! whole for the practitioner or the patient's own part.

use super::*;

/// A timed piece of the transcript.
#[derive(Debug, Clone, Object)]
pub struct SegmentView {
    /// Start, in milliseconds from the start of the recording.
    pub start_ms: i64,
    /// End, in milliseconds.
    pub end_ms: i64,
    /// What was said.
    pub text: String,
}

impl From<Segment> for SegmentView {
    fn from(s: Segment) -> Self {
        Self {
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: s.text,
        }
    }
}

/// A session's transcript.
#[derive(Debug, Clone, Object)]
pub struct TranscriptView {
    /// The session.
    pub session_id: String,
    /// The whole text.
    pub text: String,
    /// Timed segments, in order (empty for a plain-text upload).
    pub segments: Vec<SegmentView>,
    /// The recording's length.
    pub duration_seconds: Option<f64>,
}

impl TranscriptView {
    /// The stored transcript of `session` (`None` until it is transcribed).
    pub fn from_stored(
        session: &SessionRow,
        texts: &SessionTexts,
    ) -> Result<Option<Self>, Unreadable> {
        let Some(text) = texts.transcript.clone() else {
            return Ok(None);
        };
        let segments: Vec<Segment> = match texts.segments.as_deref() {
            Some(raw) => serde_json::from_str(raw)
                .map_err(|e| Unreadable(format!("stored segments unreadable: {e}")))?,
            None => Vec::new(),
        };
        Ok(Some(Self {
            session_id: session.id.clone(),
            text,
            segments: segments.into_iter().map(Into::into).collect(),
            duration_seconds: session.duration_ms.map(|ms| ms as f64 / 1000.0),
        }))
    }
}

/// The patient's overall mood.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SessionMoodView {
    /// 1 of 5.
    VeryLow,
    /// 2 of 5.
    Low,
    /// 3 of 5.
    Neutral,
    /// 4 of 5.
    Positive,
    /// 5 of 5.
    VeryPositive,
}

/// How the mood moved during the session.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MoodTrajectoryView {
    /// Better by the end.
    Improving,
    /// Worse by the end.
    Declining,
    /// About the same.
    Stable,
    /// Up and down.
    Fluctuating,
}

/// A session's notes. Patients reading their own session get `patient_summary` only.
#[derive(Debug, Clone, Object)]
pub struct NotesView {
    /// The session.
    pub session_id: String,
    /// A plain-language summary addressed to the patient, at most 4000 characters.
    #[oai(validator(max_length = 4000))]
    pub patient_summary: String,
    /// 3 to 7 topic labels, each one line of at most 80 characters.
    #[oai(skip_serializing_if_is_none, validator(min_items = 3, max_items = 7))]
    pub key_topics: Option<Vec<String>>,
    /// What was discussed, at most 4000 characters.
    #[oai(skip_serializing_if_is_none, validator(max_length = 4000))]
    pub topic_summary: Option<String>,
    /// Strategies discussed or practised: at most 20, each at most 500 characters.
    #[oai(skip_serializing_if_is_none, validator(max_items = 20))]
    pub strategies: Option<Vec<String>>,
    /// Next steps agreed: at most 20, each at most 500 characters.
    #[oai(skip_serializing_if_is_none, validator(max_items = 20))]
    pub action_items: Option<Vec<String>>,
    /// The overall mood.
    #[oai(skip_serializing_if_is_none)]
    pub session_mood: Option<SessionMoodView>,
    /// How the mood moved.
    #[oai(skip_serializing_if_is_none)]
    pub mood_trajectory: Option<MoodTrajectoryView>,
    /// Clinical observations for the practitioner, at most 8000 characters.
    #[oai(skip_serializing_if_is_none, validator(max_length = 8000))]
    pub therapist_notes: Option<String>,
    /// Signs of risk, empty when none: at most 20, each at most 500 characters.
    #[oai(skip_serializing_if_is_none, validator(max_items = 20))]
    pub risk_flags: Option<Vec<String>>,
}

impl NotesView {
    /// Every field, for the practitioner.
    pub fn full(session_id: String, n: Notes) -> Self {
        Self {
            session_id,
            patient_summary: n.patient_summary,
            key_topics: Some(n.key_topics),
            topic_summary: Some(n.topic_summary),
            strategies: Some(n.strategies),
            action_items: Some(n.action_items),
            session_mood: Some(match n.session_mood {
                SessionMood::VeryLow => SessionMoodView::VeryLow,
                SessionMood::Low => SessionMoodView::Low,
                SessionMood::Neutral => SessionMoodView::Neutral,
                SessionMood::Positive => SessionMoodView::Positive,
                SessionMood::VeryPositive => SessionMoodView::VeryPositive,
            }),
            mood_trajectory: Some(match n.mood_trajectory {
                MoodTrajectory::Improving => MoodTrajectoryView::Improving,
                MoodTrajectory::Declining => MoodTrajectoryView::Declining,
                MoodTrajectory::Stable => MoodTrajectoryView::Stable,
                MoodTrajectory::Fluctuating => MoodTrajectoryView::Fluctuating,
            }),
            therapist_notes: Some(n.therapist_notes),
            risk_flags: Some(n.risk_flags),
        }
    }

    /// The stored notes of `session` as `reader` reads them (`None` until there are notes).
    pub fn from_stored(
        session_id: &str,
        texts: &SessionTexts,
        reader: Reader<'_>,
    ) -> Result<Option<Self>, Unreadable> {
        let Some(raw) = texts.notes.as_deref() else {
            return Ok(None);
        };
        let notes: Notes = serde_json::from_str(raw)
            .map_err(|e| Unreadable(format!("stored notes unreadable: {e}")))?;
        let session_id = session_id.to_owned();
        Ok(Some(match reader {
            Reader::Practitioner(_) => Self::full(session_id, notes),
            Reader::Patient(_) => Self::patient_only(session_id, notes),
        }))
    }

    /// The patient summary only, for the patient.
    pub fn patient_only(session_id: String, n: Notes) -> Self {
        Self {
            session_id,
            patient_summary: n.patient_summary,
            key_topics: None,
            topic_summary: None,
            strategies: None,
            action_items: None,
            session_mood: None,
            mood_trajectory: None,
            therapist_notes: None,
            risk_flags: None,
        }
    }
}

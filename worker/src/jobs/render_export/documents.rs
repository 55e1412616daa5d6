//! The documents `render_export` renders, built from plain inputs (no database): session
//! notes and a progress report. The benches build them the same way.

use chrono::{DateTime, Days, Utc};
use tend_documents::{Block, Document, MoodPoint, Table};
use tend_shared::{db::stats::Week, jobs::JobError, sessions::Notes};

/// What a session-notes document shows.
pub struct SessionNotesInput<'a> {
    /// The practitioner's name.
    pub practitioner: &'a str,
    /// The patient's display name.
    pub patient: &'a str,
    /// When the session was recorded (ms).
    pub recorded_at: i64,
    /// Its length.
    pub duration_ms: Option<i64>,
    /// The notes.
    pub notes: &'a Notes,
}

/// The notes of one session as a document: header, each section, risk flags set apart.
pub fn session_notes_document(input: &SessionNotesInput<'_>) -> Document {
    let notes = input.notes;
    let mut blocks = Vec::new();
    if !notes.risk_flags.is_empty() {
        blocks.push(Block::Warning {
            title: "Risk flags: review before anything else".into(),
            items: notes.risk_flags.clone(),
        });
    }
    blocks.push(Block::Heading("Summary".into()));
    blocks.push(Block::Paragraph(notes.topic_summary.clone()));
    blocks.push(Block::Heading("Key topics".into()));
    blocks.push(Block::Bullets(notes.key_topics.clone()));
    blocks.push(Block::Heading("Mood".into()));
    blocks.push(Block::Paragraph(format!(
        "Overall: {}. During the session: {}.",
        notes.session_mood.as_str().replace('_', " "),
        notes.mood_trajectory.as_str()
    )));
    if !notes.strategies.is_empty() {
        blocks.push(Block::Heading("Strategies".into()));
        blocks.push(Block::Bullets(notes.strategies.clone()));
    }
    if !notes.action_items.is_empty() {
        blocks.push(Block::Heading("Action items".into()));
        blocks.push(Block::Bullets(notes.action_items.clone()));
    }
    blocks.push(Block::Heading("Clinical notes".into()));
    blocks.push(Block::Paragraph(notes.therapist_notes.clone()));
    blocks.push(Block::Heading("Summary for the patient".into()));
    blocks.push(Block::Paragraph(notes.patient_summary.clone()));
    Document {
        title: "Session notes".into(),
        facts: vec![
            ("Patient".into(), input.patient.to_owned()),
            ("Practitioner".into(), input.practitioner.to_owned()),
            ("Recorded".into(), date_time(input.recorded_at)),
            (
                "Length".into(),
                input.duration_ms.map_or_else(|| "unknown".into(), length),
            ),
        ],
        blocks,
        footer: format!("Session notes · {} · Confidential", input.patient),
    }
}

/// One session of a progress report.
#[derive(Debug, Clone)]
pub struct ReportSession {
    /// When (ms).
    pub at: i64,
    /// Its length.
    pub duration_ms: Option<i64>,
    /// Mood 1-5.
    pub mood: Option<i64>,
    /// The mood's trajectory in the session.
    pub trajectory: String,
    /// Key topics.
    pub topics: Vec<String>,
    /// How many risk flags its notes hold.
    pub risk_flags: i64,
}

/// What a progress report shows.
pub struct ProgressInput<'a> {
    /// The practitioner's name.
    pub practitioner: &'a str,
    /// The patient's display name.
    pub patient: &'a str,
    /// The report's first week.
    pub first_week: Week,
    /// How many weeks it covers (through the current one).
    pub weeks: usize,
    /// The sessions in those weeks, oldest first.
    pub sessions: &'a [ReportSession],
}

/// A progress report: the weeks' mood as a chart, and the sessions as a table.
pub fn progress_report_document(input: &ProgressInput<'_>) -> Result<Document, JobError> {
    let mut points = Vec::with_capacity(input.weeks);
    let mut week = input.first_week;
    let mut rated = 0;
    for _ in 0..input.weeks {
        let (start, end) = week.bounds();
        let moods: Vec<i64> = input
            .sessions
            .iter()
            .filter(|s| s.at >= start && s.at < end)
            .filter_map(|s| s.mood)
            .collect();
        let mood =
            (!moods.is_empty()).then(|| moods.iter().sum::<i64>() as f64 / moods.len() as f64);
        rated += usize::from(mood.is_some());
        points.push(MoodPoint {
            label: week.monday().format("%-d %b").to_string(),
            mood,
        });
        week = Week::of(week.monday() + Days::new(7));
    }
    let chart = tend_documents::mood_chart(
        &points,
        &format!(
            "Average session mood per week (1 very low to 5 very positive); {rated} of {} \
             weeks had sessions.",
            input.weeks
        ),
    )
    .map_err(|e| JobError::permanent("drawing the chart", e))?;
    let rows = input
        .sessions
        .iter()
        .map(|s| {
            vec![
                date(s.at),
                s.duration_ms.map_or_else(|| "–".into(), length),
                s.mood.map_or_else(|| "–".into(), |m| format!("{m} of 5")),
                s.trajectory.clone(),
                s.topics.join(", "),
                if s.risk_flags > 0 {
                    s.risk_flags.to_string()
                } else {
                    "none".into()
                },
            ]
        })
        .collect::<Vec<_>>();
    let flagged: i64 = input.sessions.iter().map(|s| s.risk_flags).sum();
    let mut blocks = vec![
        Block::Heading("Mood over time".into()),
        Block::Image(chart),
        Block::Heading("Sessions".into()),
    ];
    if flagged > 0 {
        blocks.insert(
            0,
            Block::Warning {
                title: "Risk flags".into(),
                items: vec![format!(
                    "{flagged} risk flag(s) in these weeks' notes; see the sessions below."
                )],
            },
        );
    }
    if rows.is_empty() {
        blocks.push(Block::Paragraph(
            "No processed sessions in these weeks.".into(),
        ));
    } else {
        blocks.push(Block::Table(Table {
            columns: vec![
                ("Date".into(), 0.14),
                ("Length".into(), 0.1),
                ("Mood".into(), 0.09),
                ("Trajectory".into(), 0.16),
                ("Key topics".into(), 0.41),
                ("Risk flags".into(), 0.1),
            ],
            rows,
        }));
    }
    let last = Week::of(input.first_week.monday() + Days::new(7 * (input.weeks as u64 - 1)));
    Ok(Document {
        title: "Progress report".into(),
        facts: vec![
            ("Patient".into(), input.patient.to_owned()),
            ("Practitioner".into(), input.practitioner.to_owned()),
            (
                "Weeks".into(),
                format!(
                    "{} to {} ({} weeks)",
                    input.first_week.monday().format("%-d %b %Y"),
                    (last.monday() + Days::new(6)).format("%-d %b %Y"),
                    input.weeks
                ),
            ),
            ("Sessions".into(), input.sessions.len().to_string()),
        ],
        blocks,
        footer: format!("Progress report · {} · Confidential", input.patient),
    })
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(super) fn date(ms: i64) -> String {
    utc(ms).format("%Y-%m-%d").to_string()
}

fn date_time(ms: i64) -> String {
    utc(ms).format("%-d %B %Y, %H:%M UTC").to_string()
}

fn length(ms: i64) -> String {
    let minutes = (ms + 30_000) / 60_000;
    if minutes >= 60 {
        format!("{} h {:02} min", minutes / 60, minutes % 60)
    } else {
        format!("{minutes} min")
    }
}

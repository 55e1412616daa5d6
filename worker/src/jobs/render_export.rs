//! `render_export`: one practice document as PDF or DOCX. The job reads the notes (or the
//! weeks' sessions) from the database, builds a [`Document`], renders it off the async
//! threads and stores the file under `exports/`; the export row says `ready` with the file,
//! or `failed` with the reason. The payload carries the export id only.

use chrono::{DateTime, Days, Utc};
use tend_documents::{Block, Document, MoodPoint, Table};
use tend_shared::{
    db::{self, exports::ExportRow, stats::Week},
    jobs::{JobError, JobTx},
    sessions::Notes,
};
use uuid::Uuid;

use crate::job::{Job, JobCtx};
use tend_shared::jobs::kinds::render_export::{RenderExport, content_type};

impl Job for RenderExport {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let env = ctx.env;
        let id = self.export_id.to_string();
        let db_err = |e: sqlx::Error| JobError::transient("database", e);
        if !db::exports::begin_rendering(&env.db, &id)
            .await
            .map_err(db_err)?
        {
            tracing::info!("export deleted or rendered already; nothing to do");
            return Ok(());
        }
        let export = db::exports::find(&env.db, &id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| JobError::Permanent("the export was deleted".into()))?;
        let (document, subject) = match export.kind.as_str() {
            "session_notes" => session_notes(env, &export).await?,
            "progress_report" => progress_report(env, &export).await?,
            other => return Err(JobError::Permanent(format!("unknown export type {other}"))),
        };
        let format = export.format.clone();
        let started = std::time::Instant::now();
        let bytes = tokio::task::spawn_blocking(move || match format.as_str() {
            "docx" => tend_documents::docx(&document),
            _ => tend_documents::pdf(&document),
        })
        .await
        .map_err(|e| JobError::transient("rendering", e))?
        .map_err(|e| JobError::permanent("rendering", e))?;
        metrics::histogram!("tend_export_render_seconds", "format" => export.format.clone())
            .record(started.elapsed().as_secs_f64());
        let extension = if export.format == "docx" {
            "docx"
        } else {
            "pdf"
        };
        // Each attempt writes its own file: a stale attempt that loses the race removes only
        // what it wrote, never the winner's.
        let key = format!(
            "exports/{}/{}-{}.{extension}",
            export.practitioner_id, export.id, ctx.job.claims
        );
        let size = bytes.len() as i64;
        let body = futures::stream::once(async move { Ok(bytes::Bytes::from(bytes)) });
        env.store
            .put(&key, content_type(&export.format), Box::pin(body), u64::MAX)
            .await
            .map_err(|e| JobError::transient("storing the export", e))?;
        let file_name = format!("{subject}.{extension}");
        if !db::exports::finish(&env.db, &id, &ctx.job.attempt(), &key, size, &file_name)
            .await
            .map_err(db_err)?
        {
            // Deleted while rendering, or another attempt holds the job: this attempt's file
            // must not outlive it.
            env.store
                .delete(&key)
                .await
                .map_err(|e| JobError::Transient(format!("removing an orphan export: {e:#}")))?;
            return Ok(());
        }
        tracing::info!(export_id = %id, bytes = size, "export ready");
        Ok(())
    }

    async fn on_retry(&self, ctx: &JobCtx<'_>, error: &str) {
        record_failure(ctx, &self.export_id, error, false).await;
    }

    async fn on_dead(&self, _ctx: &JobCtx<'_>, tx: &mut JobTx, error: &str) -> sqlx::Result<()> {
        db::exports::fail(&mut **tx, &self.export_id.to_string(), error, true).await
    }
}

async fn record_failure(ctx: &JobCtx<'_>, id: &Uuid, error: &str, dead: bool) {
    if let Err(err) = db::exports::fail(&ctx.env.db, &id.to_string(), error, dead).await {
        tracing::warn!(error = %err, "could not record the failure on the export");
    }
}

type Built = Result<(Document, String), JobError>;

async fn names(env: &crate::env::JobEnv, export: &ExportRow) -> Result<(String, String), JobError> {
    let db_err = |e: sqlx::Error| JobError::transient("database", e);
    let practitioner = db::users::find(&env.db, &export.practitioner_id)
        .await
        .map_err(db_err)?
        .ok_or_else(|| JobError::Permanent("the practitioner's account is gone".into()))?;
    let patient = db::patients::find(&env.db, &export.patient_id)
        .await
        .map_err(db_err)?
        .ok_or_else(|| JobError::Permanent("the patient record was deleted".into()))?;
    let practitioner = practitioner.display_name.unwrap_or(practitioner.email);
    Ok((practitioner, patient.display_name))
}

async fn session_notes(env: &crate::env::JobEnv, export: &ExportRow) -> Built {
    let db_err = |e: sqlx::Error| JobError::transient("database", e);
    let session_id = export
        .session_id
        .as_deref()
        .ok_or_else(|| JobError::Permanent("the session was deleted".into()))?;
    let session = db::sessions::find(&env.db, session_id)
        .await
        .map_err(db_err)?
        .ok_or_else(|| JobError::Permanent("the session was deleted".into()))?;
    let notes: Notes = db::sessions::texts(&env.db, session_id)
        .await
        .map_err(db_err)?
        .and_then(|t| t.notes)
        .and_then(|n| serde_json::from_str(&n).ok())
        .ok_or_else(|| JobError::Permanent("the session has no notes".into()))?;
    let (practitioner, patient) = names(env, export).await?;
    let recorded = session.recorded_at.unwrap_or(session.created_at);
    let document = session_notes_document(&SessionNotesInput {
        practitioner: &practitioner,
        patient: &patient,
        recorded_at: recorded,
        duration_ms: session.duration_ms,
        notes: &notes,
    });
    Ok((document, format!("session-notes-{}", date(recorded))))
}

async fn progress_report(env: &crate::env::JobEnv, export: &ExportRow) -> Built {
    let weeks = export.weeks.unwrap_or(12).clamp(1, 52) as u64;
    let this_week = Week::of(Utc::now().date_naive());
    let first = Week::of(this_week.monday() - Days::new(7 * (weeks - 1)));
    let (from, _) = first.bounds();
    let rows = db::analytics::patient_sessions_since(&env.db, &export.patient_id, from)
        .await
        .map_err(|e| JobError::transient("reading the sessions", e))?;
    let sessions = rows
        .into_iter()
        .map(
            |(at, duration_ms, mood, trajectory, topics, risks)| ReportSession {
                at,
                duration_ms,
                mood,
                trajectory: trajectory.unwrap_or_default(),
                topics: topics
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
                risk_flags: risks,
            },
        )
        .collect::<Vec<_>>();
    let (practitioner, patient) = names(env, export).await?;
    let document = progress_report_document(&ProgressInput {
        practitioner: &practitioner,
        patient: &patient,
        first_week: first,
        weeks: weeks as usize,
        sessions: &sessions,
    })?;
    Ok((document, format!("progress-report-{}", date(db::now_ms()))))
}

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

fn date(ms: i64) -> String {
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

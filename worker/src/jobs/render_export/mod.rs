//! `render_export`: one practice document as PDF or DOCX. The job reads the notes (or the
//! weeks' sessions) from the database, builds a [`Document`], renders it off the async
//! threads and stores the file under `exports/`; the export row says `ready` with the file,
//! or `failed` with the reason. The payload carries the export id only.

mod documents;

pub use documents::*;

use chrono::{Days, Utc};
use tend_documents::Document;
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

    async fn on_cancelled(&self, ctx: &JobCtx<'_>) {
        // The stopped attempt may have stored its file before it could record it.
        let env = ctx.env;
        let Ok(Some(export)) = db::exports::find(&env.db, &self.export_id.to_string()).await else {
            return;
        };
        let extension = if export.format == "docx" {
            "docx"
        } else {
            "pdf"
        };
        let key = format!(
            "exports/{}/{}-{}.{extension}",
            export.practitioner_id, export.id, ctx.job.claims
        );
        if let Err(err) = env.store.delete(&key).await {
            tracing::warn!(error = %err, "a cancelled export's partial file stays for the cleanup");
        }
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

//! `data_export`: the right of access. One ZIP of everything an account may read of its own
//! data through the API, written through the API's own views (`tend_views`), so each record
//! is, field for field, what its owner reads at the matching `GET`: the account and its audit
//! trail; for a practitioner, every patient, session (with its transcript, notes and the
//! uploaded recording), draft, mission and export (with its document); for a patient
//! account, its sessions and their notes as it reads them, and its missions and drafts.
//! JSON files, with a README saying what each holds.
//!
//! Streamed: rows are read a page at a time and each stored file is copied through a local
//! file into the archive, which is written to disk and streamed to the store, so a
//! practitioner with gigabytes of audio needs megabytes of memory. The owner is mailed a link.

mod archive;

use archive::Archive;

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

use futures::{FutureExt, future::BoxFuture};
use poem_openapi::types::ToJSON;
use serde_json::Value;
use tend_shared::{
    db::{
        self,
        audit::AuditFilter,
        sessions::{Reader, SessionFilter, SessionRow},
    },
    domain::Role,
    jobs::{JobError, JobTx},
    sessions::media::audio_extension,
};
use tend_views::{
    Unreadable,
    account::{AuditView, UserView},
    exports::ExportView,
    missions::{DraftView, MissionView},
    patients::PatientView,
    sessions::{NotesView, SessionView, TranscriptView, UsageSummary},
};
use uuid::Uuid;
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

use crate::{
    env::JobEnv,
    job::{Job, JobCtx},
};
use tend_shared::jobs::kinds::data_export::DataExport;
use tend_shared::jobs::kinds::email::{EmailTemplate, SendEmail};

/// Rows read at a time.
const PAGE: i64 = 100;

const README: &str = include_str!("readme.txt");

impl Job for DataExport {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let env = ctx.env;
        let id = self.data_export_id.to_string();
        if !db::data_exports::begin_building(&env.db, &id)
            .await
            .map_err(db_err)?
        {
            tracing::info!("data export gone or built already; nothing to do");
            return Ok(());
        }
        let export = db::data_exports::find(&env.db, &id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| JobError::Permanent("the data export was deleted".into()))?;
        let user = db::users::find(&env.db, &export.user_id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| JobError::Permanent("the account is gone".into()))?;
        let staging = env.settings.staging_dir();
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(|e| JobError::transient("creating the staging folder", e))?;
        let work = tempfile::Builder::new()
            .prefix("data-export-")
            .tempdir_in(&staging)
            .map_err(|e| JobError::transient("creating a work folder", e))?;
        let zip_path = work.path().join("export.zip");
        let file =
            File::create(&zip_path).map_err(|e| JobError::transient("creating the archive", e))?;
        let mut archive = Archive::new(file, work.path().to_owned(), env);
        archive
            .bytes("README.txt", README.as_bytes().to_vec())
            .await?;
        archive
            .object("account.json", &UserView::from(&user))
            .await?;
        let filter = &AuditFilter {
            user_id: Some(&user.id),
            ..AuditFilter::default()
        };
        archive
            .array(
                "audit_log.json",
                move |before: Option<String>| {
                    async move { db::audit::list(&env.db, filter, before.as_deref(), PAGE).await }
                        .boxed()
                },
                |row| &row.id,
                move |row| async move { Ok(Some(AuditView::from(row))) }.boxed(),
            )
            .await?;
        match user.role() {
            Role::Practitioner => practitioner(&mut archive, env, &user.id).await?,
            Role::Patient => patient(&mut archive, env, &user.id).await?,
            Role::Admin => {}
        }
        archive.finish().await?;
        let size = tokio::fs::metadata(&zip_path)
            .await
            .map_err(|e| JobError::transient("reading the archive", e))?
            .len();
        // Each attempt writes its own file: a stale attempt that loses the race removes only
        // what it wrote, never the winner's.
        let key = format!("data-exports/{}/{}-{}.zip", user.id, id, ctx.job.claims);
        let body = tokio_util::io::ReaderStream::new(
            tokio::fs::File::open(&zip_path)
                .await
                .map_err(|e| JobError::transient("opening the archive", e))?,
        );
        env.store
            .put(&key, "application/zip", body, u64::MAX)
            .await
            .map_err(|e| JobError::transient("storing the archive", e))?;
        let mut tx = JobTx::begin(&env.relay).await.map_err(db_err)?;
        if !db::data_exports::finish(&mut tx, &id, &ctx.job.attempt(), &key, size as i64)
            .await
            .map_err(db_err)?
        {
            drop(tx);
            env.store
                .delete(&key)
                .await
                .map_err(|e| JobError::Transient(format!("removing an orphan archive: {e:#}")))?;
            return Ok(());
        }
        tx.enqueue(
            &SendEmail {
                user_id: Uuid::parse_str(&user.id)
                    .map_err(|e| JobError::permanent("user id", e))?,
                template: EmailTemplate::DataExportReady,
                subject_id: Some(self.data_export_id),
            },
            &tend_shared::jobs::JobOrigin {
                created_by: Some(user.id.clone()),
                tenant: Some(user.id.clone()),
                ..Default::default()
            },
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        tracing::info!(data_export_id = %id, bytes = size, "data export ready");
        Ok(())
    }

    async fn on_retry(&self, ctx: &JobCtx<'_>, error: &str) {
        record(ctx, &self.data_export_id, error, false).await;
    }

    async fn on_dead(&self, _ctx: &JobCtx<'_>, tx: &mut JobTx, error: &str) -> sqlx::Result<()> {
        db::data_exports::fail(&mut **tx, &self.data_export_id.to_string(), error, true).await
    }

    async fn on_cancelled(&self, ctx: &JobCtx<'_>) {
        // The stopped attempt may have stored its archive before it could record it.
        let env = ctx.env;
        let id = self.data_export_id.to_string();
        let Ok(Some(export)) = db::data_exports::find(&env.db, &id).await else {
            return;
        };
        let key = format!(
            "data-exports/{}/{}-{}.zip",
            export.user_id, id, ctx.job.claims
        );
        if let Err(err) = env.store.delete(&key).await {
            tracing::warn!(error = %err, "a cancelled archive's partial file stays for the cleanup");
        }
    }
}

async fn record(ctx: &JobCtx<'_>, id: &Uuid, error: &str, dead: bool) {
    if let Err(err) = db::data_exports::fail(&ctx.env.db, &id.to_string(), error, dead).await {
        tracing::warn!(error = %err, "could not record the failure on the data export");
    }
}

/// What a practitioner reads: the rows, then the stored files they name (the archive takes
/// one file at a time, so the files follow their table).
async fn practitioner(
    archive: &mut Archive<'_>,
    env: &JobEnv,
    user_id: &str,
) -> Result<(), JobError> {
    archive
        .array(
            "patients.json",
            move |before: Option<String>| async move { db::patients::list(&env.db, user_id, None, before.as_deref(), PAGE).await }.boxed(),
            |row| &row.id,
            move |row| async move { Ok(Some(PatientView::from(row))) }.boxed(),
        )
        .await?;
    let reader = Reader::Practitioner(user_id);
    let mut recordings = Vec::new();
    archive
        .array(
            "sessions.json",
            session_pages(env, reader),
            |row| &row.id,
            |row| {
                recordings.extend(recording(&row));
                async move {
                    let usage = db::usage::of_session(&env.db, &row.id)
                        .await
                        .map_err(db_err)?;
                    Ok(Some(SessionView::new(row, Some(UsageSummary::new(usage)))))
                }
                .boxed()
            },
        )
        .await?;
    archive
        .array(
            "transcripts.json",
            session_pages(env, reader),
            |row| &row.id,
            move |row| {
                async move {
                    let texts = texts(env, &row).await?;
                    TranscriptView::from_stored(&row, &texts).map_err(unreadable)
                }
                .boxed()
            },
        )
        .await?;
    notes(archive, env, reader).await?;
    drafts_and_missions(archive, env, user_id).await?;
    let mut documents = Vec::new();
    archive
        .array(
            "exports.json",
            move |before: Option<String>| {
                async move { db::exports::list(&env.db, user_id, before.as_deref(), PAGE).await }
                    .boxed()
            },
            |row| &row.id,
            |row| {
                let view = ExportView::from(row.clone());
                // The file goes with the export while its owner may download it.
                if view.download_url.is_some()
                    && let (Some(key), Some(file_name)) = (&row.object_key, &row.file_name)
                {
                    documents.push((format!("exports/{}-{file_name}", row.id), key.clone()));
                }
                async move { Ok(Some(view)) }.boxed()
            },
        )
        .await?;
    for (name, key) in recordings.into_iter().chain(documents) {
        archive.stored(&name, &key).await?;
    }
    Ok(())
}

/// What a patient account reads: its sessions and their notes as the API shows them to it
/// (no error, job or usage; the patient summary only), and its drafts and missions. Not the
/// records its practitioners keep about it: the API does not show those to it (403), and
/// neither does its export.
async fn patient(archive: &mut Archive<'_>, env: &JobEnv, user_id: &str) -> Result<(), JobError> {
    let reader = Reader::Patient(user_id);
    archive
        .array(
            "sessions.json",
            session_pages(env, reader),
            |row| &row.id,
            move |row| async move { Ok(Some(SessionView::for_patient(row))) }.boxed(),
        )
        .await?;
    notes(archive, env, reader).await?;
    drafts_and_missions(archive, env, user_id).await
}

/// The notes of every session `reader` reads, as it reads them.
async fn notes(
    archive: &mut Archive<'_>,
    env: &JobEnv,
    reader: Reader<'_>,
) -> Result<(), JobError> {
    archive
        .array(
            "notes.json",
            session_pages(env, reader),
            |row| &row.id,
            move |row| {
                async move {
                    let texts = texts(env, &row).await?;
                    NotesView::from_stored(&row.id, &texts, reader).map_err(unreadable)
                }
                .boxed()
            },
        )
        .await
}

/// The drafts and missions `user_id` reads (a practitioner's, or a client's own).
async fn drafts_and_missions(
    archive: &mut Archive<'_>,
    env: &JobEnv,
    user_id: &str,
) -> Result<(), JobError> {
    archive
        .array(
            "mission_drafts.json",
            move |before: Option<String>| async move { db::missions::list_drafts(&env.db, user_id, before.as_deref(), PAGE).await }.boxed(),
            |row| &row.id,
            move |row| async move { DraftView::from_row(row).map(Some).map_err(unreadable) }.boxed(),
        )
        .await?;
    archive
        .array(
            "missions.json",
            move |before: Option<String>| {
                async move {
                    db::missions::list_missions(&env.db, user_id, None, before.as_deref(), PAGE)
                        .await
                }
                .boxed()
            },
            |row| &row.id,
            move |row| {
                async move { MissionView::from_row(row).map(Some).map_err(unreadable) }.boxed()
            },
        )
        .await
}

/// The pages of the sessions `reader` reads, newest first, as [`Archive::array`] asks for them.
fn session_pages<'f>(
    env: &'f JobEnv,
    reader: Reader<'f>,
) -> impl Fn(Option<String>) -> BoxFuture<'f, sqlx::Result<Vec<SessionRow>>> {
    move |before| {
        async move {
            let filter = SessionFilter {
                cursor: before.as_deref(),
                ..SessionFilter::default()
            };
            db::sessions::list(&env.db, reader, &filter, PAGE).await
        }
        .boxed()
    }
}

async fn texts(env: &JobEnv, row: &SessionRow) -> Result<db::sessions::SessionTexts, JobError> {
    db::sessions::texts(&env.db, &row.id)
        .await
        .map_err(db_err)?
        .ok_or_else(|| JobError::Transient("a session vanished while it was exported".into()))
}

/// A session's uploaded recording: its name in the archive and its key in the store.
fn recording(row: &SessionRow) -> Option<StoredFile> {
    let key = row.object_key.as_ref()?;
    let ext = audio_extension(&row.media_type);
    Some((format!("recordings/{}.{ext}", row.id), key.clone()))
}

fn db_err(e: sqlx::Error) -> JobError {
    JobError::transient("database", e)
}

/// A stored value its view cannot read: retrying reads the same bytes.
fn unreadable(e: Unreadable) -> JobError {
    JobError::Permanent(e.0)
}

/// A stored file to copy: its name in the archive and its key in the store.
type StoredFile = (String, String);

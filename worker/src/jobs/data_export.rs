//! `data_export`: the right of access. One ZIP of everything an account holds: the account,
//! its audit entries and, for a practitioner, every patient, recording (the audio too),
//! transcript, notes, mission and export; for a patient account, what the API shows it (its
//! sessions' summaries and its missions, never its practitioner's records). JSON files, with
//! a README saying what each holds.
//!
//! Streamed: rows are read a page at a time and each stored file is copied through a local
//! file into the archive, which is written to disk and streamed to the store, so a
//! practitioner with gigabytes of audio needs megabytes of memory. The owner is mailed a link.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};
use tend_shared::{
    backup, db,
    domain::Role,
    jobs::{JobError, JobTx},
    sessions::media::audio_extension,
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
/// Columns that never leave the database: secrets, and what only the service needs.
const SECRET_COLUMNS: [&str; 4] = [
    "password_hash",
    "invitation_token_hash",
    "idempotency_key",
    "tokens_valid_after",
];
/// Text columns that hold JSON, exported as JSON.
const JSON_COLUMNS: [&str; 5] = ["notes", "segments", "questionnaire", "plan", "detail"];

const README: &str = include_str!("data_export_readme.txt");

impl Job for DataExport {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let env = ctx.env;
        let id = self.data_export_id.to_string();
        let db_err = |e: sqlx::Error| JobError::transient("database", e);
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
        let mut archive = Archive {
            zip: Some(ZipWriter::new(file)),
            work: work.path().to_owned(),
            env,
        };
        archive
            .bytes("README.txt", README.as_bytes().to_vec())
            .await?;
        let binds = &[user.id.as_str()];
        archive
            .table("account.json", "users", "id = $1", binds, whole, no_files)
            .await?;
        archive
            .table(
                "audit_log.json",
                "audit_logs",
                "user_id = $1",
                binds,
                whole,
                no_files,
            )
            .await?;
        match user.role() {
            Role::Practitioner => practitioner(&mut archive, &user.id).await?,
            Role::Patient => patient(&mut archive, &user.id).await?,
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
                request_id: None,
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
}

async fn record(ctx: &JobCtx<'_>, id: &Uuid, error: &str, dead: bool) {
    if let Err(err) = db::data_exports::fail(&ctx.env.db, &id.to_string(), error, dead).await {
        tracing::warn!(error = %err, "could not record the failure on the data export");
    }
}

/// What a practitioner holds: the rows, then the stored files they name (the archive takes
/// one file at a time, so the files follow their table).
async fn practitioner(archive: &mut Archive<'_>, user_id: &str) -> Result<(), JobError> {
    let own = "practitioner_id = $1";
    let binds = &[user_id];
    archive
        .table("patients.json", "patients", own, binds, whole, no_files)
        .await?;
    let recordings = archive
        .table("sessions.json", "sessions", own, binds, whole, recording)
        .await?;
    archive
        .table(
            "mission_drafts.json",
            "mission_drafts",
            own,
            binds,
            whole,
            no_files,
        )
        .await?;
    archive
        .table("missions.json", "missions", own, binds, whole, no_files)
        .await?;
    let documents = archive
        .table("exports.json", "exports", own, binds, whole, document)
        .await?;
    for (name, key) in recordings.into_iter().chain(documents) {
        archive.stored(&name, &key).await?;
    }
    Ok(())
}

/// What a patient account may read, as the API shows it to that account: its sessions as it
/// sees them (when, how long, and the summary written for it) and its missions. Not the
/// records its practitioners keep about it: the API does not show those to it (403), and
/// neither does its export (they hold the practitioner's private reference and ids).
async fn patient(archive: &mut Archive<'_>, user_id: &str) -> Result<(), JobError> {
    let linked = "patient_id IN (SELECT id FROM patients WHERE user_id = $1)";
    let binds = &[user_id];
    archive
        .table(
            "missions.json",
            "missions",
            linked,
            binds,
            mission_for_patient,
            no_files,
        )
        .await?;
    archive
        .table(
            "sessions.json",
            "sessions",
            linked,
            binds,
            patient_view,
            no_files,
        )
        .await?;
    Ok(())
}

/// A row of a table, by column.
type Row = Map<String, Value>;
/// A stored file to copy: its name in the archive and its key in the store.
type StoredFile = (String, String);

/// A row as it is.
fn whole(row: Map<String, Value>) -> Value {
    Value::Object(row)
}

/// The `keys` of `row`, in that order (`null` where absent).
fn picked(row: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .map(|key| {
            (
                (*key).to_owned(),
                row.get(*key).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// A mission as its patient's account reads it: the fields `GET /missions` shows, without the
/// practitioner's ids.
fn mission_for_patient(row: Map<String, Value>) -> Value {
    Value::Object(picked(
        &row,
        &[
            "id",
            "patient_id",
            "draft_id",
            "questionnaire",
            "plan",
            "planned_on",
            "created_at",
            "updated_at",
        ],
    ))
}

/// A session as its patient's account reads it.
fn patient_view(row: Map<String, Value>) -> Value {
    let mut view = picked(
        &row,
        &[
            "id",
            "patient_id",
            "status",
            "recorded_at",
            "duration_ms",
            "created_at",
        ],
    );
    let summary = row
        .get("notes")
        .and_then(|n| n.get("patient_summary"))
        .cloned();
    view.insert("patient_summary".into(), summary.unwrap_or(Value::Null));
    Value::Object(view)
}

/// A row that names no stored file.
fn no_files(_: &Map<String, Value>) -> Option<(String, String)> {
    None
}

/// A session's uploaded recording: its name in the archive and its key in the store.
fn recording(row: &Map<String, Value>) -> Option<(String, String)> {
    let key = row.get("object_key")?.as_str()?;
    let ext = audio_extension(&text(row, "media_type"));
    Some((
        format!("recordings/{}.{ext}", text(row, "id")),
        key.to_owned(),
    ))
}

/// An export's rendered document.
fn document(row: &Map<String, Value>) -> Option<(String, String)> {
    let key = row.get("object_key")?.as_str()?;
    let name = format!("exports/{}-{}", text(row, "id"), text(row, "file_name"));
    Some((name, key.to_owned()))
}

/// One page of a table's rows (without secrets), JSON columns parsed.
async fn page(
    env: &JobEnv,
    table: &str,
    filter: &str,
    binds: &[&str],
    after: &str,
) -> Result<Vec<Map<String, Value>>, JobError> {
    let rows = backup::table_rows(&env.db, table, filter, binds, &SECRET_COLUMNS, after, PAGE)
        .await
        .map_err(|e| JobError::Transient(format!("reading {table}: {e:#}")))?;
    Ok(rows
        .into_iter()
        .map(|mut row| {
            for column in JSON_COLUMNS {
                if let Some(Value::String(raw)) = row.get(column)
                    && let Ok(parsed) = serde_json::from_str::<Value>(raw)
                {
                    row.insert(column.into(), parsed);
                }
            }
            row
        })
        .collect())
}

fn text(row: &Map<String, Value>, key: &str) -> String {
    row.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn push_item(chunk: &mut Vec<u8>, first: &mut bool, item: &Value) -> Result<(), JobError> {
    chunk.extend_from_slice(if *first { b"\n  " } else { b",\n  " });
    *first = false;
    serde_json::to_writer(&mut *chunk, item).map_err(|e| JobError::permanent("encoding a row", e))
}

/// The ZIP being written. The writer is synchronous: each step runs on the blocking pool,
/// taking the writer there and back.
struct Archive<'a> {
    zip: Option<ZipWriter<File>>,
    work: PathBuf,
    env: &'a JobEnv,
}

impl Archive<'_> {
    async fn with<T: Send + 'static>(
        &mut self,
        step: impl FnOnce(&mut ZipWriter<File>) -> zip::result::ZipResult<T> + Send + 'static,
    ) -> Result<T, JobError> {
        let mut zip = self.zip.take().ok_or_else(|| {
            JobError::Permanent("the archive was lost after a failed step".into())
        })?;
        let (zip, result) = tokio::task::spawn_blocking(move || {
            let result = step(&mut zip);
            (zip, result)
        })
        .await
        .map_err(|e| JobError::transient("writing the archive", e))?;
        self.zip = Some(zip);
        result.map_err(|e| JobError::transient("writing the archive", e))
    }

    /// Writes the central directory and closes the file.
    async fn finish(&mut self) -> Result<(), JobError> {
        let zip = self.zip.take().ok_or_else(|| {
            JobError::Permanent("the archive was lost after a failed step".into())
        })?;
        let file = tokio::task::spawn_blocking(move || zip.finish())
            .await
            .map_err(|e| JobError::transient("finishing the archive", e))?
            .map_err(|e| JobError::transient("finishing the archive", e))?;
        file.sync_all()
            .map_err(|e| JobError::transient("finishing the archive", e))
    }

    /// A whole small file.
    async fn bytes(&mut self, name: &str, data: Vec<u8>) -> Result<(), JobError> {
        let name = name.to_owned();
        self.with(move |zip| {
            zip.start_file(name, deflated())?;
            zip.write_all(&data)?;
            Ok(())
        })
        .await
    }

    /// Starts a file holding a JSON array; items follow through [`Self::bytes_to_current`].
    async fn begin_array(&mut self, name: &str) -> Result<(), JobError> {
        let name = name.to_owned();
        self.with(move |zip| {
            zip.start_file(name, deflated())?;
            zip.write_all(b"[")?;
            Ok(())
        })
        .await
    }

    /// More bytes of the file being written.
    async fn bytes_to_current(&mut self, data: Vec<u8>) -> Result<(), JobError> {
        self.with(move |zip| Ok(zip.write_all(&data)?)).await
    }

    /// `table`'s rows matching `filter`, page by page, as one JSON array file of `view` of
    /// each row; returns the stored files (`name`, `key`) that `files` finds in the rows.
    async fn table(
        &mut self,
        name: &str,
        table: &str,
        filter: &str,
        binds: &[&str],
        view: fn(Row) -> Value,
        files: fn(&Row) -> Option<StoredFile>,
    ) -> Result<Vec<StoredFile>, JobError> {
        self.begin_array(name).await?;
        let mut found = Vec::new();
        let mut after = String::new();
        let mut first = true;
        loop {
            let rows = page(self.env, table, filter, binds, &after).await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = text(last, "id");
            let mut chunk = Vec::new();
            for row in rows {
                found.extend(files(&row));
                push_item(&mut chunk, &mut first, &view(row))?;
            }
            self.bytes_to_current(chunk).await?;
        }
        self.bytes_to_current(b"\n]\n".to_vec()).await?;
        Ok(found)
    }

    /// A stored object, copied through a local file (stored as is: audio is compressed).
    async fn stored(&mut self, name: &str, key: &str) -> Result<(), JobError> {
        let local = self.work.join("object");
        self.env
            .store
            .download(key, &local)
            .await
            .map_err(|e| JobError::Transient(format!("reading a stored file: {e:#}")))?;
        let name = name.to_owned();
        let path: PathBuf = local.clone();
        self.with(move |zip| {
            zip.start_file(
                name,
                SimpleFileOptions::default()
                    .compression_method(CompressionMethod::Stored)
                    .large_file(true),
            )?;
            let mut file = File::open(Path::new(&path))?;
            std::io::copy(&mut file, zip)?;
            Ok(())
        })
        .await?;
        tokio::fs::remove_file(&local)
            .await
            .map_err(|e| JobError::transient("removing a copied file", e))
    }
}

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

//! `/admin/backups`: the backups in the object store, and taking one now.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use tend_shared::backup;

use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    guards::Admin,
    routes::ApiTags,
    state::AppState,
    views::ms_to_datetime,
};

/// One table of a backup.
#[derive(Debug, Object)]
pub struct BackupTableView {
    /// The table.
    pub name: String,
    /// Its rows.
    pub rows: u64,
    /// Bytes of its file.
    pub bytes: u64,
    /// The order-free checksum of its rows (what a restore verifies).
    pub rows_sha256: String,
}

/// A complete backup.
#[derive(Debug, Object)]
pub struct BackupView {
    /// Its id (`tend-api restore <id>`).
    pub id: String,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// The migration version of the database it came from.
    pub schema_version: i64,
    /// `sqlite` or `postgres`.
    pub source: String,
    /// Rows in all tables.
    pub rows: u64,
    /// Bytes of all table files.
    pub bytes: u64,
    /// Each table.
    pub tables: Vec<BackupTableView>,
}

/// Every backup, newest first.
#[derive(Debug, Object)]
pub struct BackupList {
    /// The backups.
    pub items: Vec<BackupView>,
}

/// A backup run started by an admin.
#[derive(Debug, Object)]
pub struct BackupStarted {
    /// Follow it at `GET /api/v1/admin/jobs/{id}`.
    pub job_id: String,
}

#[derive(ApiResponse)]
enum BackupListResponse {
    /// The backups.
    #[oai(status = 200)]
    Ok(Json<BackupList>),
}

#[derive(ApiResponse)]
enum BackupStartedResponse {
    /// The backup job is queued.
    #[oai(status = 202)]
    Accepted(Json<BackupStarted>),
}

/// The `/admin/backups` operations.
pub struct AdminBackupsApi;

#[OpenApi(prefix_path = "/api/v1/admin/backups", tag = "ApiTags::Admin")]
impl AdminBackupsApi {
    /// Every complete backup in the object store, newest first.
    #[oai(path = "/", method = "get", operation_id = "adminListBackups")]
    async fn list(&self, state: Data<&AppState>, _admin: Admin) -> ApiResult<BackupListResponse> {
        let backups = backup::list(&state.store).await.map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "listing backups failed");
            ApiError::unavailable("The object store is unavailable. Try again.")
        })?;
        let items = backups
            .into_iter()
            .map(|m| BackupView {
                rows: m.total_rows(),
                bytes: m.total_bytes(),
                id: m.id,
                created_at: ms_to_datetime(m.created_at),
                schema_version: m.schema_version,
                source: m.source,
                tables: m
                    .tables
                    .into_iter()
                    .map(|t| BackupTableView {
                        name: t.name,
                        rows: t.rows,
                        bytes: t.bytes,
                        rows_sha256: t.rows_sha256,
                    })
                    .collect(),
            })
            .collect();
        Ok(BackupListResponse::Ok(Json(BackupList { items })))
    }

    /// Take a backup now (the `backup` job, as its schedule would; audited).
    #[oai(path = "/", method = "post", operation_id = "adminTakeBackup")]
    async fn take(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
    ) -> ApiResult<BackupStartedResponse> {
        let job = super::maintenance::start_run(&state, &admin.id, &meta, "backup", false).await?;
        Ok(BackupStartedResponse::Accepted(Json(BackupStarted {
            job_id: job.id,
        })))
    }
}

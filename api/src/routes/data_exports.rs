//! `/users/me/data-export(s)`: the right of access. `POST /users/me/data-export` starts the
//! `data_export` job, which writes one ZIP of everything the account holds and mails its
//! owner a link; the ZIP is downloaded (streamed, audited) for 7 days. At most
//! [`DATA_EXPORTS_PER_DAY`] requests in any 24 hours, counted from the stored requests, so
//! every API replica agrees.

use std::time::Duration;

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path},
    payload::Json,
};
use tend_shared::db::{
    self,
    audit::{self, AuditAction},
    data_exports::DataExportRow,
};
use tend_shared::jobs::kinds::data_export::DataExport;
use tend_shared::lifecycle::DataExportStatus as StoredStatus;

use super::{
    ApiTags,
    cancel::{Work, cancel_own},
};
use crate::{
    download::{FileDownload, Kinds, Stored},
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::IdempotencyKey,
    guards::SignedIn,
    idempotency::{self, Created, KeyedRequest},
    state::AppState,
    views::ms_to_datetime,
};

/// Data exports one account may ask for in 24 hours.
pub const DATA_EXPORTS_PER_DAY: usize = 3;
const DAY_MS: i64 = 86_400_000;

/// Where a data export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DataExportStatus {
    /// Waiting for a worker.
    Queued,
    /// The archive is being written.
    Building,
    /// Download it until `expires_at`.
    Ready,
    /// It could not be built; `error` says why.
    Failed,
    /// Removed after 7 days.
    Expired,
    /// Stopped by `POST /data-exports/{id}/cancel` (or an admin); no archive.
    Cancelled,
}

/// A personal data export.
#[derive(Debug, Object)]
pub struct DataExportView {
    /// Its id.
    pub id: String,
    /// Where it is.
    pub status: DataExportStatus,
    /// Why it failed (or why its last attempt did).
    pub error: Option<String>,
    /// The job building it.
    pub job_id: Option<String>,
    /// The ZIP's size, once ready.
    pub size_bytes: Option<i64>,
    /// Where to download it, while ready.
    pub download_url: Option<String>,
    /// When it was asked for.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was ready.
    pub ready_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it is (or was) deleted.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<DataExportRow> for DataExportView {
    fn from(row: DataExportRow) -> Self {
        let status = match row.status {
            StoredStatus::Queued => DataExportStatus::Queued,
            StoredStatus::Building => DataExportStatus::Building,
            // Past its time the file is gone (or about to be, once the cleanup runs): the
            // download answers 410, so the export reads expired already.
            StoredStatus::Ready if crate::download::past_expiry(row.expires_at) => {
                DataExportStatus::Expired
            }
            StoredStatus::Ready => DataExportStatus::Ready,
            StoredStatus::Failed => DataExportStatus::Failed,
            StoredStatus::Expired => DataExportStatus::Expired,
            StoredStatus::Cancelled => DataExportStatus::Cancelled,
        };
        Self {
            download_url: (status == DataExportStatus::Ready)
                .then(|| format!("/api/v1/users/me/data-exports/{}/download", row.id)),
            status,
            id: row.id,
            error: row.error,
            job_id: row.job_id,
            size_bytes: row.size_bytes,
            created_at: ms_to_datetime(row.created_at),
            ready_at: row.ready_at.map(ms_to_datetime),
            expires_at: row.expires_at.map(ms_to_datetime),
        }
    }
}

/// The account's data exports.
#[derive(Debug, Object)]
pub struct DataExportList {
    /// Newest first.
    pub items: Vec<DataExportView>,
}

#[derive(ApiResponse)]
enum DataExportAccepted {
    /// Queued; the owner is mailed a link when it is ready.
    #[oai(status = 202)]
    Accepted(Json<DataExportView>, #[oai(header = "Location")] String),
    /// A request with this `Idempotency-Key` was accepted before: its export, as it is now.
    #[oai(status = 200)]
    Replayed(Json<DataExportView>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum DataExportResponse {
    /// The data export.
    #[oai(status = 200)]
    Ok(Json<DataExportView>),
}

#[derive(ApiResponse)]
enum DataExportsResponse {
    /// The account's data exports.
    #[oai(status = 200)]
    Ok(Json<DataExportList>),
}

/// A data export's file.
pub struct ZipFile;

impl Kinds for ZipFile {
    const CONTENT_TYPES: &'static [&'static str] = &["application/zip"];
    const DESCRIPTION: &'static str = "The ZIP archive.";
}

/// The data export operations.
pub struct DataExportsApi;

#[OpenApi(prefix_path = "/api/v1/users/me", tag = "ApiTags::Users")]
impl DataExportsApi {
    /// Ask for a copy of everything the account holds (the right of access).
    ///
    /// Answers `202`; a job writes one ZIP (JSON files with a README, and a practitioner's
    /// recordings and documents) and mails a link. Each record in it is what this account
    /// reads at the record's own `GET` (`/users/me`, `/users/me/audit-log`, `/patients/{id}`,
    /// `/sessions/{id}` with its `/transcript` and `/notes`, `/missions/drafts/{id}`,
    /// `/missions/{id}`, `/exports/{id}`), field for field, with the same schemas. At most 3 requests in 24 hours (429 with
    /// `Retry-After`); the same `Idempotency-Key` answers the first request.
    #[oai(
        path = "/data-export",
        method = "post",
        operation_id = "requestDataExport"
    )]
    async fn request(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        meta: RequestMeta,
        /// Makes a retried request safe: the same key answers the first export.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<IdempotencyKey>>,
    ) -> ApiResult<DataExportAccepted> {
        // The request has no parameters: the key alone names it.
        let keyed = KeyedRequest::new(idempotency_key.0.map(|k| k.0), || serde_json::json!({}));
        if let Some(row) =
            idempotency::replayed::<DataExportRow>(&state, &user.id, keyed.as_ref()).await?
        {
            let location = location(&row.id);
            return Ok(DataExportAccepted::Replayed(Json(row.into()), location));
        }
        let id = db::new_id();
        let id_text = id.to_string();
        let mut tx = state.begin().await?;
        // The quota is checked and spent in one transaction, under the account's lock: two
        // requests at once cannot both pass a check that only one fits.
        db::users::lock(&mut tx, &user.id).await?;
        let now = db::now_ms();
        let recent = db::data_exports::requested_since(&mut *tx, &user.id, now - DAY_MS).await?;
        if recent.len() >= DATA_EXPORTS_PER_DAY {
            let frees_at = recent[recent.len() - DATA_EXPORTS_PER_DAY] + DAY_MS;
            let wait = Duration::from_millis((frees_at - now).max(1000) as u64);
            return Err(ApiError::rate_limited(wait));
        }
        let job = tx
            .enqueue(
                &DataExport { data_export_id: id },
                &meta.job_origin(Some(&user.id)),
            )
            .await?;
        audit::record(
            &mut tx,
            AuditAction::DataExportRequested,
            Some(&user.id),
            &meta.origin(),
            Some(serde_json::json!({"data_export_id": id_text})),
        )
        .await?;
        let key = keyed.as_ref().map(|k| k.key.as_str());
        let inserted = db::data_exports::insert(&mut tx, &id_text, &user.id, &job.id, key).await;
        let created = idempotency::commit_created::<DataExportRow>(
            &state,
            tx,
            inserted,
            &user.id,
            keyed.as_ref(),
            &id_text,
        )
        .await?;
        Ok(match created {
            Created::New(row) => DataExportAccepted::Accepted(Json(row.into()), location(&id_text)),
            Created::Replayed(row) => {
                let location = location(&row.id);
                DataExportAccepted::Replayed(Json(row.into()), location)
            }
        })
    }

    /// The account's data exports, newest first.
    #[oai(
        path = "/data-exports",
        method = "get",
        operation_id = "listDataExports"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
    ) -> ApiResult<DataExportsResponse> {
        let rows = db::data_exports::list_own(&state.db, &user.id, 100).await?;
        Ok(DataExportsResponse::Ok(Json(DataExportList {
            items: rows.into_iter().map(Into::into).collect(),
        })))
    }

    /// One data export.
    #[oai(
        path = "/data-exports/:id",
        method = "get",
        operation_id = "getDataExport"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        id: Path<String>,
    ) -> ApiResult<DataExportResponse> {
        Ok(DataExportResponse::Ok(Json(
            own(&state, &user.id, &id.0).await?.into(),
        )))
    }

    /// Stop a queued or building data export: it reads `cancelled` and no archive is kept.
    /// 409 `not-cancellable` once it is ready, failed or cancelled.
    #[oai(
        path = "/data-exports/:id/cancel",
        method = "post",
        operation_id = "cancelDataExport"
    )]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<DataExportResponse> {
        let row = own(&state, &user.id, &id.0).await?;
        cancel_own(&state, &user.id, &meta, Work::DataExport, &row.id).await?;
        Ok(DataExportResponse::Ok(Json(
            own(&state, &user.id, &row.id).await?.into(),
        )))
    }

    /// Download the ZIP, streamed; audited. `409 not-ready` before it is ready, `410` after
    /// it expired.
    #[oai(
        path = "/data-exports/:id/download",
        method = "get",
        operation_id = "downloadDataExport"
    )]
    async fn download(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<FileDownload<ZipFile>> {
        let row = own(&state, &user.id, &id.0).await?;
        let stored = Stored {
            status: row.status.as_str(),
            expired: row.status == StoredStatus::Expired,
            expires_at: row.expires_at,
            object_key: row.object_key.as_deref(),
            what: "data export",
        };
        let created = ms_to_datetime(row.created_at).format("%Y-%m-%d");
        FileDownload::open(
            &state,
            &meta,
            &user.id,
            stored,
            (
                AuditAction::DataExportDownloaded,
                serde_json::json!({"data_export_id": row.id}),
            ),
            "application/zip",
            format!("tend-data-{created}.zip"),
        )
        .await
    }
}

fn location(id: &str) -> String {
    format!("/api/v1/users/me/data-exports/{id}")
}

async fn own(state: &AppState, user_id: &str, id: &str) -> ApiResult<DataExportRow> {
    db::data_exports::find_own(&state.db, user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("data export"))
}

//! `/admin`: what admins watch and do. Queues (figures, pause, retry every dead job), jobs
//! (lists, detail with every attempt, retry, kill, delete), worker processes, users (search,
//! role, disable), practices (budget, cancel every job), the keys that sign access tokens and
//! the audit log. Admin accounts only (403 for others); every action is
//! written to the audit log with who did it.

pub mod backups;
pub mod jobs;
pub mod maintenance;
pub mod practices;
pub mod queues;
pub mod signing_keys;
pub mod stats;
pub mod users;
pub mod workers;

use tend_shared::{
    db::audit::{self, AuditAction},
    jobs::JobTx,
};

use crate::{error::ApiResult, extract::RequestMeta};

/// Records an admin's action in the audit log, in the transaction that does it.
async fn audited(
    tx: &mut JobTx,
    action: AuditAction,
    admin_id: &str,
    meta: &RequestMeta,
    detail: serde_json::Value,
) -> ApiResult<()> {
    audit::record(tx, action, Some(admin_id), &meta.origin(), Some(detail)).await?;
    Ok(())
}

/// Parses an RFC 3339 `since` into milliseconds (a 422 naming the parameter otherwise).
fn parse_since(raw: Option<&str>) -> ApiResult<Option<i64>> {
    raw.map(|raw| {
        chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| t.timestamp_millis())
            .map_err(|_| {
                crate::error::ApiError::invalid_field(
                    "since",
                    "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z",
                )
            })
    })
    .transpose()
}

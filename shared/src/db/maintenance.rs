//! The `maintenance_reports` table: what each maintenance run did, or would do in a dry run.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use super::{Db, now_ms};

/// One category of what a run removed (or would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryReport {
    /// What it is, e.g. `failed_recording_audio`.
    pub category: String,
    /// Rows or objects.
    pub items: u64,
    /// Bytes of the objects, where the category has any.
    pub bytes: Option<u64>,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Whether it only counted.
    pub dry_run: bool,
    /// Each category, in the order the run took them.
    pub categories: Vec<CategoryReport>,
}

/// Stores the report of job `job_id` (of `kind`), replacing one of an earlier attempt.
pub async fn save(db: &Db, job_id: &str, kind: &str, report: &Report) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    save_in(&mut tx, job_id, kind, report).await?;
    tx.commit().await
}

/// [`save`] in the caller's transaction: a run that works in batches stores its count with
/// each batch, so the report never says more or less than was committed.
pub async fn save_in(
    conn: &mut AnyConnection,
    job_id: &str,
    kind: &str,
    report: &Report,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM maintenance_reports WHERE job_id = $1")
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO maintenance_reports (job_id, kind, dry_run, report, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(job_id)
    .bind(kind)
    .bind(i64::from(report.dry_run))
    .bind(serde_json::to_string(report).unwrap_or_default())
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// The report of job `job_id`, if it wrote one.
pub async fn find(db: &Db, job_id: &str) -> sqlx::Result<Option<Report>> {
    let raw: Option<String> =
        sqlx::query_scalar("SELECT report FROM maintenance_reports WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(db)
            .await?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// Which of `keys` a row names (a session, a pending upload, an export, a data export): the
/// objects in the store that are not orphans.
pub async fn owned_object_keys(db: &Db, keys: &[&str]) -> sqlx::Result<BTreeSet<String>> {
    let mut owned = BTreeSet::new();
    for chunk in keys.chunks(200) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let list = marks.join(", ");
        for table in ["sessions", "pending_uploads", "exports", "data_exports"] {
            let sql = format!("SELECT object_key FROM {table} WHERE object_key IN ({list})");
            let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for key in chunk {
                query = query.bind(*key);
            }
            owned.extend(query.fetch_all(db).await?);
        }
    }
    Ok(owned)
}

//! The stored files sessions point at: found for deletion, erasure and the cleanup, and
//! forgotten once removed.

use super::*;

/// The stored objects of a patient's sessions (to remove them with the patient).
pub async fn object_keys_of_patient(db: &Db, patient_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT object_key FROM sessions WHERE patient_id = $1 AND object_key IS NOT NULL",
    )
    .bind(patient_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(k,)| k).collect())
}

/// One page of a practitioner's sessions that still have an object: `(id, object_key)`
/// after session `after`, in id order.
pub async fn objects_of_practitioner_page(
    db: &Db,
    practitioner_id: &str,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT id, object_key FROM sessions WHERE practitioner_id = $1 \
         AND object_key IS NOT NULL AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(practitioner_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One page of failed sessions, failed before `before`, that still have an object:
/// `(id, object_key, size_bytes)` after session `after`, in id order.
pub async fn failed_objects_page(
    db: &Db,
    before: i64,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT id, object_key, size_bytes FROM sessions WHERE status = 'failed' \
         AND updated_at < $1 AND object_key IS NOT NULL AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(before)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Forgets a session's object once it is deleted from the store.
pub async fn clear_object_key(db: &Db, id: &str, key: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET object_key = NULL WHERE id = $1 AND object_key = $2")
        .bind(id)
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}

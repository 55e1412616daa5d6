//! The records a creating request makes under an `Idempotency-Key`, and the fingerprints kept
//! beside the keys: what the request that used a key asked for, so a retry with the same key
//! can be told from a different request reusing it. Each key and fingerprint is written with
//! its row (the `New…` structs); this finds the row again when the key is used again.

use std::future::Future;

use sqlx::AnyConnection;

use super::{
    Db, data_exports::DataExportRow, exports::ExportRow, is_unique_violation, missions::DraftRow,
    sessions::SessionRow,
};

/// A kind of record a creating request makes, found again by the key it was made under. One
/// impl per table, so the create-and-enqueue sequence (`tend_api::idempotency`) is written
/// once for all of them.
pub trait KeyedRecord: Sized + Send {
    /// What the record is, in messages ("export").
    const WHAT: &'static str;
    /// Its table.
    const TABLE: &'static str;
    /// The unique index on (owner, key), and its owner column as SQLite names it
    /// (`table.column`) in a constraint error.
    const KEY_INDEX: (&'static str, &'static str);
    /// Whether the table keeps the request's fingerprint (a request without parameters has
    /// nothing to compare).
    const FINGERPRINTED: bool = true;

    /// The record's id.
    fn id(&self) -> &str;

    /// The record `owner` made under `key`.
    fn find_by_key(
        db: &Db,
        owner: &str,
        key: &str,
    ) -> impl Future<Output = sqlx::Result<Option<Self>>> + Send;

    /// The record `id`, read in `conn` (a transaction that has just written it).
    fn find_in(
        conn: &mut AnyConnection,
        id: &str,
    ) -> impl Future<Output = sqlx::Result<Option<Self>>> + Send;

    /// True when `err` is another request's use of the same key (the unique index).
    fn is_key_clash(err: &sqlx::Error) -> bool {
        is_unique_violation(err, Self::KEY_INDEX.0, Self::KEY_INDEX.1)
    }
}

/// The fingerprint recorded for record `id` of kind `R` (none for rows made before
/// fingerprints, and for tables that keep none).
pub async fn recorded<R: KeyedRecord>(db: &Db, id: &str) -> sqlx::Result<Option<String>> {
    if !R::FINGERPRINTED {
        return Ok(None);
    }
    let sql = format!(
        "SELECT idempotency_fingerprint FROM {} WHERE id = $1",
        R::TABLE
    );
    Ok(
        sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}

impl KeyedRecord for ExportRow {
    const WHAT: &'static str = "export";
    const TABLE: &'static str = "exports";
    const KEY_INDEX: (&'static str, &'static str) =
        ("exports_idempotency_key", "exports.practitioner_id");

    fn id(&self) -> &str {
        &self.id
    }

    async fn find_by_key(db: &Db, owner: &str, key: &str) -> sqlx::Result<Option<Self>> {
        super::exports::find_by_idempotency_key(db, owner, key).await
    }

    async fn find_in(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<Self>> {
        super::exports::find(conn, id).await
    }
}

impl KeyedRecord for DraftRow {
    const WHAT: &'static str = "draft";
    const TABLE: &'static str = "mission_drafts";
    const KEY_INDEX: (&'static str, &'static str) = (
        "mission_drafts_idempotency_key",
        "mission_drafts.requested_by",
    );

    fn id(&self) -> &str {
        &self.id
    }

    async fn find_by_key(db: &Db, owner: &str, key: &str) -> sqlx::Result<Option<Self>> {
        super::missions::find_draft_by_key(db, owner, key).await
    }

    async fn find_in(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<Self>> {
        super::missions::find_draft(conn, id).await
    }
}

impl KeyedRecord for DataExportRow {
    const WHAT: &'static str = "data export";
    const TABLE: &'static str = "data_exports";
    const KEY_INDEX: (&'static str, &'static str) =
        ("data_exports_idempotency_key", "data_exports.user_id");
    const FINGERPRINTED: bool = false;

    fn id(&self) -> &str {
        &self.id
    }

    async fn find_by_key(db: &Db, owner: &str, key: &str) -> sqlx::Result<Option<Self>> {
        super::data_exports::find_by_key(db, owner, key).await
    }

    async fn find_in(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<Self>> {
        super::data_exports::find(conn, id).await
    }
}

impl KeyedRecord for SessionRow {
    const WHAT: &'static str = "session";
    const TABLE: &'static str = "sessions";
    const KEY_INDEX: (&'static str, &'static str) =
        ("sessions_idempotency_key", "sessions.practitioner_id");

    fn id(&self) -> &str {
        &self.id
    }

    async fn find_by_key(db: &Db, owner: &str, key: &str) -> sqlx::Result<Option<Self>> {
        super::sessions::find_by_idempotency_key(db, owner, key).await
    }

    async fn find_in(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<Self>> {
        super::sessions::find(conn, id).await
    }
}

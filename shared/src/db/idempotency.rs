//! The fingerprints kept beside `Idempotency-Key`s: what the request that used a key asked for,
//! so a retry with the same key can be told from a different request reusing it. Each is
//! written with its row (the `New…` structs); this reads it back when a key is used again.

use super::Db;

/// The resources a creating request with an `Idempotency-Key` makes.
#[derive(Debug, Clone, Copy)]
pub enum Keyed {
    /// `POST /exports`.
    Export,
    /// `POST /missions/drafts`.
    MissionDraft,
    /// `POST /sessions`.
    Session,
}

impl Keyed {
    fn table(self) -> &'static str {
        match self {
            Keyed::Export => "exports",
            Keyed::MissionDraft => "mission_drafts",
            Keyed::Session => "sessions",
        }
    }
}

/// The fingerprint recorded for resource `id` (none for rows made before fingerprints).
pub async fn recorded(db: &Db, keyed: Keyed, id: &str) -> sqlx::Result<Option<String>> {
    let sql = format!(
        "SELECT idempotency_fingerprint FROM {} WHERE id = $1",
        keyed.table()
    );
    Ok(
        sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}

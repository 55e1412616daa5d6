//! The fingerprints kept beside `Idempotency-Key`s: what the request that used a key asked for,
//! so a retry with the same key can be told from a different request reusing it.

use sqlx::AnyConnection;

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

/// Records the fingerprint of the request that made resource `id`, in its transaction.
pub async fn remember(
    conn: &mut AnyConnection,
    keyed: Keyed,
    id: &str,
    fingerprint: &str,
) -> sqlx::Result<()> {
    let sql = format!(
        "UPDATE {} SET idempotency_fingerprint = $1 WHERE id = $2",
        keyed.table()
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(fingerprint)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
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

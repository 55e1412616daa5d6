//! The `transcription_chunks` table: chunks of a long recording transcribed by an attempt,
//! kept until the transcript is stored so a retried attempt pays only for what it lacks.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};

/// A chunk of a long recording transcribed by an earlier attempt.
#[derive(Debug, Clone, FromRow)]
pub struct ChunkRow {
    pub offset_ms: i64,
    pub duration_ms: i64,
    /// JSON array of segments on the recording's time line.
    pub segments: String,
}

/// Chunk `index` of the session, if an earlier attempt transcribed it.
pub async fn transcribed_chunk(
    db: &Db,
    session_id: &str,
    index: i64,
) -> sqlx::Result<Option<ChunkRow>> {
    sqlx::query_as::<_, ChunkRow>(
        "SELECT offset_ms, duration_ms, segments FROM transcription_chunks \
         WHERE session_id = $1 AND chunk_index = $2",
    )
    .bind(session_id)
    .bind(index)
    .fetch_optional(db)
    .await
}

/// Keeps a transcribed chunk for later attempts (replacing one cut differently).
pub async fn save_chunk(
    db: &Db,
    session_id: &str,
    index: i64,
    chunk: &ChunkRow,
) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM transcription_chunks WHERE session_id = $1 AND chunk_index = $2")
        .bind(session_id)
        .bind(index)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO transcription_chunks (session_id, chunk_index, offset_ms, duration_ms, \
         segments, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(session_id)
    .bind(index)
    .bind(chunk.offset_ms)
    .bind(chunk.duration_ms)
    .bind(&chunk.segments)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Drops the kept chunks (their text now lives in the transcript).
pub async fn clear_chunks(conn: &mut AnyConnection, session_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM transcription_chunks WHERE session_id = $1")
        .bind(session_id)
        .execute(conn)
        .await?;
    Ok(())
}

//! Backups that restore anywhere: a consistent snapshot of every table of the database, in a
//! format that does not depend on the database it came from, so a backup of an embedded
//! (SQLite) installation restores into PostgreSQL and the reverse.
//!
//! A backup is `backups/<id>/` in the object store: one zstd-compressed JSON-lines file per
//! table (a header line naming the columns and their kinds, then one JSON array per row,
//! values in the order of the sorted column names) and `manifest.json` (time, schema version,
//! and per table its row count, the SHA-256 of its stored file and a checksum of its rows).
//! The row checksum is the sum modulo 2^256 of the rows' own SHA-256 digests: it does not
//! depend on row order or on the database, so a restore proves itself by computing it again
//! on the target, and it is computed in one pass with 32 bytes of state.
//!
//! Both directions stream: rows go from the database through the compressor to a staging file
//! and the store, and back through the decompressor in batches, so memory does not grow with
//! the database (`tests/bench/backup_memory.sh`). Format 1 backups (uncompressed, with the
//! sorted-digest checksum) still restore.
//!
//! Recorded audio and exports live in the object store, not in the database: the backup does
//! not copy them (see the README: bucket versioning, or a copy of `DATA_DIR/objects`).

mod checksum;
mod restore;
mod schema;
mod take;

pub use checksum::table_text;
pub use restore::{Restored, restore};
pub use schema::current_schema_version;
pub use take::take;

use checksum::*;
use schema::*;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::{Context, bail};
use async_compression::tokio::{bufread::ZstdDecoder, write::ZstdEncoder};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

use crate::{
    db::{self, Db},
    storage::ObjectStore,
};

/// Where backups live in the object store.
pub const PREFIX: &str = "backups/";
/// The format written into every manifest. 2: zstd files, summed row checksum.
pub const FORMAT: u32 = 2;
/// The earliest format a restore still reads (1: plain files, sorted-digest checksum).
const OLDEST_FORMAT: u32 = 1;
/// Bytes read at a time when hashing a stored file.
const HASH_CHUNK: usize = 64 * 1024;
/// The migrations table is the schema version, not data; signing keys are secrets no backup
/// may carry (a restored installation signs with `JWT_SECRET` until it rotates).
const SKIPPED_TABLES: [&str; 2] = ["_sqlx_migrations", "signing_keys"];

/// What a column holds, in the portable format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// A 64-bit integer (BIGINT, INTEGER).
    Int,
    /// Text.
    Text,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub kind: ColumnKind,
}

/// One table of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableManifest {
    /// The table.
    pub name: String,
    /// Its columns, sorted by name (the order of every row's values).
    pub columns: Vec<Column>,
    /// Rows.
    pub rows: u64,
    /// Bytes of its file.
    pub bytes: u64,
    /// SHA-256 of its file, hex.
    pub file_sha256: String,
    /// The order-free checksum of its rows, hex.
    pub rows_sha256: String,
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The backup's id (sortable by time), its folder under [`PREFIX`].
    pub id: String,
    /// When the snapshot was taken (ms since the epoch).
    pub created_at: i64,
    /// The last migration applied to the database it came from.
    pub schema_version: i64,
    /// `sqlite` or `postgres`.
    pub source: String,
    /// Every table.
    pub tables: Vec<TableManifest>,
}

impl Manifest {
    /// Rows in all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Bytes of all table files.
    pub fn total_bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }
}

fn manifest_key(id: &str) -> String {
    format!("{PREFIX}{id}/manifest.json")
}

fn table_key(id: &str, table: &str, format: u32) -> String {
    let extension = if format == 1 { "jsonl" } else { "jsonl.zst" };
    format!("{PREFIX}{id}/{table}.{extension}")
}

/// The SHA-256 (hex) and size of a local file, read in chunks.
async fn file_sha256(path: &Path) -> anyhow::Result<(String, u64)> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; HASH_CHUNK];
    let mut size = 0;
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Ok((hex::encode(hasher.finalize()), size));
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
}

/// Every complete backup in `store`, newest first.
pub async fn list(store: &ObjectStore) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for key in store.list(PREFIX).await? {
        if !key.ends_with("/manifest.json") {
            continue;
        }
        let raw = match store.read(&key).await {
            Ok(raw) => raw,
            // Pruned by another backup's run between the listing and the read: gone, not broken.
            Err(_) if store.size(&key).await?.is_none() => continue,
            Err(err) => return Err(err),
        };
        match serde_json::from_slice::<Manifest>(&raw) {
            Ok(manifest) => out.push(manifest),
            Err(err) => tracing::warn!(%key, error = %err, "unreadable backup manifest skipped"),
        }
    }
    out.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(out)
}

/// The manifest of backup `id`, or of the newest with `latest`.
pub async fn find(store: &ObjectStore, id: &str) -> anyhow::Result<Manifest> {
    if id == "latest" {
        return list(store)
            .await?
            .into_iter()
            .next()
            .context("there is no backup in the object store");
    }
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
    {
        bail!("{id:?} is not a backup id");
    }
    let raw = store
        .read(&manifest_key(id))
        .await
        .with_context(|| format!("backup {id} has no manifest"))?;
    let manifest: Manifest = serde_json::from_slice(&raw)
        .with_context(|| format!("backup {id}: unreadable manifest"))?;
    if !(OLDEST_FORMAT..=FORMAT).contains(&manifest.format) {
        bail!(
            "backup {id} is in format {}, this build reads {OLDEST_FORMAT} to {FORMAT}",
            manifest.format
        );
    }
    Ok(manifest)
}

/// The backups retention keeps: the newest of each of the last `daily` days that have one,
/// and the newest of each of the last `weekly` ISO weeks that have one. `backups` newest first.
pub fn kept(backups: &[Manifest], daily: usize, weekly: usize) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    let mut days = BTreeSet::new();
    let mut weeks = BTreeSet::new();
    for backup in backups {
        let day = db::stats::day_of(backup.created_at);
        if days.len() < daily && days.insert(day) {
            keep.insert(backup.id.clone());
        }
        let week = db::stats::Week::of(day);
        if weeks.len() < weekly && weeks.insert(week) {
            keep.insert(backup.id.clone());
        }
    }
    keep
}

/// Deletes `backups` (as [`list`] gave them) that retention does not keep: each manifest
/// first, so a half-deleted backup is never listed, then its files; a crash between leaves
/// files without a manifest, which a later run removes once they are a day old (younger ones
/// may belong to a backup being written). Returns the ids deleted.
pub async fn prune(
    store: &ObjectStore,
    backups: &[Manifest],
    daily: usize,
    weekly: usize,
) -> anyhow::Result<Vec<String>> {
    let keep = kept(backups, daily, weekly);
    let deleted: BTreeSet<String> = backups
        .iter()
        .map(|b| b.id.clone())
        .filter(|id| !keep.contains(id))
        .collect();
    for id in &deleted {
        store.delete(&manifest_key(id)).await?;
    }
    let listed: BTreeSet<&str> = backups.iter().map(|b| b.id.as_str()).collect();
    let day_ago = db::now_ms() - 86_400_000;
    for key in store.list(PREFIX).await? {
        let Some(id) = key.strip_prefix(PREFIX).and_then(|k| k.split('/').next()) else {
            continue;
        };
        let abandoned = !listed.contains(id) && id_time(id).is_some_and(|t| t < day_ago);
        if deleted.contains(id) || abandoned {
            store.delete(&key).await?;
        }
    }
    Ok(deleted.into_iter().collect())
}

/// The time an id was taken at (its leading timestamp).
fn id_time(id: &str) -> Option<i64> {
    let stamp = id.split('-').next()?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: &str, at: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            id: id.into(),
            created_at: chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp_millis(),
            schema_version: 1,
            source: "sqlite".into(),
            tables: Vec::new(),
        }
    }

    #[test]
    fn retention_keeps_the_newest_per_day_and_per_week() {
        // Newest first: two on Dec 1, one each day back to Nov 1.
        let mut backups = vec![
            backup("b-1201-late", "2026-12-01T20:00:00Z"),
            backup("b-1201", "2026-12-01T02:00:00Z"),
        ];
        for day in (1..=30).rev() {
            backups.push(backup(
                &format!("b-11{day:02}"),
                &format!("2026-11-{day:02}T02:00:00Z"),
            ));
        }
        let keep = kept(&backups, 7, 4);
        assert!(keep.contains("b-1201-late") && !keep.contains("b-1201"));
        for day in 25..=30 {
            assert!(keep.contains(&format!("b-11{day}")), "day {day}");
        }
        assert!(
            !keep.contains("b-1124"),
            "Monday Nov 23's week is kept by its Sunday"
        );
        // Weeks: Dec 1 (W49), Nov 29 (W48), Nov 22 (W47), Nov 15 (W46).
        assert!(keep.contains("b-1122") && keep.contains("b-1115"));
        assert!(!keep.contains("b-1108"));
        assert_eq!(keep.len(), 7 + 2);
    }

    #[test]
    fn row_checksums_ignore_order() {
        for format in [1, 2] {
            let of = |rows: &[&[u8]]| {
                let mut checksum = RowsChecksum::new(format);
                for row in rows {
                    checksum.add(row);
                }
                checksum.finish()
            };
            assert_eq!(of(&[b"a", b"b"]), of(&[b"b", b"a"]));
            assert_ne!(of(&[b"a"]).1, of(&[b"a", b"b"]).1);
            // A repeated row counts: a multiset, not a set.
            assert_ne!(of(&[b"a", b"a", b"b"]).1, of(&[b"b"]).1);
        }
    }

    #[test]
    fn ids_carry_their_time() {
        assert_eq!(
            id_time("20261201T020000.000Z-abcdef"),
            Some(
                chrono::DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z")
                    .unwrap()
                    .timestamp_millis()
            )
        );
    }
}

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

/// The schema version this build's migrations end at.
pub fn current_schema_version() -> i64 {
    db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

fn backend_name(db: &Db) -> &'static str {
    if db::is_postgres(db) {
        "postgres"
    } else {
        "sqlite"
    }
}

/// The data tables, sorted by name.
async fn tables(conn: &mut AnyConnection, postgres: bool) -> anyhow::Result<Vec<String>> {
    let sql = if postgres {
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY 1"
    };
    let names: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut *conn).await?;
    Ok(names
        .into_iter()
        .filter(|n| !SKIPPED_TABLES.contains(&n.as_str()))
        .collect())
}

/// A table's columns, sorted by name.
async fn columns(
    conn: &mut AnyConnection,
    postgres: bool,
    table: &str,
) -> anyhow::Result<Vec<Column>> {
    let sql = if postgres {
        "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1"
    } else {
        "SELECT name, type FROM pragma_table_info($1)"
    };
    let rows: Vec<(String, String)> = sqlx::query_as(sql)
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, ty) in rows {
        let ty = ty.to_ascii_lowercase();
        let kind = if ty.contains("int") {
            ColumnKind::Int
        } else if ty.contains("text") || ty.contains("char") {
            ColumnKind::Text
        } else {
            bail!("{table}.{name} has type {ty}, which backups cannot carry yet");
        };
        out.push(Column { name, kind });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Table names after the tables they reference: the order rows can be inserted in.
async fn insert_order(
    conn: &mut AnyConnection,
    postgres: bool,
    names: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in names {
        let refs: Vec<String> = if postgres {
            sqlx::query_scalar(
                "SELECT DISTINCT CAST(ccu.table_name AS TEXT) \
                 FROM information_schema.table_constraints tc \
                 JOIN information_schema.constraint_column_usage ccu \
                   ON tc.constraint_name = ccu.constraint_name \
                  AND tc.table_schema = ccu.table_schema \
                 WHERE tc.constraint_type = 'FOREIGN KEY' \
                   AND tc.table_schema = current_schema() AND tc.table_name = $1",
            )
            .bind(name)
            .fetch_all(&mut *conn)
            .await?
        } else {
            sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)")
                .bind(name)
                .fetch_all(&mut *conn)
                .await?
        };
        parents.insert(
            name.clone(),
            refs.into_iter()
                .filter(|r| r != name && names.contains(r))
                .collect(),
        );
    }
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    while order.len() < names.len() {
        let ready: Vec<String> = parents
            .iter()
            .filter(|(n, ps)| !placed.contains(*n) && ps.iter().all(|p| placed.contains(p)))
            .map(|(n, _)| n.clone())
            .collect();
        if ready.is_empty() {
            bail!("the tables' foreign keys form a cycle");
        }
        for name in ready {
            placed.insert(name.clone());
            order.push(name);
        }
    }
    Ok(order)
}

/// The portable form of one row: its values in column order.
fn encode_row(row: &sqlx::any::AnyRow, columns: &[Column]) -> anyhow::Result<Value> {
    let mut values = Vec::with_capacity(columns.len());
    for column in columns {
        let name = column.name.as_str();
        let value = match column.kind {
            ColumnKind::Int => row
                .try_get::<Option<i64>, _>(name)
                .with_context(|| format!("reading {name}"))?
                .map_or(Value::Null, Value::from),
            ColumnKind::Text => row
                .try_get::<Option<String>, _>(name)
                .with_context(|| format!("reading {name}"))?
                .map_or(Value::Null, Value::from),
        };
        values.push(value);
    }
    Ok(Value::Array(values))
}

/// The order-free checksum of a table's rows, fed one row at a time.
enum RowsChecksum {
    /// Format 2: the sum of the rows' digests as 256-bit big-endian numbers, modulo 2^256
    /// (little-endian limbs here). Constant memory.
    Sum { limbs: [u64; 4], rows: u64 },
    /// Format 1: the SHA-256 of the rows' digests in sorted order (32 bytes a row, kept only
    /// to check backups taken in that format).
    Sorted(Vec<[u8; 32]>),
}

impl RowsChecksum {
    fn new(format: u32) -> Self {
        if format == 1 {
            RowsChecksum::Sorted(Vec::new())
        } else {
            RowsChecksum::Sum {
                limbs: [0; 4],
                rows: 0,
            }
        }
    }

    /// Adds one row, as its encoded line.
    fn add(&mut self, line: &[u8]) {
        let digest: [u8; 32] = Sha256::digest(line).into();
        match self {
            RowsChecksum::Sum { limbs, rows } => {
                *rows += 1;
                let mut carry = false;
                for (i, limb) in limbs.iter_mut().enumerate() {
                    let start = 32 - 8 * (i + 1);
                    let part = u64::from_be_bytes(digest[start..start + 8].try_into().unwrap());
                    let (sum, c1) = limb.overflowing_add(part);
                    let (sum, c2) = sum.overflowing_add(u64::from(carry));
                    *limb = sum;
                    carry = c1 || c2;
                }
            }
            RowsChecksum::Sorted(digests) => digests.push(digest),
        }
    }

    /// The row count and the checksum, hex.
    fn finish(self) -> (u64, String) {
        match self {
            RowsChecksum::Sum { limbs, rows } => {
                let bytes: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
                (rows, hex::encode(bytes))
            }
            RowsChecksum::Sorted(mut digests) => {
                digests.sort_unstable();
                let mut hasher = Sha256::new();
                for digest in &digests {
                    hasher.update(digest);
                }
                (digests.len() as u64, hex::encode(hasher.finalize()))
            }
        }
    }
}

/// One table of a backup as JSON-lines text (decompressed): for checks and tools that read a
/// backup without restoring it.
pub async fn table_text(
    store: &ObjectStore,
    manifest: &Manifest,
    table: &str,
) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let bytes = store
        .read(&table_key(&manifest.id, table, manifest.format))
        .await?;
    if manifest.format == 1 {
        return Ok(String::from_utf8(bytes.to_vec())?);
    }
    let mut text = String::new();
    ZstdDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .await?;
    Ok(text)
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

fn select_all(table: &str, columns: &[Column]) -> String {
    let list: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    format!("SELECT {} FROM \"{table}\"", list.join(", "))
}

/// Counts and checksums `table` as it is now in `conn`, the way backups of `format` do.
async fn checksum_table(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[Column],
    format: u32,
) -> anyhow::Result<(u64, String)> {
    let sql = select_all(table, columns);
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
    let mut checksum = RowsChecksum::new(format);
    while let Some(row) = rows.try_next().await? {
        checksum.add(&serde_json::to_vec(&encode_row(&row, columns)?)?);
    }
    Ok(checksum.finish())
}

/// Takes a backup of `db` into `store`, staging each table file in `work_dir`.
pub async fn take(db: &Db, store: &ObjectStore, work_dir: &Path) -> anyhow::Result<Manifest> {
    let postgres = db::is_postgres(db);
    let created_at = db::now_ms();
    let when = chrono::DateTime::from_timestamp_millis(created_at).unwrap_or_default();
    let id = format!(
        "{}-{}",
        when.format("%Y%m%dT%H%M%S%.3fZ"),
        &db::new_id().simple().to_string()[24..]
    );
    tokio::fs::create_dir_all(work_dir).await?;
    let staging = tempfile::tempdir_in(work_dir)?;

    let mut tx = db.begin().await?;
    // One snapshot for every table: PostgreSQL at repeatable read; SQLite's read transaction
    // sees one state of the file from its first read to its end.
    if postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    let schema_version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut *tx)
        .await?;
    let mut manifests = Vec::new();
    for table in tables(&mut tx, postgres).await? {
        let columns = columns(&mut tx, postgres, &table).await?;
        let path = staging.path().join(format!("{table}.jsonl.zst"));
        let file = tokio::fs::File::create(&path).await?;
        let mut out = ZstdEncoder::new(BufWriter::new(file));
        let header =
            serde_json::to_vec(&serde_json::json!({ "table": table, "columns": columns }))?;
        out.write_all(&header).await?;
        out.write_all(b"\n").await?;
        let mut checksum = RowsChecksum::new(FORMAT);
        {
            let sql = select_all(&table, &columns);
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let line = serde_json::to_vec(&encode_row(&row, &columns)?)?;
                checksum.add(&line);
                out.write_all(&line).await?;
                out.write_all(b"\n").await?;
            }
        }
        // Ends the zstd frame and flushes the file.
        out.shutdown().await?;
        drop(out);
        let (rows, rows_sha256) = checksum.finish();
        let (file_sha256, bytes) = file_sha256(&path).await?;
        manifests.push((
            path,
            TableManifest {
                name: table,
                columns,
                rows,
                bytes,
                file_sha256,
                rows_sha256,
            },
        ));
    }
    tx.commit().await?;

    for (path, table) in &manifests {
        let file = tokio::fs::File::open(path).await?;
        let body = tokio_util::io::ReaderStream::new(file);
        store
            .put(
                &table_key(&id, &table.name, FORMAT),
                "application/zstd",
                body,
                u64::MAX,
            )
            .await
            .map_err(|e| anyhow::anyhow!("storing {}: {e}", table.name))?;
    }
    let manifest = Manifest {
        format: FORMAT,
        id: id.clone(),
        created_at,
        schema_version,
        source: backend_name(db).to_owned(),
        tables: manifests.into_iter().map(|(_, t)| t).collect(),
    };
    // The manifest last: a backup without one is incomplete and is never listed.
    let body = serde_json::to_vec_pretty(&manifest)?;
    store
        .put(
            &manifest_key(&id),
            "application/json",
            futures::stream::iter([Ok(bytes::Bytes::from(body))]),
            u64::MAX,
        )
        .await
        .map_err(|e| anyhow::anyhow!("storing the manifest: {e}"))?;
    Ok(manifest)
}

/// Every complete backup in `store`, newest first.
pub async fn list(store: &ObjectStore) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for key in store.list(PREFIX).await? {
        if !key.ends_with("/manifest.json") {
            continue;
        }
        let raw = store.read(&key).await?;
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

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The backup restored.
    pub id: String,
    /// Tables restored, each verified.
    pub tables: usize,
    /// Rows restored.
    pub rows: u64,
}

/// Restores backup `id` (or `latest`) into `db`, which must have no rows unless `force`
/// (then its rows are deleted first), and verifies every table's count and checksum against
/// the manifest. All in one transaction: a refused or failed restore leaves `db` as it was.
pub async fn restore(
    db: &Db,
    store: &ObjectStore,
    id: &str,
    force: bool,
    work_dir: &Path,
) -> anyhow::Result<Restored> {
    let manifest = find(store, id).await?;
    let id = manifest.id.clone();
    let current = current_schema_version();
    if manifest.schema_version != current {
        bail!(
            "backup {id} has schema version {}, this build's is {current}: restore it with the \
             release that took it",
            manifest.schema_version
        );
    }
    db::migrate(db).await?;
    let postgres = db::is_postgres(db);

    // Every file first, checked against the manifest, before anything is written.
    tokio::fs::create_dir_all(work_dir).await?;
    let staging = tempfile::tempdir_in(work_dir)?;
    let mut files = BTreeMap::new();
    for table in &manifest.tables {
        let path = staging.path().join(format!("{}.table", table.name));
        store
            .download(&table_key(&id, &table.name, manifest.format), &path)
            .await
            .with_context(|| format!("backup {id}: the file of table {} is missing", table.name))?;
        if file_sha256(&path).await?.0 != table.file_sha256 {
            bail!(
                "backup {id} is damaged: the file of table {} does not match its checksum; \
                 nothing was restored",
                table.name
            );
        }
        files.insert(table.name.clone(), path);
    }

    let mut tx = db.begin().await?;
    let target_tables = tables(&mut tx, postgres).await?;
    for table in &manifest.tables {
        if !target_tables.contains(&table.name) {
            bail!("the target database has no table {}", table.name);
        }
        let columns = columns(&mut tx, postgres, &table.name).await?;
        if columns != table.columns {
            bail!(
                "table {} has other columns here than in backup {id}",
                table.name
            );
        }
    }
    let order = insert_order(&mut tx, postgres, &target_tables).await?;
    let mut non_empty = Vec::new();
    for table in &order {
        let sql = format!("SELECT COUNT(*) FROM \"{table}\"");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            non_empty.push(format!("{table} ({n} rows)"));
        }
    }
    if !non_empty.is_empty() {
        if !force {
            bail!(
                "the target database is not empty ({}); restore into an empty one, or pass \
                 --force to replace its rows",
                non_empty.join(", ")
            );
        }
        for table in order.iter().rev() {
            let sql = format!("DELETE FROM \"{table}\"");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
        }
    }

    let by_name: BTreeMap<&str, &TableManifest> = manifest
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut rows = 0;
    for name in &order {
        let Some(table) = by_name.get(name.as_str()) else {
            continue;
        };
        let file = BufReader::new(tokio::fs::File::open(&files[&table.name]).await?);
        rows += if manifest.format == 1 {
            load_table(&mut tx, table, file).await?
        } else {
            load_table(&mut tx, table, BufReader::new(ZstdDecoder::new(file))).await?
        };
        let (count, checksum) =
            checksum_table(&mut tx, &table.name, &table.columns, manifest.format).await?;
        if count != table.rows || checksum != table.rows_sha256 {
            bail!(
                "table {} restored as {count} rows that do not match the backup's {} rows; \
                 nothing was restored",
                table.name,
                table.rows
            );
        }
    }
    // The queue's transport is not in the backup: jobs not finished are handed out afresh.
    sqlx::query(
        "UPDATE jobs SET state = 'pending', worker = NULL, lease_until = NULL, \
         dispatched_at = NULL WHERE state = 'running'",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE jobs SET dispatched_at = NULL WHERE state IN ('pending', 'failed')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Restored {
        id,
        tables: manifest.tables.len(),
        rows,
    })
}

/// Inserts the rows read from `file` (a table file, decompressed) into `table`, in batches.
async fn load_table(
    conn: &mut AnyConnection,
    table: &TableManifest,
    file: impl tokio::io::AsyncBufRead + Unpin,
) -> anyhow::Result<u64> {
    let mut lines = file.lines();
    lines.next_line().await?.context("an empty table file")?;
    let per_statement = (30_000 / table.columns.len().max(1)).clamp(1, 500);
    let names: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_statement);
    let mut loaded = 0;
    loop {
        let line = lines.next_line().await?;
        if let Some(line) = &line {
            let Value::Array(values) = serde_json::from_str::<Value>(line)? else {
                bail!("table {}: a row is not a JSON array", table.name);
            };
            if values.len() != table.columns.len() {
                bail!("table {}: a row has {} values", table.name, values.len());
            }
            batch.push(values);
        }
        if batch.len() == per_statement || (line.is_none() && !batch.is_empty()) {
            let mut sql = format!(
                "INSERT INTO \"{}\" ({}) VALUES ",
                table.name,
                names.join(", ")
            );
            let mut n = 0;
            for (i, _) in batch.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for j in 0..table.columns.len() {
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    n += 1;
                    sql.push_str(&format!("${n}"));
                }
                sql.push(')');
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for values in &batch {
                for (value, column) in values.iter().zip(&table.columns) {
                    query = match (column.kind, value) {
                        (ColumnKind::Int, Value::Null) => query.bind(None::<i64>),
                        (ColumnKind::Text, Value::Null) => query.bind(None::<String>),
                        (ColumnKind::Int, v) => query.bind(v.as_i64().with_context(|| {
                            format!("{}.{}: not an integer", table.name, column.name)
                        })?),
                        (ColumnKind::Text, v) => query.bind(
                            v.as_str()
                                .with_context(|| {
                                    format!("{}.{}: not text", table.name, column.name)
                                })?
                                .to_owned(),
                        ),
                    };
                }
            }
            query.execute(&mut *conn).await?;
            loaded += batch.len() as u64;
            batch.clear();
        }
        if line.is_none() {
            return Ok(loaded);
        }
    }
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

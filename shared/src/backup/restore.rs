//! Restoring a backup into an empty database of either backend, checked file by file and row
//! by row against the manifest.

use super::*;

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
pub(super) async fn load_table(
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

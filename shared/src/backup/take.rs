//! Taking a backup: each table streamed through the compressor to a staging file, then to
//! the object store, the manifest last.

use super::*;

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

//! What a backup reads of the database's shape: its tables, their columns and kinds, the order
//! that satisfies foreign keys on restore, and a row as JSON.

use super::*;

/// The schema version this build's migrations end at.
pub fn current_schema_version() -> i64 {
    db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

pub(super) fn backend_name(db: &Db) -> &'static str {
    if db::is_postgres(db) {
        "postgres"
    } else {
        "sqlite"
    }
}

/// The data tables, sorted by name.
pub(super) async fn tables(
    conn: &mut AnyConnection,
    postgres: bool,
) -> anyhow::Result<Vec<String>> {
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
pub(super) async fn columns(
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
pub(super) async fn insert_order(
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
pub(super) fn encode_row(row: &sqlx::any::AnyRow, columns: &[Column]) -> anyhow::Result<Value> {
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

pub(super) fn select_all(table: &str, columns: &[Column]) -> String {
    let list: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    format!("SELECT {} FROM \"{table}\"", list.join(", "))
}

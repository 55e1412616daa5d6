//! The `patients` table. Every query is scoped to the owning practitioner, so a handler cannot
//! forget the ownership check: another practitioner's patient is simply not found.

use sqlx::FromRow;

use super::{Db, new_id, now_ms};

/// A patient row.
#[derive(Debug, Clone, FromRow)]
pub struct Patient {
    pub id: String,
    pub practitioner_id: String,
    pub user_id: Option<String>,
    pub display_name: String,
    pub reference: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! patient_columns {
    () => {
        "id, practitioner_id, user_id, display_name, reference, created_at, updated_at"
    };
}

/// The fields a practitioner sets.
#[derive(Debug, Clone)]
pub struct PatientFields<'a> {
    pub display_name: &'a str,
    pub reference: Option<&'a str>,
    /// The linked `patient` account, if any.
    pub user_id: Option<&'a str>,
}

/// Inserts a patient; linking an account twice fails on `patients_practitioner_user_key`.
pub async fn insert(
    db: &Db,
    practitioner_id: &str,
    fields: &PatientFields<'_>,
) -> sqlx::Result<Patient> {
    let now = now_ms();
    sqlx::query_as::<_, Patient>(concat!(
        "INSERT INTO patients (id, practitioner_id, user_id, display_name, reference, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
        patient_columns!()
    ))
    .bind(new_id().to_string())
    .bind(practitioner_id)
    .bind(fields.user_id)
    .bind(fields.display_name)
    .bind(fields.reference)
    .bind(now)
    .fetch_one(db)
    .await
}

/// The practitioner's patient `id`, if it is theirs.
pub async fn find_owned(db: &Db, id: &str, practitioner_id: &str) -> sqlx::Result<Option<Patient>> {
    sqlx::query_as::<_, Patient>(concat!(
        "SELECT ",
        patient_columns!(),
        " FROM patients WHERE id = $1 AND practitioner_id = $2"
    ))
    .bind(id)
    .bind(practitioner_id)
    .fetch_optional(db)
    .await
}

/// One page of the practitioner's patients, newest first, after `cursor` (an id), optionally
/// only those whose name or reference contains `search` (case-insensitive).
pub async fn list(
    db: &Db,
    practitioner_id: &str,
    search: Option<&str>,
    cursor: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Patient>> {
    let pattern = search.map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
    sqlx::query_as::<_, Patient>(concat!(
        "SELECT ",
        patient_columns!(),
        " FROM patients WHERE practitioner_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR LOWER(display_name) LIKE $2 ESCAPE '\\' \
              OR LOWER(COALESCE(reference, '')) LIKE $2 ESCAPE '\\') \
         AND (CAST($3 AS TEXT) IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4"
    ))
    .bind(practitioner_id)
    .bind(pattern)
    .bind(cursor)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Replaces the practitioner-set fields; `None` if the patient is not theirs.
pub async fn update(
    db: &Db,
    id: &str,
    practitioner_id: &str,
    fields: &PatientFields<'_>,
) -> sqlx::Result<Option<Patient>> {
    sqlx::query_as::<_, Patient>(concat!(
        "UPDATE patients SET display_name = $3, reference = $4, user_id = $5, updated_at = $6 \
         WHERE id = $1 AND practitioner_id = $2 RETURNING ",
        patient_columns!()
    ))
    .bind(id)
    .bind(practitioner_id)
    .bind(fields.display_name)
    .bind(fields.reference)
    .bind(fields.user_id)
    .bind(now_ms())
    .fetch_optional(db)
    .await
}

/// Deletes the patient (and, by cascade, its sessions); false if it is not theirs.
pub async fn delete(db: &Db, id: &str, practitioner_id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM patients WHERE id = $1 AND practitioner_id = $2")
        .bind(id)
        .bind(practitioner_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// `%`, `_` and `\` match themselves in a LIKE pattern built from user input.
fn escape_like(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

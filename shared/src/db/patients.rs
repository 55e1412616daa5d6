//! The `patients` table. Every query is scoped to the owning practitioner, so a handler cannot
//! forget the ownership check: another practitioner's patient is simply not found.

use sqlx::{AnyConnection, FromRow};

use super::{Db, new_id, now_ms};
use crate::domain::Email;

/// A patient row.
#[derive(Debug, Clone, FromRow)]
pub struct Patient {
    pub id: String,
    pub practitioner_id: String,
    pub user_id: Option<String>,
    pub display_name: String,
    pub reference: Option<String>,
    /// The address of the open invitation, if any.
    pub invited_email: Option<String>,
    /// When the open invitation lapses.
    pub invitation_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! patient_columns {
    () => {
        "id, practitioner_id, user_id, display_name, reference, invited_email, \
         invitation_expires_at, created_at, updated_at"
    };
}

/// The fields a practitioner sets directly (the account link goes through an invitation).
#[derive(Debug, Clone)]
pub struct PatientFields<'a> {
    pub display_name: &'a str,
    pub reference: Option<&'a str>,
}

/// Inserts a patient, not linked to any account.
pub async fn insert(
    conn: &mut AnyConnection,
    practitioner_id: &str,
    fields: &PatientFields<'_>,
) -> sqlx::Result<Patient> {
    let now = now_ms();
    sqlx::query_as::<_, Patient>(concat!(
        "INSERT INTO patients (id, practitioner_id, display_name, reference, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
        patient_columns!()
    ))
    .bind(new_id().to_string())
    .bind(practitioner_id)
    .bind(fields.display_name)
    .bind(fields.reference)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Any patient by id, whoever owns it (for jobs, which act on ids they were given).
pub async fn find(db: &Db, id: &str) -> sqlx::Result<Option<Patient>> {
    sqlx::query_as::<_, Patient>(concat!(
        "SELECT ",
        patient_columns!(),
        " FROM patients WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Opens an invitation of `email` to the record (replacing an open one, and unlinking the
/// account linked so far): the record is "invited" until the invitee accepts.
pub async fn invite(
    conn: &mut AnyConnection,
    id: &str,
    email: &Email,
    expires_at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE patients SET user_id = NULL, invited_email = $2, invitation_token_hash = NULL, \
         invitation_expires_at = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(email.as_str())
    .bind(expires_at)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Unlinks the account and drops any open invitation.
pub async fn unlink(conn: &mut AnyConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE patients SET user_id = NULL, invited_email = NULL, invitation_token_hash = NULL, \
         invitation_expires_at = NULL, updated_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores the hash of the token the invitation mail carries, if the invitation to `email` is
/// still open (a newer one, or an acceptance, makes an older mail's link worthless).
pub async fn set_invitation_token(
    db: &Db,
    id: &str,
    email: &str,
    token_hash: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE patients SET invitation_token_hash = $3 WHERE id = $1 AND invited_email = $2",
    )
    .bind(id)
    .bind(email)
    .bind(token_hash)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The record whose open, unexpired invitation carries this token.
pub async fn find_by_invitation(db: &Db, token_hash: &str) -> sqlx::Result<Option<Patient>> {
    sqlx::query_as::<_, Patient>(concat!(
        "SELECT ",
        patient_columns!(),
        " FROM patients WHERE invitation_token_hash = $1 AND invited_email IS NOT NULL \
          AND invitation_expires_at > $2"
    ))
    .bind(token_hash)
    .bind(now_ms())
    .fetch_optional(db)
    .await
}

/// Links the account that accepted the invitation carrying `token_hash` and closes it; false
/// if it was no longer open (accepted twice, or replaced meanwhile). Linking an account a
/// practitioner already has on another record fails on `patients_practitioner_user_key`.
pub async fn accept_invitation(
    conn: &mut AnyConnection,
    id: &str,
    token_hash: &str,
    user_id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE patients SET user_id = $3, invited_email = NULL, invitation_token_hash = NULL, \
         invitation_expires_at = NULL, updated_at = $4 \
         WHERE id = $1 AND invitation_token_hash = $2",
    )
    .bind(id)
    .bind(token_hash)
    .bind(user_id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
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

/// As [`find_owned`], inside a transaction (to read back what it changed).
pub async fn find_owned_in(
    conn: &mut AnyConnection,
    id: &str,
    practitioner_id: &str,
) -> sqlx::Result<Option<Patient>> {
    sqlx::query_as::<_, Patient>(concat!(
        "SELECT ",
        patient_columns!(),
        " FROM patients WHERE id = $1 AND practitioner_id = $2"
    ))
    .bind(id)
    .bind(practitioner_id)
    .fetch_optional(conn)
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
    conn: &mut AnyConnection,
    id: &str,
    practitioner_id: &str,
    fields: &PatientFields<'_>,
) -> sqlx::Result<Option<Patient>> {
    sqlx::query_as::<_, Patient>(concat!(
        "UPDATE patients SET display_name = $3, reference = $4, updated_at = $5 \
         WHERE id = $1 AND practitioner_id = $2 RETURNING ",
        patient_columns!()
    ))
    .bind(id)
    .bind(practitioner_id)
    .bind(fields.display_name)
    .bind(fields.reference)
    .bind(now_ms())
    .fetch_optional(conn)
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
pub(crate) fn escape_like(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

//! `/patients`: a practitioner's patients. Every operation is scoped to the caller, and
//! another practitioner's patient answers 404 (never 403), so ids do not leak.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};
use tend_shared::{
    db::{
        self,
        patients::{Patient, PatientFields},
        users::User,
    },
    domain::{Email, FieldError, Role, parse_display_name},
};

use super::ApiTags;
use crate::{
    error::{ApiError, ApiResult},
    guards::Practitioner,
    pagination::PageRequest,
    state::AppState,
    views::ms_to_datetime,
};

/// A patient as their practitioner sees them.
#[derive(Debug, Object)]
pub struct PatientView {
    /// The patient id.
    pub id: String,
    /// The name the practitioner uses.
    pub display_name: String,
    /// The practitioner's own reference (file number, initials).
    pub reference: Option<String>,
    /// The linked `patient` account, which reads the patient summaries of this patient's
    /// sessions.
    pub linked_user_id: Option<String>,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Patient> for PatientView {
    fn from(p: Patient) -> Self {
        Self {
            id: p.id,
            display_name: p.display_name,
            reference: p.reference,
            linked_user_id: p.user_id,
            created_at: ms_to_datetime(p.created_at),
            updated_at: ms_to_datetime(p.updated_at),
        }
    }
}

/// A new patient.
#[derive(Debug, Object)]
pub struct CreatePatientRequest {
    /// The name the practitioner uses (1 to 100 characters).
    pub display_name: String,
    /// An optional reference of the practitioner's own (at most 100 characters).
    pub reference: Option<String>,
    /// The address of an existing `patient` account to link, so that person can read the
    /// patient summaries of their sessions.
    pub account_email: Option<String>,
}

/// Changes to a patient; absent fields stay as they are, `null` clears.
#[derive(Debug, Object)]
pub struct UpdatePatientRequest {
    /// A new name.
    pub display_name: Option<String>,
    /// A new reference, or `null` to clear it.
    pub reference: MaybeUndefined<String>,
    /// Link another `patient` account, or `null` to unlink.
    pub account_email: MaybeUndefined<String>,
}

/// One page of patients.
#[derive(Debug, Object)]
pub struct PatientPage {
    /// The patients, newest first.
    pub items: Vec<PatientView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum PatientResponse {
    /// The patient.
    #[oai(status = 200)]
    Ok(Json<PatientView>),
}

#[derive(ApiResponse)]
enum PatientCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<PatientView>),
}

#[derive(ApiResponse)]
enum PatientList {
    /// A page of patients.
    #[oai(status = 200)]
    Ok(Json<PatientPage>),
}

#[derive(ApiResponse)]
enum PatientDeleted {
    /// The patient, their sessions and the sessions' stored audio are gone.
    #[oai(status = 204)]
    Done,
}

/// The `/patients` operations.
pub struct PatientsApi;

#[OpenApi(prefix_path = "/api/v1/patients", tag = "ApiTags::Patients")]
impl PatientsApi {
    /// Create a patient (practitioners only).
    #[oai(path = "/", method = "post", operation_id = "createPatient")]
    async fn create(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        body: Json<CreatePatientRequest>,
    ) -> ApiResult<PatientCreated> {
        let mut errors = Vec::new();
        let name = field(
            &mut errors,
            "display_name",
            parse_display_name(&body.display_name),
        );
        let reference = field(
            &mut errors,
            "reference",
            parse_reference(body.reference.as_deref()),
        );
        let account = match &body.account_email {
            Some(email) => field(
                &mut errors,
                "account_email",
                resolve_account(&state, email).await?,
            ),
            None => Some(None),
        };
        let (name, reference, account) = checked(errors, name, reference, account)?;
        let fields = PatientFields {
            display_name: &name,
            reference: reference.as_deref(),
            user_id: account.as_deref(),
        };
        let patient = db::patients::insert(&state.db, &user.id, &fields)
            .await
            .map_err(link_conflict)?;
        Ok(PatientCreated::Created(Json(patient.into())))
    }

    /// The caller's patients, newest first; `q` searches names and references.
    #[oai(path = "/", method = "get", operation_id = "listPatients")]
    async fn list(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        /// Case-insensitive text to find in the name or reference.
        q: Query<Option<String>>,
        /// Page size, 1 to 100 (default 20).
        limit: Query<Option<i64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<PatientList> {
        let page = PageRequest::parse(limit.0, cursor.0)?;
        let search = q.0.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let rows = db::patients::list(
            &state.db,
            &user.id,
            search,
            page.cursor.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |p| p.id.clone());
        Ok(PatientList::Ok(Json(PatientPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        })))
    }

    /// One of the caller's patients.
    #[oai(path = "/:id", method = "get", operation_id = "getPatient")]
    async fn get(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        id: Path<String>,
    ) -> ApiResult<PatientResponse> {
        let patient = owned(&state, &id.0, &user).await?;
        Ok(PatientResponse::Ok(Json(patient.into())))
    }

    /// Change a patient's name, reference or linked account.
    #[oai(path = "/:id", method = "patch", operation_id = "updatePatient")]
    async fn update(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        id: Path<String>,
        body: Json<UpdatePatientRequest>,
    ) -> ApiResult<PatientResponse> {
        let current = owned(&state, &id.0, &user).await?;
        let mut errors = Vec::new();
        let name = match &body.display_name {
            Some(raw) => field(&mut errors, "display_name", parse_display_name(raw)),
            None => Some(current.display_name.clone()),
        };
        let reference = match &body.reference {
            MaybeUndefined::Undefined => Some(current.reference.clone()),
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(raw) => {
                field(&mut errors, "reference", parse_reference(Some(raw)))
            }
        };
        let account = match &body.account_email {
            MaybeUndefined::Undefined => Some(current.user_id.clone()),
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(email) => field(
                &mut errors,
                "account_email",
                resolve_account(&state, email).await?,
            ),
        };
        let (name, reference, account) = checked(errors, name, reference, account)?;
        let fields = PatientFields {
            display_name: &name,
            reference: reference.as_deref(),
            user_id: account.as_deref(),
        };
        let patient = db::patients::update(&state.db, &current.id, &user.id, &fields)
            .await
            .map_err(link_conflict)?
            .ok_or_else(|| ApiError::not_found("patient"))?;
        Ok(PatientResponse::Ok(Json(patient.into())))
    }

    /// Delete a patient with all their sessions, notes and stored audio.
    #[oai(path = "/:id", method = "delete", operation_id = "deletePatient")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        id: Path<String>,
    ) -> ApiResult<PatientDeleted> {
        let patient = owned(&state, &id.0, &user).await?;
        let keys = db::sessions::object_keys_of_patient(&state.db, &patient.id).await?;
        state.delete_objects(&keys).await?;
        db::patients::delete(&state.db, &patient.id, &user.id).await?;
        tracing::info!(patient_id = %patient.id, objects = keys.len(), "patient deleted");
        Ok(PatientDeleted::Done)
    }
}

/// The caller's patient `id`, or 404.
pub(crate) async fn owned(state: &AppState, id: &str, user: &User) -> ApiResult<Patient> {
    db::patients::find_owned(&state.db, id, &user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("patient"))
}

fn field<T>(errors: &mut Vec<FieldError>, name: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|message| errors.push(FieldError::new(name, message)))
        .ok()
}

/// The three checked fields, or a 422 naming every bad one.
fn checked(
    errors: Vec<FieldError>,
    name: Option<String>,
    reference: Option<Option<String>>,
    account: Option<Option<String>>,
) -> ApiResult<(String, Option<String>, Option<String>)> {
    match (name, reference, account) {
        (Some(name), Some(reference), Some(account)) => Ok((name, reference, account)),
        _ => Err(ApiError::validation(errors)),
    }
}

fn parse_reference(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) if value.chars().count() > 100 => Err("must be at most 100 characters".into()),
        Some(value) => Ok(Some(value.to_owned())),
    }
}

/// The id of the `patient` account with this address (a field error if there is none).
async fn resolve_account(state: &AppState, raw: &str) -> ApiResult<Result<Option<String>, String>> {
    let email = match Email::parse(raw) {
        Ok(email) => email,
        Err(message) => return Ok(Err(message)),
    };
    Ok(match db::users::find_by_email(&state.db, &email).await? {
        Some(user) if user.role() == Role::Patient => Ok(Some(user.id)),
        _ => Err("no patient account has this address".into()),
    })
}

fn link_conflict(err: sqlx::Error) -> ApiError {
    if db::is_unique_violation(
        &err,
        "patients_practitioner_user_key",
        "patients.practitioner_id",
    ) {
        return ApiError::conflict(
            "account-already-linked",
            "This account is already linked to another of your patients.",
        );
    }
    err.into()
}

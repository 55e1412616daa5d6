//! `/patients`: a practitioner's patients. Every operation is scoped to the caller, and
//! another practitioner's patient answers 404 (never 403), so ids do not leak.
//!
//! A patient account is linked to a record only with its owner's consent: `account_email`
//! opens an invitation (a mail with a single-use link, accepted at
//! `POST /invitations/accept` from the patient's own account). The answer is the same whether
//! or not the address has an account, and only verified practitioners may invite.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};
use tend_shared::jobs::kinds::invitation::{INVITATION_TTL, SendInvitation};
use tend_shared::{
    db::{
        self,
        patients::{Patient, PatientFields},
        users::User,
    },
    domain::{Email, FieldError, check_printable, parse_display_name},
    jobs::JobTx,
};

use super::ApiTags;
use crate::{
    body::{BodyRules, JsonBody},
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::{DisplayName, EmailAddress, Label, PageCursor, SearchText},
    guards::Practitioner,
    limits::{self, Budget},
    pagination::PageRequest,
    state::AppState,
};
pub use tend_views::patients::{LinkStatus, PatientView};

/// A new patient.
#[derive(Debug, Object)]
pub struct CreatePatientRequest {
    /// The name the practitioner uses (1 to 100 characters, no control characters).
    pub display_name: DisplayName,
    /// An optional reference of the practitioner's own (at most 100 characters).
    pub reference: Option<Label>,
    /// Invite this address to link its `patient` account, so that person can read the
    /// patient summaries of their sessions once they accept. The answer is the same whether
    /// or not the address has an account. Needs a verified practitioner email.
    pub account_email: Option<EmailAddress>,
}

impl BodyRules for CreatePatientRequest {}

/// Changes to a patient; absent fields stay as they are, `null` clears.
#[derive(Debug, Object)]
pub struct UpdatePatientRequest {
    /// A new name (1 to 100 characters, no control characters).
    pub display_name: Option<DisplayName>,
    /// A new reference (at most 100 characters), or `null` to clear it.
    pub reference: MaybeUndefined<Label>,
    /// Invite another address (the current link, if any, ends), or `null` to unlink and
    /// withdraw any open invitation.
    pub account_email: MaybeUndefined<EmailAddress>,
}

impl BodyRules for UpdatePatientRequest {}

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
        meta: RequestMeta,
        body: JsonBody<CreatePatientRequest>,
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
        let invite = match &body.account_email {
            Some(raw) => field(&mut errors, "account_email", Email::parse(raw)).map(Some),
            None => Some(None),
        };
        let (Some(name), Some(reference), Some(invite), true) =
            (name, reference, invite, errors.is_empty())
        else {
            return Err(ApiError::validation(errors));
        };
        if invite.is_some() {
            may_invite(&user)?;
        }
        let fields = PatientFields {
            display_name: &name,
            reference: reference.as_deref(),
        };
        let mut tx = state.begin().await?;
        let mut patient = db::patients::insert(&mut tx, &user.id, &fields).await?;
        if let Some(email) = &invite {
            open_invitation(&state, &mut tx, &patient.id, email, &meta, &user).await?;
            patient = db::patients::find_owned_in(&mut tx, &patient.id, &user.id)
                .await?
                .ok_or_else(|| ApiError::not_found("patient"))?;
        }
        tx.commit().await?;
        Ok(PatientCreated::Created(Json(patient.into())))
    }

    /// The caller's patients, newest first; `q` searches names and references.
    #[oai(path = "/", method = "get", operation_id = "listPatients")]
    async fn list(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        /// Case-insensitive text to find in the name or reference.
        q: Query<Option<SearchText>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<PageCursor>>,
    ) -> ApiResult<PatientList> {
        let page = PageRequest::parse(limit.0, cursor.0.map(|c| c.0))?;
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

    /// Change a patient's name or reference, invite an account, or unlink it.
    #[oai(path = "/:id", method = "patch", operation_id = "updatePatient")]
    async fn update(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        meta: RequestMeta,
        id: Path<String>,
        body: JsonBody<UpdatePatientRequest>,
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
            MaybeUndefined::Value(raw) => field(
                &mut errors,
                "reference",
                parse_reference(Some(raw.0.as_str())),
            ),
        };
        let link = match &body.account_email {
            MaybeUndefined::Undefined => Some(LinkChange::Keep),
            MaybeUndefined::Null => Some(LinkChange::Unlink),
            MaybeUndefined::Value(raw) => {
                field(&mut errors, "account_email", Email::parse(raw)).map(LinkChange::Invite)
            }
        };
        let (Some(name), Some(reference), Some(link), true) =
            (name, reference, link, errors.is_empty())
        else {
            return Err(ApiError::validation(errors));
        };
        if let LinkChange::Invite(_) = link {
            may_invite(&user)?;
        }
        let fields = PatientFields {
            display_name: &name,
            reference: reference.as_deref(),
        };
        let mut tx = state.begin().await?;
        match &link {
            LinkChange::Keep => {}
            LinkChange::Unlink => db::patients::unlink(&mut tx, &current.id).await?,
            LinkChange::Invite(email) => {
                open_invitation(&state, &mut tx, &current.id, email, &meta, &user).await?
            }
        }
        let patient = db::patients::update(&mut tx, &current.id, &user.id, &fields)
            .await?
            .ok_or_else(|| ApiError::not_found("patient"))?;
        tx.commit().await?;
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
        let mut keys = db::sessions::object_keys_of_patient(&state.db, &patient.id).await?;
        keys.extend(
            db::exports::objects_of(&state.db, db::exports::ExportOwner::Patient, &patient.id)
                .await?,
        );
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

/// What a PATCH does to the account link.
enum LinkChange {
    /// Leaves link and invitation as they are.
    Keep,
    /// Unlinks the account and withdraws any open invitation.
    Unlink,
    /// Invites this address (ending the current link).
    Invite(Email),
}

/// Only practitioners who proved their address may send mail to others in Tend's name.
fn may_invite(user: &User) -> ApiResult<()> {
    if user.email_verified_at.is_none() {
        return Err(ApiError::forbidden(
            "Verify your email address before inviting patients.",
        ));
    }
    Ok(())
}

/// Opens an invitation on the record and starts the job that mails it: one of the account's
/// `INVITATIONS_PER_HOUR`, and one of the address's `INVITATION_MAILS_PER_RECIPIENT_PER_DAY`.
async fn open_invitation(
    state: &AppState,
    tx: &mut JobTx,
    patient_id: &str,
    email: &Email,
    meta: &RequestMeta,
    user: &User,
) -> ApiResult<()> {
    limits::spend(state, Budget::Invitations, &user.id).await?;
    limits::spend_recipient_mail(state, email).await?;
    let expires_at = db::now_ms() + INVITATION_TTL.as_millis() as i64;
    db::patients::invite(tx, patient_id, email, expires_at).await?;
    let patient_id = uuid::Uuid::parse_str(patient_id)
        .map_err(|e| ApiError::internal(format!("stored patient id is not a UUID: {e}")))?;
    tx.enqueue(
        &SendInvitation { patient_id },
        &meta.job_origin(Some(&user.id)),
    )
    .await?;
    Ok(())
}

fn parse_reference(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) if value.chars().count() > 100 => Err("must be at most 100 characters".into()),
        Some(value) => check_printable(value).map(|()| Some(value.to_owned())),
    }
}

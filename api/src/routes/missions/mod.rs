//! `/missions`: training missions. A coach (practitioner) drafts one for a client record, or
//! the client's own linked account for itself: the questionnaire is checked (a 422 names
//! every bad field), then the `draft_mission` job asks the chat model for a plan that keeps
//! it. A ready draft is confirmed (optionally edited, under the same rules) into a mission the
//! coach can change or delete and the client's account can read. Anyone else gets 404.

mod bodies;

pub use bodies::*;

use chrono::{NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
    types::ToJSON,
};
use serde_json::Value;
use tend_shared::jobs::{JobOrigin, kinds::draft_mission::DraftMission};
use tend_shared::{
    db::{
        self,
        missions::{DraftRow, MissionRow, NewDraft},
        patients::Patient,
        users::User,
    },
    domain::{FieldError, Role},
    missions::{Plan, Questionnaire},
};

use super::{
    ApiTags,
    cancel::{Work, cancel_own},
};
use crate::{
    body::{BodyRules, JsonBody},
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::{IdempotencyKey, PageCursor, RecordId},
    guards::{Practitioner, SignedIn},
    idempotency::{self, Created, KeyedRequest},
    limits::{self, Budget},
    pagination::PageRequest,
    state::AppState,
    views::ms_to_datetime,
};
pub use tend_views::missions::*;

/// The `/missions` operations.
pub struct MissionsApi;

#[OpenApi(prefix_path = "/api/v1/missions", tag = "ApiTags::Missions")]
impl MissionsApi {
    /// Draft a training mission from the questionnaire.
    ///
    /// Answers `202` with the draft; the `draft_mission` job asks the chat model for a plan
    /// and the requester is mailed when it is ready or has failed. A practitioner drafts for
    /// their own client records, a patient account for the record linked to it. Every broken
    /// rule of the questionnaire is named in one 422.
    #[oai(path = "/drafts", method = "post", operation_id = "createMissionDraft")]
    async fn create_draft(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        meta: RequestMeta,
        /// Makes a retried request safe: the same key answers the first draft.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<IdempotencyKey>>,
        body: JsonBody<NewDraftRequest>,
    ) -> ApiResult<DraftAccepted> {
        let keyed = KeyedRequest::new(idempotency_key.0.map(|k| k.0), || {
            body.0.to_json().unwrap_or_default()
        });
        if let Some(row) =
            idempotency::replayed::<DraftRow>(&state, &user.id, keyed.as_ref()).await?
        {
            let location = draft_location(&row.id);
            return Ok(DraftAccepted::Replayed(Json(draft_view(row)?), location));
        }
        let patient = client_record(&state, &user, &body.patient_id).await?;
        limits::spend(&state, Budget::MissionDrafts, &user.id).await?;
        // Its rules were checked with its schema (`BodyRules for NewDraftRequest`).
        let questionnaire = questionnaire(&body.questionnaire)?;
        let id = db::new_id();
        let id_text = id.to_string();
        let stored = serde_json::to_string(&questionnaire).map_err(ApiError::internal)?;
        let mut tx = state.begin().await?;
        // The practice's work, whoever asked: its budget pays, its turn it takes.
        let origin = JobOrigin {
            tenant: Some(patient.practitioner_id.clone()),
            ..meta.job_origin(Some(&user.id))
        };
        let job = tx.enqueue(&DraftMission { draft_id: id }, &origin).await?;
        let new = NewDraft {
            id: &id_text,
            practitioner_id: &patient.practitioner_id,
            patient_id: &patient.id,
            requested_by: &user.id,
            questionnaire: &stored,
            job_id: &job.id,
            idempotency_key: keyed.as_ref().map(|k| k.key.as_str()),
            idempotency_fingerprint: keyed.as_ref().map(|k| k.fingerprint.as_str()),
        };
        let inserted = db::missions::insert_draft(&mut tx, &new).await;
        let created = idempotency::commit_created::<DraftRow>(
            &state,
            tx,
            inserted,
            &user.id,
            keyed.as_ref(),
            &id_text,
        )
        .await?;
        Ok(match created {
            Created::New(row) => {
                DraftAccepted::Accepted(Json(draft_view(row)?), draft_location(&id_text))
            }
            Created::Replayed(row) => {
                let location = draft_location(&row.id);
                DraftAccepted::Replayed(Json(draft_view(row)?), location)
            }
        })
    }

    /// A draft: its status and, when ready, the plan with the model, tokens and cost.
    #[oai(path = "/drafts/:id", method = "get", operation_id = "getMissionDraft")]
    async fn get_draft(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        id: Path<String>,
    ) -> ApiResult<DraftResponse> {
        let row = readable_draft(&state, &user, &id.0).await?;
        Ok(DraftResponse::Ok(Json(draft_view(row)?)))
    }

    /// Stop a draft being written (or waiting for the practice's budget): it reads
    /// `cancelled`. 409 `not-cancellable` once it is ready, failed or cancelled.
    #[oai(
        path = "/drafts/:id/cancel",
        method = "post",
        operation_id = "cancelMissionDraft"
    )]
    async fn cancel_draft(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<DraftResponse> {
        let row = readable_draft(&state, &user, &id.0).await?;
        cancel_own(&state, &user.id, &meta, Work::Draft, &row.id).await?;
        let row = readable_draft(&state, &user, &row.id).await?;
        Ok(DraftResponse::Ok(Json(draft_view(row)?)))
    }

    /// Confirm a ready draft, optionally edited, into a mission.
    ///
    /// An edited plan keeps the questionnaire's rules (a 422 names each broken one, e.g.
    /// `plan.weeks[2].sessions[0].day`); a draft not ready, or confirmed already (once only:
    /// the answer names its mission), is a 409.
    #[oai(path = "/", method = "post", operation_id = "confirmMission")]
    async fn confirm(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        body: JsonBody<ConfirmRequest>,
    ) -> ApiResult<MissionCreated> {
        let draft = readable_draft(&state, &user, &body.draft_id).await?;
        let Some(drafted) = &draft.plan else {
            return Err(ApiError::conflict(
                "not-ready",
                format!(
                    "The draft is {}; only a ready draft can be confirmed.",
                    draft.status
                ),
            ));
        };
        let q: Questionnaire =
            serde_json::from_str(&draft.questionnaire).map_err(ApiError::internal)?;
        let planned_on = ms_to_datetime(draft.created_at).date_naive();
        let plan = match &body.plan {
            Some(edited) => checked_plan(edited, &q, planned_on)?,
            None => serde_json::from_str(drafted).map_err(ApiError::internal)?,
        };
        let now = db::now_ms();
        let row = MissionRow {
            id: db::new_id().to_string(),
            practitioner_id: draft.practitioner_id.clone(),
            patient_id: draft.patient_id.clone(),
            draft_id: Some(draft.id.clone()),
            created_by: Some(user.id.clone()),
            questionnaire: draft.questionnaire.clone(),
            plan: serde_json::to_string(&plan).map_err(ApiError::internal)?,
            planned_on: planned_on.to_string(),
            created_at: now,
            updated_at: now,
        };
        if !db::missions::insert_mission(&state.db, &row).await? {
            let mission = db::missions::mission_of_draft(&state.db, &draft.id)
                .await?
                .unwrap_or_default();
            return Err(ApiError::conflict(
                "already-confirmed",
                format!("The draft was confirmed already, as mission {mission}."),
            ));
        }
        let location = format!("/api/v1/missions/{}", row.id);
        Ok(MissionCreated::Created(Json(mission_view(row)?), location))
    }

    /// The missions you can read: a coach's for their clients, a client's own.
    #[oai(path = "/", method = "get", operation_id = "listMissions")]
    async fn list(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        /// Only this client record's missions.
        patient_id: Query<Option<RecordId>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<PageCursor>>,
    ) -> ApiResult<MissionList> {
        let page = PageRequest::parse(limit.0, cursor.0.map(|c| c.0))?;
        let rows = db::missions::list_missions(
            &state.db,
            &user.id,
            patient_id.0.as_deref(),
            page.cursor.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |r| r.id.clone());
        let items = rows
            .into_iter()
            .map(mission_view)
            .collect::<ApiResult<_>>()?;
        Ok(MissionList::Ok(Json(MissionPage { items, next_cursor })))
    }

    /// One mission.
    #[oai(path = "/:id", method = "get", operation_id = "getMission")]
    async fn get(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        id: Path<String>,
    ) -> ApiResult<MissionResponse> {
        let row = readable_mission(&state, &user, &id.0).await?;
        Ok(MissionResponse::Ok(Json(mission_view(row)?)))
    }

    /// Replace a mission's plan (the coach's); the questionnaire's rules apply.
    #[oai(path = "/:id", method = "patch", operation_id = "updateMission")]
    async fn update(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        id: Path<String>,
        body: JsonBody<MissionUpdate>,
    ) -> ApiResult<MissionResponse> {
        let row = coached_mission(&state, &user, &id.0).await?;
        let q: Questionnaire =
            serde_json::from_str(&row.questionnaire).map_err(ApiError::internal)?;
        let planned_on =
            NaiveDate::parse_from_str(&row.planned_on, "%Y-%m-%d").map_err(ApiError::internal)?;
        let plan = checked_plan(&body.plan, &q, planned_on)?;
        let plan = serde_json::to_string(&plan).map_err(ApiError::internal)?;
        db::missions::update_plan(&state.db, &row.id, &plan).await?;
        let row = coached_mission(&state, &user, &row.id).await?;
        Ok(MissionResponse::Ok(Json(mission_view(row)?)))
    }

    /// Delete a mission (the coach's).
    #[oai(path = "/:id", method = "delete", operation_id = "deleteMission")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        id: Path<String>,
    ) -> ApiResult<MissionDeleted> {
        let row = coached_mission(&state, &user, &id.0).await?;
        db::missions::delete_mission(&state.db, &row.id).await?;
        Ok(MissionDeleted::Done)
    }
}

fn draft_location(id: &str) -> String {
    format!("/api/v1/missions/drafts/{id}")
}

/// The client record `user` may draft for: a practitioner's own, or a patient account's
/// linked one; 404 otherwise.
async fn client_record(state: &AppState, user: &User, patient_id: &str) -> ApiResult<Patient> {
    let patient = db::patients::find(&state.db, patient_id).await?;
    let allowed = |p: &Patient| match user.role() {
        Role::Practitioner => p.practitioner_id == user.id,
        Role::Patient => p.user_id.as_deref() == Some(user.id.as_str()),
        Role::Admin => false,
    };
    patient
        .filter(allowed)
        .ok_or_else(|| ApiError::not_found("patient"))
}

async fn readable_draft(state: &AppState, user: &User, id: &str) -> ApiResult<DraftRow> {
    db::missions::find_draft_for(&state.db, &user.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("draft"))
}

async fn readable_mission(state: &AppState, user: &User, id: &str) -> ApiResult<MissionRow> {
    db::missions::find_mission_for(&state.db, &user.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("mission"))
}

/// A mission of the coach's own clients.
async fn coached_mission(state: &AppState, user: &User, id: &str) -> ApiResult<MissionRow> {
    let row = readable_mission(state, user, id).await?;
    if row.practitioner_id != user.id {
        return Err(ApiError::not_found("mission"));
    }
    Ok(row)
}

/// The questionnaire in its domain form (the body's schema was checked already).
fn questionnaire(body: &QuestionnaireBody) -> ApiResult<Questionnaire> {
    if parse_date(&body.event_date).is_none() {
        return Err(ApiError::invalid_field("event_date", DATE_MESSAGE));
    }
    serde_json::from_value(strip_nulls(body.to_json().unwrap_or(Value::Null)))
        .map_err(|e| ApiError::invalid_field("body", e.to_string()))
}

/// An edited plan in its domain form, checked against the questionnaire; errors are named
/// under `plan.`.
fn checked_plan(body: &PlanBody, q: &Questionnaire, planned_on: NaiveDate) -> ApiResult<Plan> {
    let bad_dates: Vec<FieldError> = body
        .weeks
        .iter()
        .enumerate()
        .filter(|(_, week)| parse_date(&week.week_start).is_none())
        .map(|(i, _)| FieldError::new(&format!("plan.weeks[{i}].week_start"), DATE_MESSAGE))
        .collect();
    if !bad_dates.is_empty() {
        return Err(ApiError::validation(bad_dates));
    }
    let plan: Plan = serde_json::from_value(body.to_json().unwrap_or(Value::Null))
        .map_err(|e| ApiError::invalid_field("plan", e.to_string()))?;
    let errors: Vec<FieldError> = plan
        .check(q, planned_on)
        .into_iter()
        .map(|e| FieldError::new(&format!("plan.{}", e.field), e.message))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(plan)
}

const DATE_MESSAGE: &str = "must be a calendar date, YYYY-MM-DD";

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Absent optional fields take the domain's defaults, not `null`.
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

fn draft_view(row: DraftRow) -> ApiResult<DraftView> {
    DraftView::from_row(row).map_err(ApiError::internal)
}

fn mission_view(row: MissionRow) -> ApiResult<MissionView> {
    MissionView::from_row(row).map_err(ApiError::internal)
}

//! `/missions`: training missions. A coach (practitioner) drafts one for a client record, or
//! the client's own linked account for itself: the questionnaire is checked (a 422 names
//! every bad field), then the `draft_mission` job asks the chat model for a plan that keeps
//! it. A ready draft is confirmed (optionally edited, under the same rules) into a mission the
//! coach can change or delete and the client's account can read. Anyone else gets 404.

use chrono::{DateTime, NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
    types::{ParseFromJSON, ToJSON},
};
use serde_json::Value;
use tend_shared::jobs::kinds::draft_mission::DraftMission;
use tend_shared::{
    db::{
        self,
        idempotency::Keyed,
        missions::{DraftRow, MissionRow, NewDraft},
        patients::Patient,
        users::User,
    },
    domain::{FieldError, Role},
    missions::{Plan, Questionnaire},
};

use super::ApiTags;
use crate::{
    body::{BodyRules, JsonBody},
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::{CalendarDate, IdempotencyKey, PageCursor, RecordId},
    guards::{Practitioner, SignedIn},
    idempotency::{self, KeyedRequest},
    limits::{self, Budget},
    pagination::PageRequest,
    state::AppState,
    views::ms_to_datetime,
};

/// The event a mission trains for.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MissionTypeView {
    /// A long unpaved race.
    GravelUltra,
    /// 100 miles on the road.
    RoadCentury,
    /// A series of criteriums.
    CritSeries,
    /// A mass-start long ride.
    GranFondo,
}

/// How the client rides.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RidingStyleView {
    /// Consistent, all-round.
    Gc,
    /// Even pacing (the default).
    Steady,
    /// Long solo efforts.
    Breakaway,
    /// Attacks and surges.
    Aggressive,
    /// A bit of everything.
    Mixed,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DayView {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// A kind of training session.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SessionKindView {
    Endurance,
    Tempo,
    SweetSpot,
    Threshold,
    Vo2max,
    Sprints,
    Recovery,
    LongRide,
    RaceSimulation,
}

/// Hours a week the client can train.
#[derive(Debug, Clone, Object)]
pub struct WeeklyHours {
    /// At least, 1 to 40.
    #[oai(validator(minimum(value = "1"), maximum(value = "40")))]
    pub min: i64,
    /// At most, 1 to 40, not below `min`.
    #[oai(validator(minimum(value = "1"), maximum(value = "40")))]
    pub max: i64,
}

/// Which reminders the client wants.
#[derive(Debug, Clone, Object)]
pub struct NotificationPreferences {
    /// A briefing each training morning.
    #[oai(default)]
    pub morning_briefing: bool,
    /// A summary each evening.
    #[oai(default)]
    pub evening_summary: bool,
    /// A review each week.
    #[oai(default)]
    pub weekly_review: bool,
}

/// The mission questionnaire.
#[derive(Debug, Clone, Object)]
pub struct QuestionnaireBody {
    /// The event, 1 to 255 characters, one line (no control, text-direction or invisible
    /// characters).
    #[oai(validator(min_length = 1, max_length = 255))]
    pub event_name: String,
    /// The event's day: in the future, within 366 days.
    pub event_date: CalendarDate,
    /// What kind of event.
    pub mission_type: MissionTypeView,
    /// Training hours a week.
    pub weekly_hours: WeeklyHours,
    /// Functional threshold power, 50 to 500 W.
    #[oai(validator(minimum(value = "50"), maximum(value = "500")))]
    pub current_ftp: i64,
    /// Days the client can train (each at most once); any day when absent.
    pub preferred_training_days: Option<Vec<DayView>>,
    /// Injuries, equipment, travel...: at most 1000 characters.
    #[oai(validator(max_length = 1000))]
    pub constraints: Option<String>,
    /// Riding style; `steady` when absent.
    pub riding_style: Option<RidingStyleView>,
    /// Reminders; none when absent.
    pub notification_preferences: Option<NotificationPreferences>,
}

/// Ask for a draft.
#[derive(Debug, Object)]
pub struct NewDraftRequest {
    /// The client record the mission is for (your own, or the one linked to your account).
    pub patient_id: RecordId,
    /// The questionnaire.
    #[oai(flatten)]
    pub questionnaire: QuestionnaireBody,
}

impl BodyRules for NewDraftRequest {
    fn rule_errors(body: &Value) -> Vec<FieldError> {
        Questionnaire::check_json(body, Utc::now().date_naive())
    }
}

/// One planned session.
#[derive(Debug, Clone, Object)]
pub struct PlannedSession {
    /// Its day in the week.
    pub day: DayView,
    /// What it trains.
    pub kind: SessionKindView,
    /// Its length, 15 to 600 minutes.
    #[oai(validator(minimum(value = "15"), maximum(value = "600")))]
    pub duration_minutes: i64,
    /// Target power, low end, in watts (at least 40 % of the FTP).
    #[oai(validator(minimum(value = "0"), maximum(value = "2000")))]
    pub target_power_low_w: i64,
    /// Target power, high end (at most 150 % of the FTP).
    #[oai(validator(minimum(value = "0"), maximum(value = "2000")))]
    pub target_power_high_w: i64,
    /// What to do: at most 1,000 characters (lines allowed; no control, text-direction or
    /// invisible characters).
    #[oai(validator(max_length = 1000))]
    pub description: String,
}

/// One week of a plan.
#[derive(Debug, Clone, Object)]
pub struct PlanWeek {
    /// Its Monday.
    pub week_start: CalendarDate,
    /// What the week builds: one line, at most 200 characters.
    #[oai(validator(max_length = 200))]
    pub focus: String,
    /// Its sessions.
    pub sessions: Vec<PlannedSession>,
}

/// A training plan: one week each from the week it was drafted to the event's.
#[derive(Debug, Clone, Object)]
pub struct PlanBody {
    /// The weeks, in order.
    pub weeks: Vec<PlanWeek>,
    /// Advice for the whole plan: at most 4,000 characters (lines allowed).
    #[oai(validator(max_length = 4000))]
    pub notes: String,
}

/// Where a draft is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DraftStatus {
    /// Waiting for a worker.
    Queued,
    /// The model is writing it.
    Generating,
    /// `draft` holds the plan.
    Ready,
    /// No plan; `error` says why.
    Failed,
}

/// A mission draft.
#[derive(Debug, Object)]
pub struct DraftView {
    /// Its id.
    pub id: String,
    /// The client record.
    pub patient_id: String,
    /// Where it is.
    pub status: DraftStatus,
    /// Why it failed (or why its last attempt did, while retried).
    pub error: Option<String>,
    /// The job drafting it (`GET /api/v1/jobs/{id}`).
    pub job_id: Option<String>,
    /// The questionnaire.
    pub questionnaire: QuestionnaireBody,
    /// The plan, when ready.
    pub draft: Option<PlanBody>,
    /// When the plan was written.
    pub generated_at: Option<DateTime<Utc>>,
    /// The chat model that wrote it.
    pub model_used: Option<String>,
    /// Prompt tokens over every call for this draft.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens over every call.
    pub completion_tokens: Option<i64>,
    /// What those calls cost, in US dollars.
    pub cost_usd: Option<f64>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
}

/// Confirm a ready draft into a mission.
#[derive(Debug, Object)]
pub struct ConfirmRequest {
    /// The draft.
    pub draft_id: RecordId,
    /// The plan as edited; the draft's own when absent. Edits keep the questionnaire's rules.
    pub plan: Option<PlanBody>,
}

/// A plan's rules depend on the questionnaire it is for, read from the database: they are
/// checked by the handler once the body has passed its schema.
impl BodyRules for ConfirmRequest {}

/// Change a mission.
#[derive(Debug, Object)]
pub struct MissionUpdate {
    /// The whole new plan (the questionnaire's rules apply).
    pub plan: PlanBody,
}

/// As [`ConfirmRequest`]'s: the plan's rules need its questionnaire.
impl BodyRules for MissionUpdate {}

/// A confirmed mission.
#[derive(Debug, Object)]
pub struct MissionView {
    /// Its id.
    pub id: String,
    /// The client record.
    pub patient_id: String,
    /// The draft it came from.
    pub draft_id: Option<String>,
    /// The questionnaire.
    pub questionnaire: QuestionnaireBody,
    /// The plan.
    pub plan: PlanBody,
    /// The day the plan's rules count from.
    pub planned_on: CalendarDate,
    /// When it was confirmed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A page of missions.
#[derive(Debug, Object)]
pub struct MissionPage {
    /// Newest first.
    pub items: Vec<MissionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum DraftAccepted {
    /// Queued; follow `status` at `GET /api/v1/missions/drafts/{id}`.
    #[oai(status = 202)]
    Accepted(Json<DraftView>, #[oai(header = "Location")] String),
    /// A request with this `Idempotency-Key` was accepted before: its draft, as it is now.
    #[oai(status = 200)]
    Replayed(Json<DraftView>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum DraftResponse {
    /// The draft.
    #[oai(status = 200)]
    Ok(Json<DraftView>),
}

#[derive(ApiResponse)]
enum MissionCreated {
    /// The mission.
    #[oai(status = 201)]
    Created(Json<MissionView>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum MissionResponse {
    /// The mission.
    #[oai(status = 200)]
    Ok(Json<MissionView>),
}

#[derive(ApiResponse)]
enum MissionList {
    /// A page of the missions you can read.
    #[oai(status = 200)]
    Ok(Json<MissionPage>),
}

#[derive(ApiResponse)]
enum MissionDeleted {
    /// Gone.
    #[oai(status = 204)]
    Done,
}

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
        if let Some(keyed) = &keyed
            && let Some(row) =
                db::missions::find_draft_by_key(&state.db, &user.id, &keyed.key).await?
        {
            idempotency::check_replay(&state, Keyed::MissionDraft, &row.id, &keyed.fingerprint)
                .await?;
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
        let job = tx
            .enqueue(
                &DraftMission { draft_id: id },
                &meta.job_origin(Some(&user.id)),
            )
            .await?;
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
        if let Err(err) = db::missions::insert_draft(&mut tx, &new).await {
            if let Some(keyed) = &keyed
                && db::is_unique_violation(
                    &err,
                    "mission_drafts_idempotency_key",
                    "mission_drafts.requested_by",
                )
            {
                drop(tx);
                let row = db::missions::find_draft_by_key(&state.db, &user.id, &keyed.key)
                    .await?
                    .ok_or_else(|| {
                        ApiError::internal("an idempotency key clashed with no draft")
                    })?;
                idempotency::check_replay(&state, Keyed::MissionDraft, &row.id, &keyed.fingerprint)
                    .await?;
                let location = draft_location(&row.id);
                return Ok(DraftAccepted::Replayed(Json(draft_view(row)?), location));
            }
            return Err(err.into());
        }
        tx.commit().await?;
        let row = db::missions::find_draft(&state.db, &id_text)
            .await?
            .ok_or_else(|| ApiError::internal("a new draft vanished"))?;
        Ok(DraftAccepted::Accepted(
            Json(draft_view(row)?),
            draft_location(&id_text),
        ))
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

fn parse<T: ParseFromJSON>(json: &str) -> ApiResult<T> {
    let value: Value = serde_json::from_str(json).map_err(ApiError::internal)?;
    T::parse_from_json(Some(value)).map_err(|e| ApiError::internal(e.into_message()))
}

fn draft_view(row: DraftRow) -> ApiResult<DraftView> {
    let status = match row.status.as_str() {
        "queued" => DraftStatus::Queued,
        "generating" => DraftStatus::Generating,
        "ready" => DraftStatus::Ready,
        _ => DraftStatus::Failed,
    };
    Ok(DraftView {
        questionnaire: parse(&row.questionnaire)?,
        draft: row.plan.as_deref().map(parse).transpose()?,
        id: row.id,
        patient_id: row.patient_id,
        status,
        error: row.error,
        job_id: row.job_id,
        generated_at: row.generated_at.map(ms_to_datetime),
        model_used: row.model_used,
        prompt_tokens: row.prompt_tokens,
        completion_tokens: row.completion_tokens,
        cost_usd: row.cost_micro_usd.map(|c| c as f64 / 1_000_000.0),
        created_at: ms_to_datetime(row.created_at),
    })
}

fn mission_view(row: MissionRow) -> ApiResult<MissionView> {
    Ok(MissionView {
        questionnaire: parse(&row.questionnaire)?,
        plan: parse(&row.plan)?,
        planned_on: CalendarDate(row.planned_on.clone()),
        id: row.id,
        patient_id: row.patient_id,
        draft_id: row.draft_id,
        created_at: ms_to_datetime(row.created_at),
        updated_at: ms_to_datetime(row.updated_at),
    })
}

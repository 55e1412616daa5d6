//! What the mission operations read and answer.

use super::*;

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

/// A page of missions.
#[derive(Debug, Object)]
pub struct MissionPage {
    /// Newest first.
    pub items: Vec<MissionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub(super) enum DraftAccepted {
    /// Queued; follow `status` at `GET /api/v1/missions/drafts/{id}`.
    #[oai(status = 202)]
    Accepted(Json<DraftView>, #[oai(header = "Location")] String),
    /// A request with this `Idempotency-Key` was accepted before: its draft, as it is now.
    #[oai(status = 200)]
    Replayed(Json<DraftView>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub(super) enum DraftResponse {
    /// The draft.
    #[oai(status = 200)]
    Ok(Json<DraftView>),
}

#[derive(ApiResponse)]
pub(super) enum MissionCreated {
    /// The mission.
    #[oai(status = 201)]
    Created(Json<MissionView>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub(super) enum MissionResponse {
    /// The mission.
    #[oai(status = 200)]
    Ok(Json<MissionView>),
}

#[derive(ApiResponse)]
pub(super) enum MissionList {
    /// A page of the missions you can read.
    #[oai(status = 200)]
    Ok(Json<MissionPage>),
}

#[derive(ApiResponse)]
pub(super) enum MissionDeleted {
    /// Gone.
    #[oai(status = 204)]
    Done,
}

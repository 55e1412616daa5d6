//! `/invitations`: a patient accepts a practitioner's invitation to link their account to the
//! practitioner's record, with the single-use token the invitation mail carries. Accepting is
//! the consent: until then the record is only "invited" and reads nothing.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use tend_shared::{
    auth::opaque,
    db::{
        self,
        audit::{self, AuditAction},
    },
    domain::Role,
};

use super::{ApiTags, auth::TokenRequest};
use crate::{
    body::JsonBody,
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    guards::SignedIn,
    state::AppState,
};

/// The link made by an accepted invitation.
#[derive(Debug, Object)]
pub struct AcceptedInvitation {
    /// The practitioner's record now linked to the caller's account.
    pub patient_id: String,
    /// The practitioner's display name, when they gave one.
    pub practitioner_name: Option<String>,
}

#[derive(ApiResponse)]
enum AcceptResponse {
    /// Linked: the caller now reads the patient summaries of this record's sessions.
    #[oai(status = 200)]
    Ok(Json<AcceptedInvitation>),
}

/// The invitation operations.
pub struct InvitationsApi;

#[OpenApi(prefix_path = "/api/v1/invitations", tag = "ApiTags::Invitations")]
impl InvitationsApi {
    /// Accept an invitation (patient accounts only, signed in with the invited address).
    ///
    /// 400 `invalid-token` when the link is unknown, used, withdrawn or expired; 403 for
    /// another role or another address; 409 when the practitioner already linked this
    /// account to another record.
    #[oai(path = "/accept", method = "post", operation_id = "acceptInvitation")]
    async fn accept(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        meta: RequestMeta,
        body: JsonBody<TokenRequest>,
    ) -> ApiResult<AcceptResponse> {
        if user.role() != Role::Patient {
            return Err(ApiError::forbidden(
                "Only patient accounts accept invitations.",
            ));
        }
        let token_hash = opaque::digest(&body.token);
        let invalid = || {
            ApiError::bad_request(
                "invalid-token",
                "The invitation link is invalid, already used, withdrawn or expired.",
            )
        };
        let patient = db::patients::find_by_invitation(&state.db, &token_hash)
            .await?
            .ok_or_else(invalid)?;
        if patient.invited_email.as_deref() != Some(user.email.as_str()) {
            return Err(ApiError::forbidden(
                "This invitation was sent to another address: sign in with that one.",
            ));
        }
        let mut tx = state.db.begin().await?;
        match db::patients::accept_invitation(&mut tx, &patient.id, &token_hash, &user.id).await {
            Ok(true) => {}
            Ok(false) => return Err(invalid()),
            Err(err)
                if db::is_unique_violation(
                    &err,
                    "patients_practitioner_user_key",
                    "patients.practitioner_id",
                ) =>
            {
                return Err(ApiError::conflict(
                    "account-already-linked",
                    "This practitioner already has your account linked to another record.",
                ));
            }
            Err(err) => return Err(err.into()),
        }
        // The token came by mail to this address: the address is proven.
        db::users::mark_verified(&mut tx, &user.id).await?;
        audit::record(
            &mut tx,
            AuditAction::InvitationAccepted,
            Some(&user.id),
            &meta.origin(),
            Some(serde_json::json!({ "patient_id": patient.id })),
        )
        .await?;
        tx.commit().await?;
        let practitioner = db::users::find(&state.db, &patient.practitioner_id).await?;
        Ok(AcceptResponse::Ok(Json(AcceptedInvitation {
            patient_id: patient.id,
            practitioner_name: practitioner.and_then(|p| p.display_name),
        })))
    }
}

//! The signed-in user's own account: read, update (name, password), delete.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query, payload::Json};
use tend_shared::{
    db::{
        self,
        audit::{self, AuditAction, AuditFilter},
    },
    domain::{FieldError, Password, parse_display_name},
};

use tend_shared::jobs::kinds::{email::EmailTemplate, erase_account::EraseAccount};

use super::{
    ApiTags,
    auth::{check_limit, send_email},
};
use crate::{
    body::{BodyRules, JsonBody},
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::PageCursor,
    fields::{DisplayName, NewPassword},
    guards::{Practitioner, SignedIn, SignedInWith},
    pagination::PageRequest,
    state::AppState,
    views::{AuditPage, UserView},
};

/// Changes to the account; absent fields stay as they are.
#[derive(Debug, Object)]
pub struct UpdateMeRequest {
    /// A new display name (1 to 100 characters, no control characters).
    pub display_name: Option<DisplayName>,
    /// A new password (12 to 128 characters, not all spaces); needs `current_password`
    /// (403 `wrong-password` without it or when it is wrong).
    pub new_password: Option<NewPassword>,
    /// The current password, required to change it.
    pub current_password: Option<String>,
}

impl BodyRules for UpdateMeRequest {}

/// Proof that the caller knows the account's password.
#[derive(Debug, Object)]
pub struct DeleteMeRequest {
    /// The account's current password.
    pub password: String,
}

impl BodyRules for DeleteMeRequest {}

#[derive(ApiResponse)]
enum MeResponse {
    /// The account.
    #[oai(status = 200)]
    Ok(Json<UserView>),
}

#[derive(ApiResponse)]
enum BudgetResponse {
    /// The practice's budget this month.
    #[oai(status = 200)]
    Ok(Json<super::practice_budget::PracticeBudgetView>),
}

#[derive(ApiResponse)]
enum AuditLogResponse {
    /// One page of the account's events.
    #[oai(status = 200)]
    Ok(Json<AuditPage>),
}

/// An erasure under way.
#[derive(Debug, Object)]
pub struct Erasing {
    /// The job that removes the account and everything it owns.
    pub job_id: String,
}

#[derive(ApiResponse)]
enum Deleted {
    /// The account is unusable from now on (every token refused); the job removes it, with a
    /// practitioner's patients, sessions, notes and stored audio, within moments.
    #[oai(status = 202)]
    Accepted(Json<Erasing>),
}

/// The `/users/me` operations.
pub struct UsersApi;

#[OpenApi(prefix_path = "/api/v1/users", tag = "ApiTags::Users")]
impl UsersApi {
    /// The signed-in account.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(&self, SignedIn(user): SignedIn) -> ApiResult<MeResponse> {
        Ok(MeResponse::Ok(Json(UserView::from(&user))))
    }

    /// The practice's monthly budget for paid processing (transcription, notes, drafts): the
    /// limit, what this month's paid calls cost, what is left, and the work held because the
    /// budget is spent (it resumes when an admin raises the budget, or next month).
    #[oai(path = "/me/budget", method = "get", operation_id = "getMyBudget")]
    async fn budget(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
    ) -> ApiResult<BudgetResponse> {
        let view = super::practice_budget::view(&state, &user.id).await?;
        Ok(BudgetResponse::Ok(Json(view)))
    }

    /// The account's own audit trail, newest first: sign-ins (refused ones too), token
    /// refreshes and sign-outs, password and profile changes, invitations, exports, downloads
    /// and data exports, each with the address and user agent it came from. What an admin
    /// reads of this account, and what its data export holds.
    #[oai(path = "/me/audit-log", method = "get", operation_id = "getMyAuditLog")]
    async fn audit_log(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<PageCursor>>,
    ) -> ApiResult<AuditLogResponse> {
        let page = PageRequest::parse(limit.0, cursor.0.map(|c| c.0))?;
        let filter = AuditFilter {
            user_id: Some(&user.id),
            ..AuditFilter::default()
        };
        let rows = db::audit::list(
            &state.db,
            &filter,
            page.cursor.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |e| e.id.clone());
        Ok(AuditLogResponse::Ok(Json(AuditPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        })))
    }

    /// Change the display name and/or the password.
    ///
    /// A password change signs out every other device (their refresh tokens are revoked;
    /// their access tokens run out within `ACCESS_TOKEN_TTL_SECS`), keeps this one signed in,
    /// and sends a notice to the account's address. Guesses of `current_password` are limited
    /// like logins (`LOGIN_RATE_LIMIT_PER_MINUTE` per account): beyond it, 429.
    #[oai(path = "/me", method = "patch", operation_id = "updateMe")]
    async fn update_me(
        &self,
        state: Data<&AppState>,
        caller: SignedInWith,
        meta: RequestMeta,
        body: JsonBody<UpdateMeRequest>,
    ) -> ApiResult<MeResponse> {
        let SignedInWith { user, sign_in } = caller;
        let mut errors = Vec::new();
        let display_name = match body.display_name.as_deref().map(parse_display_name) {
            Some(Ok(name)) => Some(name),
            Some(Err(m)) => {
                errors.push(FieldError::new("display_name", m));
                None
            }
            None => None,
        };
        let new_password = match body.new_password.as_deref().map(Password::parse) {
            Some(Ok(pw)) => Some(pw),
            Some(Err(m)) => {
                errors.push(FieldError::new("new_password", m));
                None
            }
            None => None,
        };
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        if new_password.is_some() {
            let ok = match &body.current_password {
                Some(current) => check_password(&state, &user, current).await?,
                None => false,
            };
            if !ok {
                return Err(ApiError::wrong_password(
                    "Changing the password needs the account's current password in \
                     `current_password`, and that is missing or wrong.",
                ));
            }
        }
        if let Some(name) = &display_name {
            db::users::set_display_name(&state.db, &user.id, Some(name)).await?;
        }
        if let Some(pw) = new_password {
            let hash = state.hasher.hash(pw.expose().to_owned()).await?;
            let mut tx = state.begin().await?;
            db::users::set_password(&mut tx, &user.id, &hash, false).await?;
            match &sign_in {
                Some(family) => {
                    db::tokens::revoke_others_for_user(&mut tx, &user.id, family).await?
                }
                // A token from before tokens named their sign-in: sign out everywhere.
                None => db::tokens::revoke_all_for_user(&mut tx, &user.id).await?,
            };
            audit::record(
                &mut tx,
                AuditAction::PasswordChanged,
                Some(&user.id),
                &meta.origin(),
                None,
            )
            .await?;
            send_email(&mut tx, &user, EmailTemplate::PasswordChanged, &meta).await?;
            tx.commit().await?;
        }
        let user = db::users::find(&state.db, &user.id)
            .await?
            .ok_or_else(|| ApiError::not_found("account"))?;
        Ok(MeResponse::Ok(Json(UserView::from(&user))))
    }

    /// Delete the account and every session; needs the account's password (limited like
    /// logins).
    #[oai(path = "/me", method = "delete", operation_id = "deleteMe")]
    async fn delete_me(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        meta: RequestMeta,
        body: JsonBody<DeleteMeRequest>,
    ) -> ApiResult<Deleted> {
        if !check_password(&state, &user, &body.password).await? {
            return Err(ApiError::wrong_password("The password is wrong."));
        }
        // Unusable at once; the job removes it and what it owns (thousands of stored
        // recordings must not hold this request open).
        let mut tx = state.begin().await?;
        db::users::mark_erasing(&mut tx, &user.id).await?;
        db::tokens::revoke_all_for_user(&mut tx, &user.id).await?;
        let user_id = uuid::Uuid::parse_str(&user.id).map_err(ApiError::internal)?;
        let job = tx
            .enqueue(&EraseAccount { user_id }, &meta.job_origin(Some(&user.id)))
            .await?;
        audit::record(
            &mut tx,
            AuditAction::AccountDeleted,
            Some(&user.id),
            &meta.origin(),
            None,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, job_id = %job.id, "account erasure started");
        Ok(Deleted::Accepted(Json(Erasing { job_id: job.id })))
    }
}

/// Checks the account's current password, counting the attempt against the account's limit
/// (so a stolen access token cannot be used to guess the password).
async fn check_password(
    state: &AppState,
    user: &tend_shared::db::users::User,
    password: &str,
) -> ApiResult<bool> {
    check_limit(
        state,
        &format!("password-check:account:{}", user.id),
        state.settings.login_rate_limit_per_minute,
        std::time::Duration::from_secs(60),
    )
    .await?;
    Ok(state
        .hasher
        .verify(password.to_owned(), user.password_hash.clone())
        .await?)
}

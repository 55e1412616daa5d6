//! Accounts: register, sign in and out, token refresh, email verification, password reset.
//!
//! Access tokens are short-lived JWTs; refresh tokens are opaque, stored hashed, rotated on
//! every use, and a replayed one revokes its whole family (someone copied it). Answers that
//! could tell whether an address has an account (forgot-password, resend-verification) are
//! the same either way, and so is their timing: a job does the look-up.

//!
//! Signing in and out is here; the mail-backed operations (verification, password reset) are
//! in `mail`, the request and answer bodies in `bodies`.

mod bodies;
mod mail;

pub use bodies::*;
pub use mail::AccountMailApi;

use std::time::Duration;

use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};
use tend_shared::jobs::kinds::{
    account_mail::AnswerMailRequest,
    email::{EmailTemplate, SendEmail},
};
use tend_shared::{
    auth::opaque,
    db::{
        self,
        audit::{self, AuditAction},
        mail_requests::MailPurpose,
        tokens::{EmailPurpose, Rotation},
        users::User,
    },
    domain::{Email, FieldError, Password, Role, parse_display_name},
    jobs::{self, JobTx},
    ratelimit::Decision,
};
use uuid::Uuid;

use super::ApiTags;
use crate::{
    body::{BodyRules, JsonBody},
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::{DisplayName, EmailAddress, NewPassword},
    state::AppState,
    views::UserView,
};

/// Login, reset and email-sending limits are counted per this window.
const LIMIT_WINDOW: Duration = Duration::from_secs(60);

/// Registrations are counted per this window.
const REGISTER_WINDOW: Duration = Duration::from_secs(3600);

/// The auth operations.
pub struct AuthApi;

#[OpenApi(prefix_path = "/api/v1/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Register a practitioner or patient account.
    ///
    /// Sends a verification email (a job). Answers 409 if the address is taken. Limited per
    /// client IP (`REGISTER_RATE_LIMIT_PER_HOUR`, default 3): beyond it, 429 with
    /// `Retry-After`.
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        state: Data<&AppState>,
        meta: RequestMeta,
        body: JsonBody<RegisterRequest>,
    ) -> ApiResult<RegisterResponse> {
        check_limit(
            &state,
            &format!("register:ip:{}", meta.client_key()),
            state.settings.register_rate_limit_per_hour,
            REGISTER_WINDOW,
        )
        .await?;
        let mut errors = Vec::new();
        let email = Email::parse(&body.email)
            .map_err(|m| errors.push(FieldError::new("email", m)))
            .ok();
        let password = Password::parse(&body.password)
            .map_err(|m| errors.push(FieldError::new("password", m)))
            .ok();
        let role = Role::from(body.role);
        let display_name = match body.display_name.as_deref().map(parse_display_name) {
            Some(Err(m)) => {
                errors.push(FieldError::new("display_name", m));
                None
            }
            Some(Ok(name)) => Some(name),
            None => None,
        };
        let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
            return Err(ApiError::validation(errors));
        };

        let hash = state.hasher.hash(password.expose().to_owned()).await?;
        let mut tx = state.begin().await?;
        let user =
            match db::users::insert(&mut tx, &email, &hash, role, display_name.as_deref()).await {
                Ok(user) => user,
                Err(err) if db::is_unique_violation(&err, "users_email_key", "users.email") => {
                    return Err(ApiError::conflict(
                        "email-taken",
                        "An account with this email address already exists.",
                    ));
                }
                Err(err) => return Err(err.into()),
            };
        audit::record(
            &mut tx,
            AuditAction::Register,
            Some(&user.id),
            &meta.origin(),
            Some(serde_json::json!({"role": role.as_str()})),
        )
        .await?;
        let job = send_email(&mut tx, &user, EmailTemplate::VerifyEmail, &meta).await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, "account registered");
        Ok(RegisterResponse::Created(Json(Registered {
            user: UserView::from(&user),
            verification_email_job_id: job.id,
        })))
    }

    /// Sign in with email and password.
    ///
    /// Limited per client IP and per account (`LOGIN_RATE_LIMIT_PER_MINUTE`, default 5):
    /// beyond it, 429 with `Retry-After`. An account's attempts from a network it signed in
    /// from in the last 90 days (an IPv4 address, an IPv6 /64) have a budget of their own, so
    /// strangers guessing its password cannot lock its owner out.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        meta: RequestMeta,
        body: JsonBody<LoginRequest>,
    ) -> ApiResult<SignInResponse> {
        let limit = state.settings.login_rate_limit_per_minute;
        let email = Email::parse(&body.email).ok();
        let user = match &email {
            Some(email) => db::users::find_by_email(&state.db, email).await?,
            None => None,
        };
        // Attempts from a network the account signed in from before are counted apart, so
        // strangers' guesses exhaust only the strangers' budget, never the owner's.
        let client = meta.client_key();
        let known = match &user {
            Some(user) => db::sign_ins::is_known(&state.db, &user.id, &client).await?,
            None => false,
        };
        let account_key = email.as_ref().map(|e| {
            let account = format!("login:account:{}", opaque::digest(e.as_str()));
            if known {
                format!("{account}:known:{client}")
            } else {
                account
            }
        });
        let ip_key = format!("login:ip:{client}");
        let mut verdicts = vec![state.limiter.hit(&ip_key, limit, LIMIT_WINDOW).await];
        if let Some(key) = &account_key {
            verdicts.push(state.limiter.hit(key, limit, LIMIT_WINDOW).await);
        }
        if let Some(retry_after) = verdicts.iter().find_map(|d| match d {
            Decision::Limited { retry_after } => Some(*retry_after),
            Decision::Allowed => None,
        }) {
            let mut conn = state.db.acquire().await?;
            audit::record(
                &mut conn,
                AuditAction::LoginRateLimited,
                None,
                &meta.origin(),
                None,
            )
            .await?;
            return Err(ApiError::rate_limited(retry_after));
        }

        let verified = match &user {
            Some(user) => {
                state
                    .hasher
                    .verify(body.password.clone(), user.password_hash.clone())
                    .await?
            }
            None => {
                state.hasher.verify_dummy(body.password.clone()).await?;
                false
            }
        };
        let mut tx = state.db.begin().await?;
        let (true, Some(user)) = (verified, user.as_ref()) else {
            audit::record(
                &mut tx,
                AuditAction::LoginFailed,
                user.as_ref().map(|u| u.id.as_str()),
                &meta.origin(),
                None,
            )
            .await?;
            tx.commit().await?;
            return Err(ApiError::unauthorized(
                "invalid-credentials",
                "The email address or password is wrong.",
            ));
        };
        if user.disabled_at.is_some() {
            return Err(disabled());
        }
        let pair = issue_tokens(&state, &mut tx, user, &Uuid::now_v7().to_string()).await?;
        db::sign_ins::remember(&mut tx, &user.id, &client).await?;
        audit::record(
            &mut tx,
            AuditAction::LoginSucceeded,
            Some(&user.id),
            &meta.origin(),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(SignInResponse::Ok(Json(pair)))
    }

    /// Exchange a refresh token for a new token pair.
    ///
    /// The presented token is spent. Presenting a spent token again revokes every token of
    /// its sign-in (the token was copied) and answers 401 `refresh-token-reused`.
    #[oai(path = "/refresh", method = "post", operation_id = "refreshToken")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        meta: RequestMeta,
        body: JsonBody<RefreshRequest>,
    ) -> ApiResult<SignInResponse> {
        let hash = opaque::digest(&body.refresh_token);
        let mut tx = state.db.begin().await?;
        match db::tokens::rotate_refresh(&mut tx, &hash).await? {
            Rotation::Rotated { user_id, family_id } => {
                let Some(user) = db::users::find(&state.db, &user_id).await? else {
                    return Err(ApiError::unauthorized(
                        "invalid-token",
                        "The account no longer exists.",
                    ));
                };
                if user.disabled_at.is_some() {
                    return Err(disabled());
                }
                let pair = issue_tokens(&state, &mut tx, &user, &family_id).await?;
                tx.commit().await?;
                Ok(SignInResponse::Ok(Json(pair)))
            }
            Rotation::Reused { user_id, family_id } => {
                audit::record(
                    &mut tx,
                    AuditAction::RefreshTokenReused,
                    Some(&user_id),
                    &meta.origin(),
                    Some(serde_json::json!({ "family_id": family_id })),
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(%user_id, "refresh token reused; its family is revoked");
                Err(ApiError::unauthorized(
                    "refresh-token-reused",
                    "This refresh token was already used. Every token issued from the same sign-in is now revoked; sign in again.",
                ))
            }
            Rotation::Invalid => Err(ApiError::unauthorized(
                "invalid-token",
                "The refresh token is unknown, expired or revoked.",
            )),
        }
    }

    /// Sign out: revokes the refresh token and every token rotated from the same sign-in.
    ///
    /// Access tokens already issued stay valid until they expire (at most 15 minutes).
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        meta: RequestMeta,
        body: JsonBody<RefreshRequest>,
    ) -> ApiResult<NoContent> {
        let hash = opaque::digest(&body.refresh_token);
        if let Some((user_id, family_id)) = db::tokens::family_of(&state.db, &hash).await? {
            let mut tx = state.db.begin().await?;
            db::tokens::revoke_family(&mut tx, &family_id).await?;
            audit::record(
                &mut tx,
                AuditAction::Logout,
                Some(&user_id),
                &meta.origin(),
                None,
            )
            .await?;
            tx.commit().await?;
        }
        Ok(NoContent::Done)
    }
}

/// Issues an access token and a new refresh token in `family_id`.
async fn issue_tokens(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    user: &User,
    family_id: &str,
) -> ApiResult<TokenPair> {
    let access_token = state.keys.issue(&user.id, user.role(), family_id).await?;
    let refresh_token = opaque::generate();
    let refresh_ttl = state.settings.refresh_token_ttl;
    let expires_at = db::now_ms() + refresh_ttl.as_millis() as i64;
    db::tokens::insert_refresh(
        conn,
        &user.id,
        family_id,
        &opaque::digest(&refresh_token),
        expires_at,
    )
    .await?;
    Ok(TokenPair {
        access_token,
        token_type: "Bearer".into(),
        expires_in: state.keys.ttl().as_secs(),
        refresh_token,
        refresh_expires_in: refresh_ttl.as_secs(),
        user: UserView::from(user),
    })
}

/// Enqueues a templated mail to `user` inside the caller's transaction.
pub(crate) async fn send_email(
    tx: &mut JobTx,
    user: &User,
    template: EmailTemplate,
    meta: &RequestMeta,
) -> ApiResult<jobs::Enqueued> {
    let payload = SendEmail {
        user_id: parse_uuid(&user.id)?,
        template,
        subject_id: None,
    };
    Ok(tx
        .enqueue(&payload, &meta.job_origin(Some(&user.id)))
        .await?)
}

/// A disabled account's sign-in (only after the password or token was right, so it tells
/// nothing to a guesser).
fn disabled() -> ApiError {
    ApiError::unauthorized("account-disabled", "This account is disabled by an admin.")
}

fn parse_uuid(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id)
        .map_err(|e| ApiError::internal(format!("stored user id is not a UUID: {e}")))
}

/// Counts one attempt against `key`: 429 with `Retry-After` past `limit` per `window`.
pub(crate) async fn check_limit(
    state: &AppState,
    key: &str,
    limit: u32,
    window: Duration,
) -> ApiResult<()> {
    match state.limiter.hit(key, limit, window).await {
        Decision::Limited { retry_after } => Err(ApiError::rate_limited(retry_after)),
        Decision::Allowed => Ok(()),
    }
}

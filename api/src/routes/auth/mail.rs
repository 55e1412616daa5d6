//! The auth operations that answer by mail: email verification, resending it, and the
//! password reset. Each is limited per client and per address, and answers the same whether
//! or not the address has an account.

use super::*;

/// The mail-backed auth operations.
pub struct AccountMailApi;

#[OpenApi(prefix_path = "/api/v1/auth", tag = "ApiTags::Auth")]
impl AccountMailApi {
    /// Confirm an email address with the token from the verification mail.
    #[oai(path = "/verify-email", method = "post", operation_id = "verifyEmail")]
    async fn verify_email(
        &self,
        state: Data<&AppState>,
        meta: RequestMeta,
        body: JsonBody<TokenRequest>,
    ) -> ApiResult<VerifiedResponse> {
        let hash = opaque::digest(&body.token);
        let mut tx = state.db.begin().await?;
        let Some(user_id) =
            db::tokens::consume_email_token(&mut tx, EmailPurpose::VerifyEmail, &hash).await?
        else {
            return Err(ApiError::bad_request(
                "invalid-token",
                "The verification link is invalid, already used or expired. Ask for a new one.",
            ));
        };
        db::users::mark_verified(&mut tx, &user_id).await?;
        audit::record(
            &mut tx,
            AuditAction::EmailVerified,
            Some(&user_id),
            &meta.origin(),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(VerifiedResponse::Ok(Json(Verified {
            user_id,
            email_verified: true,
        })))
    }

    /// Send the verification email again (if the address has an unverified account).
    #[oai(
        path = "/resend-verification",
        method = "post",
        operation_id = "resendVerification"
    )]
    async fn resend_verification(
        &self,
        state: Data<&AppState>,
        meta: RequestMeta,
        body: JsonBody<EmailRequest>,
    ) -> ApiResult<AcceptedResponse> {
        let email = parse_email_field(&body.email)?;
        limit_mail(&state, &meta, &email, "resend").await?;
        request_mail(&state, &meta, MailPurpose::VerifyEmail, &email).await?;
        Ok(AcceptedResponse::Accepted(Json(Accepted {
            message:
                "If this address has an unverified account, a new verification email is on its way."
                    .into(),
        })))
    }

    /// Ask for a password-reset email (valid 1 hour).
    #[oai(
        path = "/forgot-password",
        method = "post",
        operation_id = "forgotPassword"
    )]
    async fn forgot_password(
        &self,
        state: Data<&AppState>,
        meta: RequestMeta,
        body: JsonBody<EmailRequest>,
    ) -> ApiResult<AcceptedResponse> {
        let email = parse_email_field(&body.email)?;
        limit_mail(&state, &meta, &email, "forgot").await?;
        request_mail(&state, &meta, MailPurpose::PasswordReset, &email).await?;
        Ok(AcceptedResponse::Accepted(Json(Accepted {
            message: "If this address has an account, a password-reset email is on its way.".into(),
        })))
    }

    /// Set a new password with the token from the reset mail.
    ///
    /// Limited per client IP like login (`LOGIN_RATE_LIMIT_PER_MINUTE`).
    ///
    /// Signs the account out everywhere: every refresh token is revoked and access tokens
    /// issued before now are refused.
    #[oai(
        path = "/reset-password",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset_password(
        &self,
        state: Data<&AppState>,
        meta: RequestMeta,
        body: JsonBody<ResetPasswordRequest>,
    ) -> ApiResult<NoContent> {
        check_limit(
            &state,
            &format!("reset:ip:{}", meta.client_key()),
            state.settings.login_rate_limit_per_minute,
            LIMIT_WINDOW,
        )
        .await?;
        let password = Password::parse(&body.new_password)
            .map_err(|m| ApiError::validation(vec![FieldError::new("new_password", m)]))?;
        let token_hash = opaque::digest(&body.token);
        let invalid = || {
            ApiError::bad_request(
                "invalid-token",
                "The reset link is invalid, already used or expired. Ask for a new one.",
            )
        };
        // The token first: a made-up token must not cost a password hash.
        if !db::tokens::email_token_is_live(&state.db, EmailPurpose::ResetPassword, &token_hash)
            .await?
        {
            return Err(invalid());
        }
        let hash = state.hasher.hash(password.expose().to_owned()).await?;
        let mut tx = state.begin().await?;
        // Spent here, in the transaction that changes the password (a racing reset with the
        // same token finds it spent).
        let Some(user_id) =
            db::tokens::consume_email_token(&mut tx, EmailPurpose::ResetPassword, &token_hash)
                .await?
        else {
            return Err(invalid());
        };
        db::users::set_password(&mut tx, &user_id, &hash, true).await?;
        let revoked = db::tokens::revoke_all_for_user(&mut tx, &user_id).await?;
        audit::record(
            &mut tx,
            AuditAction::PasswordReset,
            Some(&user_id),
            &meta.origin(),
            Some(serde_json::json!({"sign_ins_revoked": revoked})),
        )
        .await?;
        tx.enqueue(
            &SendEmail {
                user_id: parse_uuid(&user_id)?,
                template: EmailTemplate::PasswordChanged,
                subject_id: None,
            },
            &meta.job_origin(Some(&user_id)),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::Done)
    }
}

fn parse_email_field(raw: &str) -> ApiResult<Email> {
    Email::parse(raw).map_err(|m| ApiError::validation(vec![FieldError::new("email", m)]))
}

/// Stores an account-mail request and starts the job that answers it: the same work for
/// every address, so neither the answer nor its timing says whether the address has an
/// account (the job looks it up).
async fn request_mail(
    state: &AppState,
    meta: &RequestMeta,
    purpose: MailPurpose,
    email: &Email,
) -> ApiResult<()> {
    let mut tx = state.begin().await?;
    let id = db::mail_requests::insert(&mut tx, purpose, email, &meta.origin()).await?;
    let request_id = Uuid::parse_str(&id)
        .map_err(|e| ApiError::internal(format!("new request id is not a UUID: {e}")))?;
    tx.enqueue(&AnswerMailRequest { request_id }, &meta.job_origin(None))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Mail-sending endpoints are limited per client and per address, so nobody can flood an inbox.
async fn limit_mail(
    state: &AppState,
    meta: &RequestMeta,
    email: &Email,
    what: &str,
) -> ApiResult<()> {
    let limit = state.settings.login_rate_limit_per_minute;
    let keys = [
        format!("{what}:ip:{}", meta.client_key()),
        format!("{what}:account:{}", opaque::digest(email.as_str())),
    ];
    for key in keys {
        check_limit(state, &key, limit, LIMIT_WINDOW).await?;
    }
    Ok(())
}

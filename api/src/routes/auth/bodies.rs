//! The bodies of the auth operations: what they read and what they answer.

use super::*;

/// A new account.
#[derive(Debug, Object)]
pub struct RegisterRequest {
    /// The email address; a verification link is sent to it.
    pub email: EmailAddress,
    /// 12 to 128 characters, not all spaces.
    pub password: NewPassword,
    /// The kind of account (admins are made with `tend-api create-admin`).
    pub role: SignUpRole,
    /// The name shown to others (1 to 100 characters, no control characters).
    pub display_name: Option<DisplayName>,
}

impl BodyRules for RegisterRequest {}

/// The roles anyone may sign up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SignUpRole {
    /// Owns patients and their sessions.
    Practitioner,
    /// Reads the summaries a practitioner shares.
    Patient,
}

impl From<SignUpRole> for Role {
    fn from(role: SignUpRole) -> Self {
        match role {
            SignUpRole::Practitioner => Role::Practitioner,
            SignUpRole::Patient => Role::Patient,
        }
    }
}

/// The created account and the job that sends its verification email.
#[derive(Debug, Object)]
pub struct Registered {
    /// The new account.
    pub user: UserView,
    /// Follow it at `GET /api/v1/jobs/{id}`.
    pub verification_email_job_id: String,
}

/// Credentials.
#[derive(Debug, Object)]
pub struct LoginRequest {
    /// The account's email address.
    pub email: String,
    /// Its password.
    pub password: String,
}

impl BodyRules for LoginRequest {}

/// A sign-in: the token pair a login or refresh answers.
#[derive(Debug, Object)]
pub struct TokenPair {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange at `/auth/refresh` for a new pair; single use.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The signed-in account.
    pub user: UserView,
}

/// A refresh token.
#[derive(Debug, Object)]
pub struct RefreshRequest {
    /// The refresh token from the last sign-in or refresh.
    pub refresh_token: String,
}

impl BodyRules for RefreshRequest {}

/// A token from an emailed link.
#[derive(Debug, Object)]
pub struct TokenRequest {
    /// The `token` query parameter of the link (or the code in the mail).
    pub token: String,
}

impl BodyRules for TokenRequest {}

/// An email address.
#[derive(Debug, Object)]
pub struct EmailRequest {
    /// The account's email address.
    pub email: EmailAddress,
}

impl BodyRules for EmailRequest {}

/// A new password, proved by an emailed reset token.
#[derive(Debug, Object)]
pub struct ResetPasswordRequest {
    /// The token from the reset mail.
    pub token: String,
    /// 12 to 128 characters, not all spaces.
    pub new_password: NewPassword,
}

impl BodyRules for ResetPasswordRequest {}

/// The outcome of an email verification.
#[derive(Debug, Object)]
pub struct Verified {
    /// The account whose address is now verified.
    pub user_id: String,
    /// Always `true`.
    pub email_verified: bool,
}

#[derive(ApiResponse)]
pub(super) enum VerifiedResponse {
    /// The address is verified.
    #[oai(status = 200)]
    Ok(Json<Verified>),
}

/// A plain acknowledgement.
#[derive(Debug, Object)]
pub struct Accepted {
    /// What happens next.
    pub message: String,
}

#[derive(ApiResponse)]
pub(super) enum RegisterResponse {
    /// Created; the verification email is on its way.
    #[oai(status = 201)]
    Created(Json<Registered>),
}

#[derive(ApiResponse)]
pub(super) enum SignInResponse {
    /// Signed in.
    #[oai(status = 200)]
    Ok(Json<TokenPair>),
}

#[derive(ApiResponse)]
pub(super) enum AcceptedResponse {
    /// Accepted (the same answer whether or not the address has an account).
    #[oai(status = 202)]
    Accepted(Json<Accepted>),
}

#[derive(ApiResponse)]
pub(super) enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

//! The signed-in user's own account: read, update (name, password), delete.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use tend_shared::{
    auth::password,
    db::{
        self,
        audit::{self, AuditAction},
    },
    domain::{FieldError, Password, parse_display_name},
};

use tend_worker::jobs::email::EmailTemplate;

use super::{ApiTags, auth::send_email};
use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    guards::SignedIn,
    state::AppState,
    views::UserView,
};

/// Changes to the account; absent fields stay as they are.
#[derive(Debug, Object)]
pub struct UpdateMeRequest {
    /// A new display name (1 to 100 characters).
    pub display_name: Option<String>,
    /// A new password (12 to 128 characters); needs `current_password`.
    pub new_password: Option<String>,
    /// The current password, required to change it.
    pub current_password: Option<String>,
}

#[derive(ApiResponse)]
enum MeResponse {
    /// The account.
    #[oai(status = 200)]
    Ok(Json<UserView>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The account is gone, with a practitioner's patients, sessions and stored audio.
    #[oai(status = 204)]
    Done,
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

    /// Change the display name and/or the password.
    ///
    /// A password change signs out every other device (their refresh tokens are revoked)
    /// and sends a notice to the account's address.
    #[oai(path = "/me", method = "patch", operation_id = "updateMe")]
    async fn update_me(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        meta: RequestMeta,
        body: Json<UpdateMeRequest>,
    ) -> ApiResult<MeResponse> {
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
        if new_password.is_some() {
            let ok = match &body.current_password {
                Some(current) => {
                    password::verify(current.clone(), user.password_hash.clone()).await?
                }
                None => false,
            };
            if !ok {
                errors.push(FieldError::new("current_password", "is missing or wrong"));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        if let Some(name) = &display_name {
            db::users::set_display_name(&state.db, &user.id, Some(name)).await?;
        }
        if let Some(pw) = new_password {
            let hash = password::hash(pw.expose().to_owned()).await?;
            let mut tx = state.begin().await?;
            db::users::set_password(&mut tx, &user.id, &hash, false).await?;
            db::tokens::revoke_all_for_user(&mut tx, &user.id).await?;
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

    /// Delete the account and every session.
    #[oai(path = "/me", method = "delete", operation_id = "deleteMe")]
    async fn delete_me(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        meta: RequestMeta,
    ) -> ApiResult<Deleted> {
        // A practitioner's sessions go with the account, their audio first.
        let keys = db::sessions::object_keys_of_practitioner(&state.db, &user.id).await?;
        state.delete_objects(&keys).await?;
        let mut tx = state.db.begin().await?;
        db::users::delete(&mut tx, &user.id).await?;
        audit::record(
            &mut tx,
            AuditAction::AccountDeleted,
            Some(&user.id),
            &meta.origin(),
            None,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, "account deleted");
        Ok(Deleted::Done)
    }
}

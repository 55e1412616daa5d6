//! `/admin/signing-keys`: the keys that sign access tokens. Admins list them (never their
//! secrets), rotate in a new one (the old keeps verifying its tokens until they expire) and
//! remove a leaked one (its tokens are refused). `tend-api signing-keys` does the same from
//! the command line, and the `rotate_signing_key` schedule rotates on its own.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};
use tend_shared::auth::keys::{self, ActiveKey, KeySource, RemoveRefused, RotatedBy};

use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    guards::Admin,
    routes::ApiTags,
    state::AppState,
    views::ms_to_datetime,
};

/// Where a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum KeySourceView {
    /// Made by a rotation, stored in the database.
    Stored,
    /// `JWT_SECRET` or `JWT_SECRET_PREVIOUS`.
    Environment,
}

/// A key in force (its secret is never shown).
#[derive(Debug, Object)]
pub struct SigningKeyView {
    /// The `kid` header of the tokens it signs.
    pub kid: String,
    /// Where it comes from.
    pub source: KeySourceView,
    /// Whether it signs new tokens (exactly one key does).
    pub signing: bool,
    /// When it was made (stored keys).
    pub created_at: Option<DateTime<Utc>>,
    /// Who made it: `command`, `schedule` or `admin:<user id>` (stored keys).
    pub created_by: Option<String>,
    /// When it stops verifying tokens: one access-token lifetime after a newer key replaced
    /// it. Absent while nothing has.
    pub verifies_until: Option<DateTime<Utc>>,
}

impl From<ActiveKey> for SigningKeyView {
    fn from(key: ActiveKey) -> Self {
        Self {
            source: match key.source {
                KeySource::Stored => KeySourceView::Stored,
                KeySource::Environment => KeySourceView::Environment,
            },
            signing: key.signing,
            created_at: key.created_at.map(ms_to_datetime),
            created_by: key.created_by,
            verifies_until: key.verifies_until.map(ms_to_datetime),
            kid: key.kid,
        }
    }
}

#[derive(ApiResponse)]
enum KeyList {
    /// The keys in force, the signing one first.
    #[oai(status = 200)]
    Ok(Json<Vec<SigningKeyView>>),
}

#[derive(ApiResponse)]
enum KeyRotated {
    /// The new key, which signs from now on.
    #[oai(status = 201)]
    Created(Json<SigningKeyView>),
}

#[derive(ApiResponse)]
enum KeyRemoved {
    /// Removed: the tokens it signed are refused (by every API process within 10 s).
    #[oai(status = 204)]
    Done,
}

/// The admin signing-key operations.
pub struct AdminSigningKeysApi;

#[OpenApi(prefix_path = "/api/v1/admin/signing-keys", tag = "ApiTags::Admin")]
impl AdminSigningKeysApi {
    /// The keys that sign and verify access tokens.
    #[oai(path = "/", method = "get", operation_id = "adminListSigningKeys")]
    async fn list(&self, state: Data<&AppState>, _admin: Admin) -> ApiResult<KeyList> {
        let keys = keys::list(&state.db, &state.settings).await?;
        Ok(KeyList::Ok(Json(
            keys.into_iter().map(Into::into).collect(),
        )))
    }

    /// Rotate: a new key signs from now on; the one it replaces keeps verifying the tokens
    /// it signed until they expire, then is deleted at a later rotation.
    #[oai(path = "/", method = "post", operation_id = "adminRotateSigningKey")]
    async fn rotate(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
    ) -> ApiResult<KeyRotated> {
        let origin = meta.origin();
        let by = RotatedBy::Admin {
            user_id: &admin.id,
            origin: &origin,
        };
        let key = keys::rotate(&state.db, &state.settings, by)
            .await?
            .ok_or_else(|| ApiError::internal("an admin's rotation made no key"))?;
        state.keys.reload().await;
        Ok(KeyRotated::Created(Json(key.into())))
    }

    /// Remove a key at once (it leaked): every token it signed is refused. The signing key
    /// cannot be removed (409: rotate first), nor one set in the environment (409: change
    /// the setting).
    #[oai(
        path = "/:kid",
        method = "delete",
        operation_id = "adminRemoveSigningKey"
    )]
    async fn remove(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        kid: Path<String>,
    ) -> ApiResult<KeyRemoved> {
        let removed = keys::remove(
            &state.db,
            &state.settings,
            &kid.0,
            Some(&admin.id),
            &meta.origin(),
        )
        .await?;
        match removed {
            Ok(()) => {
                state.keys.reload().await;
                Ok(KeyRemoved::Done)
            }
            Err(RemoveRefused::NotFound) => Err(ApiError::not_found("signing key")),
            Err(refused @ RemoveRefused::Signing) => {
                Err(ApiError::conflict("signing-key", refused.to_string()))
            }
            Err(refused @ RemoveRefused::Environment) => {
                Err(ApiError::conflict("environment-key", refused.to_string()))
            }
        }
    }
}

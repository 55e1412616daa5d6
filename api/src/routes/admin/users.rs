//! `/admin/users` and `/admin/audit-logs`: find accounts, change a role, disable an account
//! (which signs it out everywhere), and read the audit trail.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use tend_shared::{
    db::{
        self,
        audit::{AuditAction, AuditFilter},
        users::User,
    },
    domain::Role,
};

use super::{audited, parse_since};
use crate::{
    body::{BodyRules, JsonBody},
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::{PageCursor, SearchText, Timestamp},
    guards::Admin,
    limits,
    pagination::PageRequest,
    routes::ApiTags,
    state::AppState,
    views::{AuditPage, RoleView, UserView, ms_to_datetime},
};

/// An account as admins see it: as its owner does, and whether it is disabled.
#[derive(Debug, Object)]
pub struct AdminUserView {
    /// The account.
    #[oai(flatten)]
    pub user: UserView,
    /// Whether an admin disabled the account.
    pub disabled: bool,
}

impl From<&User> for AdminUserView {
    fn from(user: &User) -> Self {
        Self {
            user: UserView::from(user),
            disabled: user.disabled_at.is_some(),
        }
    }
}

/// One page of users.
#[derive(Debug, Object)]
pub struct AdminUserPage {
    /// The users, newest first.
    pub items: Vec<AdminUserView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Changes to an account; absent fields stay as they are.
#[derive(Debug, Object)]
pub struct AdminUserUpdate {
    /// A new role.
    pub role: Option<RoleView>,
    /// `true` disables the account (signing it out everywhere), `false` enables it.
    pub disabled: Option<bool>,
}

impl BodyRules for AdminUserUpdate {}

/// One budget of an account.
#[derive(Debug, Object)]
pub struct BudgetView {
    /// `uploads`, `mission_drafts`, `reextractions` (extract-notes and retries),
    /// `invitations` or `exports`.
    pub name: String,
    /// Units per hour.
    pub limit: u32,
    /// In use: units spent that have not come back yet (one comes back every hour / limit;
    /// refused attempts spend nothing).
    pub used: u32,
    /// When every unit is back (now, when none is in use).
    pub refills_at: DateTime<Utc>,
}

/// An account's budgets.
#[derive(Debug, Object)]
pub struct UserLimits {
    /// Every budget.
    pub items: Vec<BudgetView>,
}

#[derive(ApiResponse)]
enum LimitsResponse {
    /// The budgets now.
    #[oai(status = 200)]
    Ok(Json<UserLimits>),
}

/// The account `id`, or 404.
async fn account(state: &AppState, id: &str) -> ApiResult<db::users::User> {
    db::users::find(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

/// `user_id`'s budgets as admins read them.
async fn limits_view(state: &AppState, user_id: &str) -> UserLimits {
    let uses = limits::usage(&state.limiter, &state.settings.account_limits, user_id).await;
    UserLimits {
        items: uses
            .into_iter()
            .map(|u| BudgetView {
                name: u.budget.name().to_owned(),
                limit: u.limit,
                used: u.used,
                refills_at: ms_to_datetime(u.refills_at as i64),
            })
            .collect(),
    }
}

#[derive(ApiResponse)]
enum UserPageResponse {
    /// A page of users.
    #[oai(status = 200)]
    Ok(Json<AdminUserPage>),
}

#[derive(ApiResponse)]
enum UserResponse {
    /// The account as it is now.
    #[oai(status = 200)]
    Ok(Json<AdminUserView>),
}

#[derive(ApiResponse)]
enum AuditPageResponse {
    /// A page of events.
    #[oai(status = 200)]
    Ok(Json<AuditPage>),
}

/// The admin user and audit operations.
pub struct AdminUsersApi;

#[OpenApi(prefix_path = "/api/v1/admin", tag = "ApiTags::Admin")]
impl AdminUsersApi {
    /// Accounts, newest first; `email` finds addresses containing it, `role` filters.
    #[oai(path = "/users", method = "get", operation_id = "adminListUsers")]
    async fn list_users(
        &self,
        state: Data<&AppState>,
        _admin: Admin,
        /// Text to find in the address (case-insensitive).
        email: Query<Option<SearchText>>,
        /// Only accounts with this role.
        role: Query<Option<RoleView>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<PageCursor>>,
    ) -> ApiResult<UserPageResponse> {
        let page = PageRequest::parse(limit.0, cursor.0.map(|c| c.0))?;
        let search = email.0.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let rows = db::users::list(
            &state.db,
            search,
            role.0.map(role_of),
            page.cursor.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |u| u.id.clone());
        Ok(UserPageResponse::Ok(Json(AdminUserPage {
            items: rows.iter().map(Into::into).collect(),
            next_cursor,
        })))
    }

    /// Change an account's role, or disable it (its tokens are revoked at once) or enable it.
    /// An admin cannot demote or disable their own account (409).
    #[oai(
        path = "/users/:id",
        method = "patch",
        operation_id = "adminUpdateUser"
    )]
    async fn update_user(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
        body: JsonBody<AdminUserUpdate>,
    ) -> ApiResult<UserResponse> {
        let user = account(&state, &id.0).await?;
        let demotes_self = body.role.is_some_and(|r| role_of(r) != Role::Admin);
        if user.id == admin.id && (demotes_self || body.disabled == Some(true)) {
            return Err(ApiError::conflict(
                "own-account",
                "Admins cannot demote or disable their own account.",
            ));
        }
        let mut tx = state.begin().await?;
        if let Some(role) = body.role {
            db::users::set_role(&mut tx, &user.id, role_of(role)).await?;
        }
        if let Some(disabled) = body.disabled {
            db::users::set_disabled(&mut tx, &user.id, disabled).await?;
            if disabled {
                db::tokens::revoke_all_for_user(&mut tx, &user.id).await?;
            }
        }
        let detail = serde_json::json!({
            "user_id": user.id,
            "role": body.role.map(|r| role_of(r).as_str()),
            "disabled": body.disabled,
        });
        audited(&mut tx, AuditAction::UserUpdated, &admin.id, &meta, detail).await?;
        tx.commit().await?;
        let user = db::users::find(&state.db, &user.id)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        Ok(UserResponse::Ok(Json((&user).into())))
    }

    /// Read an account's budgets (`UPLOADS_PER_HOUR` and the others): what is in use, and when
    /// each is whole again.
    #[oai(
        path = "/users/:id/limits",
        method = "get",
        operation_id = "adminGetUserLimits"
    )]
    async fn user_limits(
        &self,
        state: Data<&AppState>,
        _admin: Admin,
        id: Path<String>,
    ) -> ApiResult<LimitsResponse> {
        let user = account(&state, &id.0).await?;
        Ok(LimitsResponse::Ok(Json(
            limits_view(&state, &user.id).await,
        )))
    }

    /// Refill every budget of an account now (after a legitimate burst, say). Audited.
    #[oai(
        path = "/users/:id/limits/reset",
        method = "post",
        operation_id = "adminResetUserLimits"
    )]
    async fn reset_user_limits(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<LimitsResponse> {
        let user = account(&state, &id.0).await?;
        limits::reset(&state.limiter, &user.id)
            .await
            .map_err(|err| {
                tracing::warn!(error = %format!("{err:#}"), "budgets not reset");
                ApiError::unavailable(
                    "The rate limiter is unavailable; nothing was reset. Try again.",
                )
            })?;
        let mut tx = state.begin().await?;
        let detail = serde_json::json!({ "user_id": user.id });
        audited(
            &mut tx,
            AuditAction::UserLimitsReset,
            &admin.id,
            &meta,
            detail,
        )
        .await?;
        tx.commit().await?;
        Ok(LimitsResponse::Ok(Json(
            limits_view(&state, &user.id).await,
        )))
    }

    /// The audit log, newest first, filtered by account, action and time.
    #[oai(
        path = "/audit-logs",
        method = "get",
        operation_id = "adminListAuditLogs"
    )]
    #[allow(clippy::too_many_arguments)] // one per query parameter
    async fn audit_logs(
        &self,
        state: Data<&AppState>,
        _admin: Admin,
        /// Only events of this account.
        user_id: Query<Option<SearchText>>,
        /// Only this action, e.g. `login_failed`.
        action: Query<Option<SearchText>>,
        /// Only events at or after this time (RFC 3339).
        since: Query<Option<Timestamp>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<PageCursor>>,
    ) -> ApiResult<AuditPageResponse> {
        let page = PageRequest::parse(limit.0, cursor.0.map(|c| c.0))?;
        let filter = AuditFilter {
            user_id: user_id.0.as_deref(),
            action: action.0.as_deref(),
            since: parse_since(since.0.as_deref())?,
        };
        let rows = db::audit::list(
            &state.db,
            &filter,
            page.cursor.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |e| e.id.clone());
        Ok(AuditPageResponse::Ok(Json(AuditPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        })))
    }
}

fn role_of(role: RoleView) -> Role {
    match role {
        RoleView::Admin => Role::Admin,
        RoleView::Practitioner => Role::Practitioner,
        RoleView::Patient => Role::Patient,
    }
}

//! Who may call an operation, as extractors: an operation names the caller it needs in its
//! signature and receives the signed-in user, checked once here instead of in every handler.
//! Each is the bearer-token security scheme in the spec ([`BearerAuth`]).
//!
//! - [`SignedIn`]: any live account (a valid token, the account exists, not revoked).
//! - [`Practitioner`]: practitioners only (403 for other roles: the role is refused, not the id).
//! - [`Admin`]: admins only (403 for other roles).

use poem::{IntoResponse, Request, RequestBody};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, registry::Registry};
use tend_shared::{auth::jwt::Claims, db::users::User, domain::Role};

use crate::{
    error::{ApiError, ApiResult},
    extract::BearerAuth,
    state::{AppState, VerifiedToken},
};

/// Any signed-in account.
pub struct SignedIn(pub User);

/// Any signed-in account, with the sign-in its token belongs to (`None` for tokens issued
/// before tokens named it), for operations on the caller's own sign-ins.
pub struct SignedInWith {
    /// The account.
    pub user: User,
    /// The refresh-token family of the caller's sign-in.
    pub sign_in: Option<String>,
}

/// A signed-in practitioner.
pub struct Practitioner(pub User);

/// A signed-in admin.
pub struct Admin(pub User);

/// Checks the bearer token of `req` and returns its live user (a missing token is refused
/// as the security scheme refuses it).
async fn signed_in(req: &Request, body: &mut RequestBody) -> poem::Result<(User, Claims)> {
    let auth = <BearerAuth as ApiExtractor>::from_request(req, body, Default::default()).await?;
    let state = req
        .data::<AppState>()
        .ok_or_else(|| refused(ApiError::internal("the application state is missing")))?;
    // Verified already by the request-limit middleware (most requests), or here.
    let verified = req
        .extensions()
        .get::<VerifiedToken>()
        .filter(|v| v.token == auth.0.token);
    match verified {
        Some(v) => state.live_account(v.claims.clone()).await,
        None => state.authenticate(&auth.0.token).await,
    }
    .map_err(refused)
}

/// An [`ApiError`] as the extractor error poem expects (the problem body is kept).
fn refused(err: ApiError) -> poem::Error {
    poem::Error::from_response(err.into_response())
}

macro_rules! guard {
    ($name:ident, $check:expr) => {
        guard!($name, $check, |user, _| $name(user));
    };
    ($name:ident, $check:expr, $build:expr) => {
        impl<'a> ApiExtractor<'a> for $name {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <BearerAuth as ApiExtractor>::register(registry);
            }

            fn security_schemes() -> Vec<&'static str> {
                <BearerAuth as ApiExtractor>::security_schemes()
            }

            async fn from_request(
                req: &'a Request,
                body: &mut RequestBody,
                _: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                let (user, claims) = signed_in(req, body).await?;
                let check: fn(&User) -> ApiResult<()> = $check;
                check(&user).map_err(refused)?;
                let build: fn(User, Claims) -> Self = $build;
                Ok(build(user, claims))
            }
        }
    };
}

guard!(SignedIn, |_| Ok(()));
guard!(SignedInWith, |_| Ok(()), |user, claims| SignedInWith {
    user,
    sign_in: claims.sid,
});
guard!(Practitioner, |user| match user.role() {
    Role::Practitioner => Ok(()),
    _ => Err(ApiError::forbidden(
        "Only practitioner accounts manage patients and sessions.",
    )),
});
guard!(Admin, |user| match user.role() {
    Role::Admin => Ok(()),
    _ => Err(ApiError::forbidden("Only admin accounts may do this.")),
});

//! Request extractors used by operations: the caller's origin and request id, and the bearer
//! token security scheme.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::{SecurityScheme, auth::Bearer};
use tend_shared::{db::audit::Origin, jobs::JobOrigin};

use crate::{middleware::RequestId, state::AppState};

/// An access token from `Authorization: Bearer ...` (obtained from `/auth/login`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerAuth(pub Bearer);

/// Who is calling and from where: request id, client IP and user agent.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The request id (see the middleware).
    pub request_id: String,
    /// The client address (from `X-Forwarded-For` only when `TRUST_PROXY_HEADERS` is on).
    pub ip: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// For the audit log.
    pub fn origin(&self) -> Origin {
        Origin {
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }

    /// For jobs this request starts.
    pub fn job_origin(&self, user_id: Option<&str>) -> JobOrigin {
        JobOrigin {
            created_by: user_id.map(str::to_owned),
            request_id: Some(self.request_id.clone()),
        }
    }

    /// The key rate limits count per client.
    pub fn client_key(&self) -> String {
        self.ip.clone().unwrap_or_else(|| "unknown".into())
    }
}

impl<'a> FromRequest<'a> for RequestMeta {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let trust_proxy = req
            .data::<AppState>()
            .is_some_and(|s| s.settings.trust_proxy_headers);
        let forwarded = trust_proxy
            .then(|| req.header("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        let ip = forwarded.or_else(|| {
            req.remote_addr()
                .as_socket_addr()
                .map(|addr| addr.ip().to_string())
        });
        Ok(Self {
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            ip,
            user_agent: req.header("user-agent").map(str::to_owned),
        })
    }
}

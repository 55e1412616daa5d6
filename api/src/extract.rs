//! Request extractors used by operations: the caller's origin and request id, and the bearer
//! token security scheme.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::{SecurityScheme, auth::Bearer};
use tend_shared::{db::audit::Origin, jobs::JobOrigin};

use crate::state::AppState;

/// The id of the current request: kept from `X-Request-Id` when the client sent a sane one,
/// generated otherwise. Stored in the request's extensions and carried into the jobs it starts.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// An access token from `Authorization: Bearer ...` (obtained from `/auth/login`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerAuth(pub Bearer);

/// The token of a request's `Authorization` header, read exactly as [`BearerAuth`] reads it
/// (`Bearer` in any case, any spaces before the token). Everything keyed on the token (the
/// per-user limit, the metrics check) reads it here, so no spelling that authenticates can
/// pass them by.
pub fn bearer_token(headers: &poem::http::HeaderMap) -> Option<String> {
    use poem::web::headers::{Authorization, HeaderMapExt, authorization};
    headers
        .typed_get::<Authorization<authorization::Bearer>>()
        .map(|auth| auth.token().to_owned())
}

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

    /// For jobs this request starts on behalf of `user_id`'s account, which is their tenant
    /// (a practitioner's account is their practice).
    pub fn job_origin(&self, user_id: Option<&str>) -> JobOrigin {
        JobOrigin {
            created_by: user_id.map(str::to_owned),
            request_id: Some(self.request_id.clone()),
            tenant: user_id.map(str::to_owned),
            priority: None,
        }
    }

    /// For the system's own work that `admin_id` starts (a maintenance run): no tenant.
    pub fn system_job_origin(&self, admin_id: &str) -> JobOrigin {
        JobOrigin {
            tenant: None,
            ..self.job_origin(Some(admin_id))
        }
    }

    /// The key rate limits count per client: the IPv4 address, or the /64 network of an
    /// IPv6 one (one subscriber is given a whole /64, and could otherwise take a fresh address
    /// for each try).
    pub fn client_key(&self) -> String {
        match self.ip.as_deref().map(str::parse::<std::net::IpAddr>) {
            Some(Ok(std::net::IpAddr::V6(v6))) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
            Some(Ok(v4)) => v4.to_string(),
            // Not an address (a proxy's odd header): counted as it came.
            Some(Err(_)) => self.ip.clone().unwrap_or_default(),
            None => "unknown".into(),
        }
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

#[cfg(test)]
mod tests {
    use super::RequestMeta;

    fn key(ip: &str) -> String {
        RequestMeta {
            request_id: String::new(),
            ip: Some(ip.into()),
            user_agent: None,
        }
        .client_key()
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_network() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
    }
}

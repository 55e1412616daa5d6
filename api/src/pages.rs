//! The web pages `tend-api` serves itself, everything compiled into the binary (the machines
//! it runs on may have no internet):
//! - what an emailed link opens when no client app is configured (`APP_URL` unset, so the
//!   links point at the API itself): confirm an address, choose a new password, accept an
//!   invitation, read the mission draft a notice is about, download a data export; each a
//!   static page plus one script that calls the API, so a person can act on the email alone;
//! - the admin dashboard at `/admin`: a client of `/api/v1/admin` (queues, jobs, workers,
//!   users, audit log) that signs in with email and password and keeps its token in the tab.

use poem::{
    Response, Route, get, handler,
    http::{HeaderValue, StatusCode, header},
};

/// What the pages may load and call: their own script and style, the API, nothing else.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .content_type(content_type)
        .body(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    // The URL carries a token: never cache the page, never send it on as a referrer.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[handler]
fn verify_email() -> Response {
    asset(
        include_str!("../pages/verify-email.html"),
        "text/html; charset=utf-8",
    )
}

#[handler]
fn reset_password() -> Response {
    asset(
        include_str!("../pages/reset-password.html"),
        "text/html; charset=utf-8",
    )
}

#[handler]
fn accept_invitation() -> Response {
    asset(
        include_str!("../pages/accept-invitation.html"),
        "text/html; charset=utf-8",
    )
}

#[handler]
fn mission_draft() -> Response {
    asset(
        include_str!("../pages/mission-draft.html"),
        "text/html; charset=utf-8",
    )
}

#[handler]
fn data_export() -> Response {
    asset(
        include_str!("../pages/data-export.html"),
        "text/html; charset=utf-8",
    )
}

#[handler]
fn dashboard() -> Response {
    asset(
        include_str!("../admin/index.html"),
        "text/html; charset=utf-8",
    )
}

#[handler]
fn dashboard_script() -> Response {
    asset(
        include_str!("../admin/admin.js"),
        "text/javascript; charset=utf-8",
    )
}

#[handler]
fn dashboard_style() -> Response {
    asset(
        include_str!("../admin/admin.css"),
        "text/css; charset=utf-8",
    )
}

#[handler]
fn script() -> Response {
    asset(
        include_str!("../pages/account.js"),
        "text/javascript; charset=utf-8",
    )
}

#[handler]
fn style() -> Response {
    asset(
        include_str!("../pages/account.css"),
        "text/css; charset=utf-8",
    )
}

/// Adds the pages and their assets to `route`, at the paths the mails link to.
pub fn add(route: Route) -> Route {
    route
        .at("/verify-email", get(verify_email))
        .at("/reset-password", get(reset_password))
        .at("/accept-invitation", get(accept_invitation))
        .at("/mission-draft", get(mission_draft))
        .at("/data-export", get(data_export))
        .at("/assets/account.js", get(script))
        .at("/assets/account.css", get(style))
        .at("/admin", get(dashboard))
        .at("/admin/admin.js", get(dashboard_script))
        .at("/admin/admin.css", get(dashboard_style))
}

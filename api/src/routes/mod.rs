//! The operations, one API struct per tag; [`api`] combines them into one OpenAPI service.

pub mod admin;
pub mod analytics;
pub mod auth;
pub mod cancel;
pub mod data_exports;
pub mod events;
pub mod exports;
pub mod health;
pub mod invitations;
pub mod jobs;
pub mod live;
pub mod missions;
pub mod patients;
pub mod practice_budget;
pub mod sessions;
pub mod users;

use poem_openapi::{OpenApiService, Tags};

/// The tags of the spec, in the order Swagger UI shows them.
#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and readiness, for load balancers and orchestrators.
    Ops,
    /// Accounts: register, sign in, tokens, email verification, password reset.
    Auth,
    /// The signed-in user's own account.
    Users,
    /// Background jobs the caller started.
    Jobs,
    /// A practitioner's patients.
    Patients,
    /// Patients accepting a practitioner's invitation to link their account.
    Invitations,
    /// Recorded sessions: upload, transcription, notes.
    Sessions,
    /// Practice documents: session notes and progress reports as PDF or DOCX.
    Exports,
    /// Training missions drafted by the chat model, and confirmed missions.
    Missions,
    /// A practitioner's figures over their own patients.
    Analytics,
    /// Admins: queues, jobs, workers, users, maintenance schedules and the audit log.
    Admin,
}

/// The whole API as one OpenAPI service.
pub type Api = (
    health::HealthApi,
    auth::AuthApi,
    auth::AccountMailApi,
    users::UsersApi,
    data_exports::DataExportsApi,
    events::EventsApi,
    jobs::JobsApi,
    patients::PatientsApi,
    invitations::InvitationsApi,
    sessions::SessionsApi,
    live::LiveApi,
    exports::ExportsApi,
    missions::MissionsApi,
    analytics::AnalyticsApi,
    // The admin operations as one member (a tuple takes at most 16).
    (
        admin::queues::AdminQueuesApi,
        admin::jobs::AdminJobsApi,
        admin::users::AdminUsersApi,
        admin::workers::AdminWorkersApi,
        admin::maintenance::AdminMaintenanceApi,
        admin::stats::AdminStatsApi,
        admin::backups::AdminBackupsApi,
        admin::signing_keys::AdminSigningKeysApi,
        admin::practices::AdminPracticesApi,
    ),
);

/// Builds the service (its spec is served at `/openapi.json` and shown at `/docs`).
pub fn api(server_url: &str) -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (
            health::HealthApi,
            auth::AuthApi,
            auth::AccountMailApi,
            users::UsersApi,
            data_exports::DataExportsApi,
            events::EventsApi,
            jobs::JobsApi,
            patients::PatientsApi,
            invitations::InvitationsApi,
            sessions::SessionsApi,
            live::LiveApi,
            exports::ExportsApi,
            missions::MissionsApi,
            analytics::AnalyticsApi,
            // The admin operations as one member (a tuple takes at most 16).
            (
                admin::queues::AdminQueuesApi,
                admin::jobs::AdminJobsApi,
                admin::users::AdminUsersApi,
                admin::workers::AdminWorkersApi,
                admin::maintenance::AdminMaintenanceApi,
                admin::stats::AdminStatsApi,
                admin::backups::AdminBackupsApi,
                admin::signing_keys::AdminSigningKeysApi,
                admin::practices::AdminPracticesApi,
            ),
        ),
        "Tend API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Processing backend for care and coaching platforms. Slow work runs as jobs: \
         start one, then follow it at `GET /api/v1/jobs/{id}`. Errors are \
         `application/problem+json`; every response carries `X-Request-Id`.",
    )
    .server(server_url)
}

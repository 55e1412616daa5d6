//! Tend's shared core: everything the API, the workers and the scheduler agree on.
//!
//! Layout:
//! - [`config`]: the typed settings, read once from the environment (and an optional `.env`).
//! - [`telemetry`]: tracing set-up (pretty or JSON lines).
//! - [`db`]: the database pool (SQLite or PostgreSQL behind one `sqlx::Any` pool), migrations and
//!   the query functions, one module per table.
//! - [`domain`]: validated newtypes (email, password, role) so bad input stops at the edge.
//! - [`auth`]: password hashing, access tokens (JWT) and opaque tokens (refresh, email links).
//! - [`jobs`]: typed job payloads (ids only) with their retry policy, and the job ledger API.
//! - [`queue`]: the transport (Redis or SQLite through apalis) and the outbox relay that feeds it.
//! - [`outage`]: logs an outage of the database or queue once, then every 30 s, then its end.
//! - [`ratelimit`]: fixed-window limits, in memory or shared through Redis.
//! - [`sessions`]: recorded sessions: upload sniffing, transcripts, the notes and their schema.
//! - [`storage`]: the object store (local disk or S3) that holds uploaded audio.
//!
//! No HTTP and no job handlers live here: those are `tend-api` and `tend-worker`.

pub mod auth;
pub mod backup;
pub mod budget;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod jobs;
pub mod lifecycle;
pub mod metrics;
pub mod missions;
pub mod outage;
pub mod queue;
pub mod ratelimit;
pub mod schedules;
pub mod sessions;
pub mod storage;
pub mod telemetry;
pub mod throttle;

pub use config::Settings;

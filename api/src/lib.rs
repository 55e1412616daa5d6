//! Tend's HTTP API (poem-openapi) and the process entry points.
//!
//! Layout:
//! - [`routes`]: the operations, one module per tag (ops, auth, users, jobs, patients,
//!   sessions).
//! - [`error`]: the one error type, rendered as `application/problem+json`.
//! - [`middleware`]: request id, tracing span, access log, security headers.
//! - [`metrics`]: `/metrics` for Prometheus (token or admin), the ledger's gauges.
//! - [`listener`]: connection cap and header, idle and keep-alive deadlines on every socket.
//! - [`body`]: JSON request bodies, checked against their schema (422 naming each field).
//! - [`extract`]: request metadata and the bearer security scheme; [`guards`]: who may call
//!   an operation (signed in, practitioner, admin), as extractors.
//! - [`pages`]: the pages emailed links open when no client app is configured.
//! - [`pagination`]: `limit` and `cursor` of the list operations.
//! - [`state`]: what handlers share (pools, keys, relay, limiter).
//! - [`spec`]: the OpenAPI document as served, fixed for client generators.
//! - [`startup`]: builds the app; runs it alone or with workers and scheduler (embedded).
//! - [`commands`]: operator commands run from the shell (`create-admin`), apart from the HTTP routes.
//!
//! Handlers parse, authorise, call `tend-shared`, and answer; they hold no business state.

pub mod body;
pub mod commands;
pub mod download;
pub mod error;
pub mod extract;
pub mod guards;
pub mod idempotency;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod pages;
pub mod pagination;
pub mod routes;
pub mod spec;
pub mod startup;
pub mod state;
pub mod views;

pub use tend_views::fields;

//! End-to-end tests: the real application on port 0, driven over HTTP.
//! Backends are chosen by the environment (see `tests/lib.rs`).

mod accounts;
mod admin;
mod analytics;
mod backups;
mod budgets;
mod cancellation;
mod cleanup;
mod clients;
mod conventions;
mod dashboard;
mod data_export;
mod erasure;
mod events;
mod exports;
mod fairness;
mod fencing;
mod fuzz;
mod hardening;
mod jobs;
mod live;
mod logs;
mod metrics;
mod missions;
mod pages;
mod patients;
mod provider_limits;
mod sessions;
mod structure;
mod tokens;

//! Every job kind as the rest of Tend names it: each payload with its queue, retry policy and
//! kind name ([`super::JobPayload`]). The API and the scheduler enqueue these; `tend-worker`
//! alone knows how to run them.

pub mod account_mail;
pub mod backup;
pub mod cleanup;
pub mod daily_stats;
pub mod data_export;
pub mod draft_mission;
pub mod email;
pub mod erase_account;
pub mod extract;
pub mod invitation;
pub mod render_export;
pub mod retry_dead;
pub mod rotate_signing_key;
pub mod transcribe;
pub mod weekly_snapshots;

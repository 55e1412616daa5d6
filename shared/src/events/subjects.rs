//! The records events report on, and the snapshot event of each as committed.

use serde_json::json;

use super::*;
use crate::db::{self, Db};

/// A record whose state a user follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A recorded session (`session.state`).
    Session(String),
    /// A practice document (`export.state`).
    Export(String),
    /// A personal data export (`data_export.state`).
    DataExport(String),
    /// A mission draft (`draft.state`).
    Draft(String),
}

/// The events that say what `subject` is now, one for each user who may see it: ids,
/// status, failed stage and error, never patient text. None when it is gone.
pub async fn snapshot(db: &Db, subject: &Subject) -> sqlx::Result<Vec<NewEvent>> {
    Ok(match subject {
        Subject::Session(id) => match db::sessions::find(db, id).await? {
            Some(row) => vec![NewEvent {
                user_id: row.practitioner_id,
                kind: "session.state",
                data: json!({
                    "session_id": row.id,
                    "status": row.status.as_str(),
                    "failed_stage": row.failed_stage,
                    "error": row.error,
                    "job_id": row.job_id,
                    "chunks": chunks(row.chunks_done, row.chunks_total),
                    "updated_at": row.updated_at,
                }),
            }],
            None => Vec::new(),
        },
        Subject::Export(id) => match db::exports::find(db, id).await? {
            Some(row) => vec![NewEvent {
                user_id: row.practitioner_id,
                kind: "export.state",
                data: json!({
                    "export_id": row.id,
                    "status": row.status.as_str(),
                    "error": row.error,
                    "updated_at": row.updated_at,
                }),
            }],
            None => Vec::new(),
        },
        Subject::DataExport(id) => match db::data_exports::find(db, id).await? {
            Some(row) => vec![NewEvent {
                user_id: row.user_id,
                kind: "data_export.state",
                data: json!({
                    "data_export_id": row.id,
                    "status": row.status.as_str(),
                    "error": row.error,
                }),
            }],
            None => Vec::new(),
        },
        Subject::Draft(id) => match db::missions::find_draft(db, id).await? {
            Some(row) => {
                let data = json!({
                    "draft_id": row.id,
                    "status": row.status.as_str(),
                    "error": row.error,
                    "updated_at": row.updated_at,
                });
                let mut users = vec![row.requested_by];
                if !users.contains(&row.practitioner_id) {
                    users.push(row.practitioner_id);
                }
                users
                    .into_iter()
                    .map(|user_id| NewEvent {
                        user_id,
                        kind: "draft.state",
                        data: data.clone(),
                    })
                    .collect()
            }
            None => Vec::new(),
        },
    })
}

/// A chunked transcription's progress, `{done, total}`, or null.
pub fn chunks(done: Option<i64>, total: Option<i64>) -> serde_json::Value {
    match (done, total) {
        (Some(done), Some(total)) => json!({ "done": done, "total": total }),
        _ => serde_json::Value::Null,
    }
}

impl EventBus {
    /// Publishes what `subject` is now to everyone who follows it (after the change was
    /// committed). Best effort, as [`EventBus::publish`].
    pub async fn publish_state(&self, db: &Db, subject: &Subject) {
        match snapshot(db, subject).await {
            Ok(events) => {
                for event in events {
                    self.publish(event).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "no event: the record could not be read"),
        }
    }
}

//! What Tend's clients read of their own data: the API's response bodies (with the field
//! types they use), built from the stored rows.
//!
//! They live apart from the API so that the personal data export (`data_export`, a worker
//! job) writes each record exactly as its owner reads it through the API, through the same
//! types and the same JSON encoding, field for field, without the worker linking the API.

pub mod account;
pub mod exports;
pub mod fields;
pub mod missions;
pub mod patients;
pub mod sessions;

use std::fmt;

use chrono::{DateTime, Utc};
use poem_openapi::types::ParseFromJSON;

/// Converts stored milliseconds to a timestamp.
pub fn ms_to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A stored value that does not read as its view: a bug or a hand-edited row, never the
/// client's doing.
#[derive(Debug)]
pub struct Unreadable(pub String);

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreadable {}

/// The stored JSON `raw` (named `what`) as its view type.
fn parse_stored<T: ParseFromJSON>(what: &str, raw: &str) -> Result<T, Unreadable> {
    let value: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| Unreadable(format!("stored {what} unreadable: {e}")))?;
    T::parse_from_json(Some(value))
        .map_err(|e| Unreadable(format!("stored {what} unreadable: {}", e.into_message())))
}

//! Keyset pagination shared by the list operations: `limit` (1-100, default 20) and an
//! opaque `cursor` (the last id of the previous page; ids are time-ordered UUID v7), so
//! pages stay stable while rows are added.

use tend_shared::domain::FieldError;

use crate::error::{ApiError, ApiResult};

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest page size.
pub const MAX_LIMIT: i64 = 100;

/// A checked page request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Rows to return.
    pub limit: i64,
    /// Only rows after this one.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// Checks `limit` and `cursor`; a 422 names each bad one.
    pub fn parse(limit: Option<i64>, cursor: Option<String>) -> ApiResult<Self> {
        let mut errors = Vec::new();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let cursor = cursor.filter(|c| !c.is_empty());
        if let Some(c) = &cursor
            && uuid::Uuid::parse_str(c).is_err()
        {
            errors.push(FieldError::new(
                "cursor",
                "is not a cursor from a previous page",
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(Self { limit, cursor })
    }

    /// Rows to ask the database for: one more than the page, to know if another follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }

    /// Trims the extra row and returns the next cursor if there is a next page.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        id: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next = if more { rows.last().map(id) } else { None };
        (rows, next)
    }
}

//! The SQL pieces the ledger's many-row statements share: id lists padded to a power of two
//! (so statements are prepared once per size class), fences naming attempts, and how row
//! locks are taken on PostgreSQL.

use super::*;

/// The condition "the row is the attempt named by one of the `n` fence parameters": the ids
/// from `$first` on (locked like [`listed`]), then the tokens `id:claims` after them. Bind with
/// [`bind_attempts`].
pub(super) fn fenced(db: &Db, first: usize, n: usize) -> String {
    format!(
        "{} AND (id || ':' || claims) IN ({})",
        listed(db, first, n, Lock::InOrder),
        id_list(first + n.next_power_of_two(), n)
    )
}

/// Binds the ids, then the tokens, of `attempts`, padded like [`id_list`].
pub(super) fn bind_attempts<'q, Q: BindId<'q>>(query: Q, attempts: &[Attempt]) -> Q {
    let ids = attempts.iter().map(|a| a.job_id.clone()).collect();
    let query = bind_padded(query, ids);
    bind_padded(query, attempts.iter().map(Attempt::fence).collect())
}

/// How a statement that changes many jobs takes their row locks on PostgreSQL. Every such
/// statement either locks in id order or skips what is locked, so two of them never wait for
/// each other in a cycle (each such deadlock cost a second, measured, before PostgreSQL broke
/// it). SQLite has one writer at a time and no row locks: nothing to add there.
#[derive(Clone, Copy)]
pub(super) enum Lock {
    /// Wait for locked rows, taking locks in id order.
    InOrder,
    /// Leave locked rows to whoever holds them (work that another relay does as well).
    Skip,
}

/// The condition "the row is one of those `select` picks". On PostgreSQL the sub-select locks
/// its rows as `lock` says and runs once, its ids then found through the primary key: as a
/// plain `IN (…)`, stale statistics right after a bulk insert made the planner re-run it for
/// each of 20,000 rows (half a second per statement, measured).
pub(super) fn picked(db: &Db, select: &str, lock: Lock) -> String {
    if crate::db::is_postgres(db) {
        let clause = match lock {
            Lock::InOrder => "ORDER BY id FOR UPDATE",
            Lock::Skip => "FOR UPDATE SKIP LOCKED",
        };
        format!("id = ANY(ARRAY({select} {clause}))")
    } else {
        format!("id IN ({select})")
    }
}

/// The rows named by `n` id parameters from `$first` on ([`picked`]).
pub(super) fn listed(db: &Db, first: usize, n: usize, lock: Lock) -> String {
    let ids = id_list(first, n);
    if crate::db::is_postgres(db) {
        picked(
            db,
            &format!("SELECT id FROM jobs WHERE id IN ({ids})"),
            lock,
        )
    } else {
        format!("id IN ({ids})")
    }
}

/// `$first, $first+1, …` for a list of `n` ids, padded to the next power of two so that a
/// handful of statement texts (and prepared statements) serve every batch size.
pub(super) fn id_list(first: usize, n: usize) -> String {
    (0..n.next_power_of_two())
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds `ids` padded like [`id_list`] (repeating the last id, which changes nothing).
pub(super) fn bind_ids<'q, Q: BindId<'q>>(mut query: Q, ids: &'q [String]) -> Q {
    let last = ids.last().expect("callers check for an empty list");
    for id in ids {
        query = query.bind_id(id);
    }
    for _ in ids.len()..ids.len().next_power_of_two() {
        query = query.bind_id(last);
    }
    query
}

/// Binds owned `values` padded like [`id_list`] (repeating the last).
pub(super) fn bind_padded<'q, Q: BindId<'q>>(mut query: Q, values: Vec<String>) -> Q {
    let n = values.len();
    let last = values
        .last()
        .cloned()
        .expect("callers check for an empty list");
    for value in values {
        query = query.bind_text(value);
    }
    for _ in n..n.next_power_of_two() {
        query = query.bind_text(last.clone());
    }
    query
}

/// The three sqlx query types share no bind trait; this lets [`bind_ids`] serve them all.
pub(super) trait BindId<'q>: Sized {
    fn bind_id(self, id: &'q str) -> Self;
    fn bind_text(self, value: String) -> Self;
}

impl<'q> BindId<'q> for sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    fn bind_id(self, id: &'q str) -> Self {
        self.bind(id)
    }
    fn bind_text(self, value: String) -> Self {
        self.bind(value)
    }
}

impl<'q, O> BindId<'q> for sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    fn bind_id(self, id: &'q str) -> Self {
        self.bind(id)
    }
    fn bind_text(self, value: String) -> Self {
        self.bind(value)
    }
}

impl<'q, O> BindId<'q> for sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    fn bind_id(self, id: &'q str) -> Self {
        self.bind(id)
    }
    fn bind_text(self, value: String) -> Self {
        self.bind(value)
    }
}

//! `Idempotency-Key` on creating requests. A retry with the same key and the same request
//! answers what the first made and starts nothing; the same key with a different request is a
//! 422 naming the clash (Stripe's rule), so a client that reuses keys by mistake learns it
//! instead of being answered with somebody else's resource. Keys are matched per account. The
//! header's form (`^[!-~]{1,255}$`) is checked for every operation by the middleware.

use tend_shared::{
    auth::opaque,
    db::idempotency::{self as keyed, KeyedRecord},
    jobs::JobTx,
};

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

/// A creating request sent with an `Idempotency-Key`: the key, and the fingerprint of what
/// the request asked for (stored beside the key, compared on a retry).
pub struct KeyedRequest {
    /// The key as sent.
    pub key: String,
    /// `fingerprint` of the request.
    pub fingerprint: String,
}

impl KeyedRequest {
    /// `key` with the fingerprint of `request`, which is only built when a key was sent.
    pub fn new(key: Option<String>, request: impl FnOnce() -> serde_json::Value) -> Option<Self> {
        key.map(|key| Self {
            key,
            fingerprint: fingerprint(&request()),
        })
    }
}

/// The fingerprint of a request: SHA-256 of its parameters as canonical JSON (object keys
/// sorted), so the same request spelt in another key order matches.
fn fingerprint(request: &serde_json::Value) -> String {
    opaque::digest(&request.to_string())
}

/// What a creating request answers with: the record it made, or the one an earlier request
/// with the same key made (which the route answers `200` instead of `201`/`202`).
pub enum Created<R> {
    /// Made by this request.
    New(R),
    /// Made by an earlier request with the same key.
    Replayed(R),
}

/// The record an earlier request with `keyed`'s key made, if any: the cheap check before a
/// creating request spends a budget or validates. A 422 when that request asked for
/// something else.
pub async fn replayed<R: KeyedRecord>(
    state: &AppState,
    owner: &str,
    keyed: Option<&KeyedRequest>,
) -> ApiResult<Option<R>> {
    let Some(keyed) = keyed else {
        return Ok(None);
    };
    let Some(row) = R::find_by_key(&state.db, owner, &keyed.key).await? else {
        return Ok(None);
    };
    check_replay::<R>(state, row.id(), &keyed.fingerprint).await?;
    Ok(Some(row))
}

/// Ends the one sequence every creating route follows: in `tx` the route has enqueued the
/// job and written what goes with the record, and `inserted` is the outcome of inserting the
/// record (its last statement, under `keyed`'s key). On success the record is read back in
/// the transaction (so the answer shows it as stored, before a worker moves it on) and the
/// commit hands the job to the queue. When another request with the same key inserted first
/// (the unique index), the transaction is rolled back, job and all, and that request's record
/// is the answer.
pub async fn commit_created<R: KeyedRecord>(
    state: &AppState,
    mut tx: JobTx,
    inserted: sqlx::Result<()>,
    owner: &str,
    keyed: Option<&KeyedRequest>,
    id: &str,
) -> ApiResult<Created<R>> {
    if let Err(err) = inserted {
        return match keyed {
            Some(keyed) if R::is_key_clash(&err) => {
                drop(tx);
                let row = replayed::<R>(state, owner, Some(keyed))
                    .await?
                    .ok_or_else(|| {
                        ApiError::internal(format!(
                            "an idempotency key clashed with no {}",
                            R::WHAT
                        ))
                    })?;
                Ok(Created::Replayed(row))
            }
            _ => Err(err.into()),
        };
    }
    let row = R::find_in(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::internal(format!("a new {} vanished", R::WHAT)))?;
    tx.commit().await?;
    Ok(Created::New(row))
}

/// Whether the request fingerprinted `fingerprint` may be answered with record `id`, which
/// an earlier request with its key made: yes when that request was the same (or made before
/// fingerprints were kept), a 422 otherwise.
async fn check_replay<R: KeyedRecord>(
    state: &AppState,
    id: &str,
    fingerprint: &str,
) -> ApiResult<()> {
    match keyed::recorded::<R>(&state.db, id).await? {
        Some(recorded) if recorded != fingerprint => Err(ApiError::invalid_field(
            "Idempotency-Key",
            "was used for a different request; send a new key for a new request",
        )),
        _ => Ok(()),
    }
}

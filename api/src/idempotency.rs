//! `Idempotency-Key` on creating requests. A retry with the same key and the same request
//! answers what the first made and starts nothing; the same key with a different request is a
//! 422 naming the clash (Stripe's rule), so a client that reuses keys by mistake learns it
//! instead of being answered with somebody else's resource. Keys are matched per account. The
//! header's form (`^[!-~]{1,255}$`) is checked for every operation by the middleware.

use tend_shared::{
    auth::opaque,
    db::idempotency::{self as keyed, Keyed},
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

/// Whether the request fingerprinted `fingerprint` may be answered with resource `id`, which
/// an earlier request with its key made: yes when that request was the same (or made before
/// fingerprints were kept), a 422 otherwise.
pub async fn check_replay(
    state: &AppState,
    keyed: Keyed,
    id: &str,
    fingerprint: &str,
) -> ApiResult<()> {
    match keyed::recorded(&state.db, keyed, id).await? {
        Some(recorded) if recorded != fingerprint => Err(ApiError::invalid_field(
            "Idempotency-Key",
            "was used for a different request; send a new key for a new request",
        )),
        _ => Ok(()),
    }
}

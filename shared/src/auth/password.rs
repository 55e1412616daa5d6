//! Argon2id password hashing with OWASP's parameters (19 MiB, 2 passes, 1 lane).
//!
//! Hashing takes tens of milliseconds of CPU and 19 MiB of memory on purpose. The API hashes
//! through a [`Hasher`]: a fixed number of threads fed by a bounded queue, so a burst of
//! unauthenticated requests (register, login, reset) waits in the queue and past it is refused
//! (503 with `Retry-After`) instead of growing the process without bound.
//!
//! Each thread allocates Argon2's 19 MiB of working memory once and reuses it for every hash.
//! Allocating it per hash (what `argon2`'s `hash_password` does) made glibc keep freed blocks:
//! its mmap threshold rises to the size of the first freed block, later blocks come from the
//! thread's arena, and fragmentation kept 300-430 MB after 300 hashes on two threads
//! (measured; with `MALLOC_MMAP_THRESHOLD_` fixed it stayed at 30 MB). With the memory held,
//! the ceiling is `threads x 19 MiB`, whatever the allocator does.

use std::sync::{Arc, LazyLock, Mutex, mpsc};

use argon2::{
    Block,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use rand::RngCore;

use crate::config::HashingLimits;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier},
};

/// OWASP Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1.
fn params() -> Params {
    Params::new(19_456, 2, 1, None).expect("valid Argon2 parameters")
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// Why a hash was not computed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every thread is busy and the queue is full: try again shortly.
    #[error("password hashing is at capacity")]
    Busy,
    /// The hasher failed (a bug, or its threads are gone).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// A hash to compute on a hashing thread, with that thread's working memory.
type Work = Box<dyn FnOnce(&mut [Block]) + Send>;

/// Password hashing on `threads` dedicated threads with a queue of `queue` waiting hashes.
#[derive(Clone)]
pub struct Hasher {
    work: mpsc::SyncSender<Work>,
}

impl Hasher {
    /// Starts the threads; they stop when the last clone is dropped.
    pub fn start(limits: HashingLimits) -> anyhow::Result<Self> {
        let (work, queue) = mpsc::sync_channel::<Work>(limits.queue);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..limits.threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    let mut memory = vec![Block::default(); params().block_count()];
                    loop {
                        // The lock is held only while waiting for the next hash.
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match next {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self { work })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Work = Box::new(move |memory| {
            let _ = done.send(f(memory));
        });
        self.work.try_send(job).map_err(|err| match err {
            mpsc::TrySendError::Full(_) => HashError::Busy,
            mpsc::TrySendError::Disconnected(_) => {
                HashError::Failed(anyhow::anyhow!("the password-hashing threads have stopped"))
            }
        })?;
        result
            .await
            .map_err(|_| HashError::Failed(anyhow::anyhow!("a password hash was lost")))
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |memory| hash_with(memory, &password))
            .await?
            .map_err(HashError::Failed)
    }

    /// Checks a password against a stored PHC string. Wrong password and corrupt hash both
    /// say no.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, HashError> {
        self.run(move |memory| verify_with(memory, &password, &phc))
            .await
    }

    /// Spends the same time as a real check, for logins with an unknown email, so response
    /// time does not tell which addresses have accounts.
    pub async fn verify_dummy(&self, password: String) -> Result<(), HashError> {
        self.run(move |memory| {
            verify_with(memory, &password, &DUMMY);
        })
        .await
    }
}

/// A hash of a fixed password, for [`Hasher::verify_dummy`].
static DUMMY: LazyLock<String> =
    LazyLock::new(|| hash_now("dummy password for timing").unwrap_or_default());

fn hash_now(password: &str) -> anyhow::Result<String> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

/// Hashes with `memory` as Argon2's working memory: the PHC string `hash_password` makes.
fn hash_with(memory: &mut [Block], password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; argon2::RECOMMENDED_SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    let argon = hasher();
    argon
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?;
    let phc = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: ParamsString::try_from(&params())
            .map_err(|e| anyhow::anyhow!("encoding parameters: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Checks `password` against `phc` with `memory` as working memory (hashes made with larger
/// parameters than ours allocate their own).
fn verify_with(memory: &mut [Block], password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(params), Some(salt), Some(expected)) = (
        argon2::Params::try_from(&parsed),
        parsed.salt.as_ref(),
        parsed.hash.as_ref(),
    ) else {
        return false;
    };
    let (Ok(algorithm), Some(Ok(version))) = (
        argon2::Algorithm::try_from(parsed.algorithm.as_str()),
        parsed.version.map(argon2::Version::try_from),
    ) else {
        return false;
    };
    let argon = argon2::Argon2::new(algorithm, version, params.clone());
    if params.block_count() > memory.len() {
        return argon.verify_password(password.as_bytes(), phc).is_ok();
    }
    let mut out = vec![0u8; expected.len()];
    let computed = argon.hash_password_into_with_memory(
        password.as_bytes(),
        salt.as_ref(),
        &mut out,
        &mut memory[..params.block_count()],
    );
    // `Output`'s comparison takes the same time whatever the bytes.
    computed.is_ok() && Output::new(&out).is_ok_and(|out| &out == expected)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) on the
/// blocking pool: for commands run from the shell, one at a time. The API uses [`Hasher`].
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_now(&password)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(threads: usize, queue: usize) -> HashingLimits {
        HashingLimits { threads, queue }
    }

    #[tokio::test]
    async fn hashes_verify_and_use_argon2id_with_owasp_parameters() {
        let hasher = Hasher::start(limits(1, 4)).unwrap();
        let phc = hasher.hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify("correct horse battery".into(), phc.clone())
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse battery".into(), phc)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_made_with_held_memory_verify_like_the_librarys_own() {
        let hasher = Hasher::start(limits(1, 4)).unwrap();
        // Ours, checked by the library; the library's, checked by ours.
        let ours = hasher.hash("correct horse battery".into()).await.unwrap();
        assert!(hasher_verifies_with_library(&ours, "correct horse battery"));
        let theirs = hash("correct horse battery".into()).await.unwrap();
        assert!(
            hasher
                .verify("correct horse battery".into(), theirs.clone())
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("correct horse batterY".into(), theirs)
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("x".into(), "not a hash".into())
                .await
                .unwrap()
        );
    }

    fn hasher_verifies_with_library(phc: &str, password: &str) -> bool {
        super::hasher()
            .verify_password(password.as_bytes(), phc)
            .is_ok()
    }

    #[tokio::test]
    async fn hashes_past_the_threads_and_the_queue_are_refused_not_queued_without_bound() {
        let hasher = Hasher::start(limits(1, 2)).unwrap();
        let attempts = (0..12).map(|_| hasher.hash("correct horse battery".into()));
        let results = futures::future::join_all(attempts).await;
        let done = results.iter().filter(|r| r.is_ok()).count();
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(HashError::Busy)))
            .count();
        // One running and two waiting (one more if the thread took one meanwhile).
        assert!((1..=4).contains(&done), "{done} hashed");
        assert_eq!(done + busy, 12);
    }
}

//! Argon2id password hashing with OWASP's parameters (19 MiB, 2 passes, 1 lane).
//!
//! Hashing takes tens of milliseconds of CPU and 19 MiB of memory on purpose. The API hashes
//! through a [`Hasher`]: a fixed number of threads fed by a bounded queue. So a burst of
//! unauthenticated requests (register, login, reset) costs at most `threads x 19 MiB` at once,
//! waits in the queue, and past the queue is refused (503 with `Retry-After`) instead of
//! growing the process without bound. Few threads also means few allocator arenas: glibc keeps
//! one per thread that allocated, and the blocking pool's hundreds of threads kept gigabytes
//! after a burst.

use std::sync::{Arc, LazyLock, Mutex, mpsc};

use crate::config::HashingLimits;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier},
};

fn hasher() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1.
    let params = Params::new(19_456, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
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

type Work = Box<dyn FnOnce() + Send>;

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
                    loop {
                        // The lock is held only while waiting for the next hash.
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self { work })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Work = Box::new(move || {
            let _ = done.send(f());
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
        self.run(move || hash_now(&password))
            .await?
            .map_err(HashError::Failed)
    }

    /// Checks a password against a stored PHC string. Wrong password and corrupt hash both
    /// say no.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, HashError> {
        self.run(move || verify_now(&password, &phc)).await
    }

    /// Spends the same time as a real check, for logins with an unknown email, so response
    /// time does not tell which addresses have accounts.
    pub async fn verify_dummy(&self, password: String) -> Result<(), HashError> {
        self.run(move || {
            verify_now(&password, &DUMMY);
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

fn verify_now(password: &str, phc: &str) -> bool {
    hasher().verify_password(password.as_bytes(), phc).is_ok()
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

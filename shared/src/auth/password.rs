//! Argon2id password hashing with OWASP's parameters (19 MiB, 2 passes, 1 lane).
//!
//! Hashing takes tens of milliseconds of CPU on purpose, so it runs on the blocking pool and
//! never stalls the async threads that serve other requests.

use std::sync::LazyLock;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier},
};

fn hasher() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1.
    let params = Params::new(19_456, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        hasher()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
}

/// Checks a password against a stored PHC string. Wrong password and corrupt hash both say no.
pub async fn verify(password: String, phc: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        Ok(hasher()
            .verify_password(password.as_bytes(), phc.as_str())
            .is_ok())
    })
    .await?
}

/// Spends the same time as a real check, for logins with an unknown email, so response time
/// does not tell which addresses have accounts.
pub async fn verify_dummy(password: String) {
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        hasher()
            .hash_password(b"dummy password for timing")
            .map(|h| h.to_string())
            .unwrap_or_default()
    });
    let phc = tokio::task::spawn_blocking(|| DUMMY.clone())
        .await
        .unwrap_or_default();
    let _ = verify(password, phc).await;
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_use_argon2id_with_owasp_parameters() {
        let phc = super::hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            super::verify("correct horse battery".into(), phc.clone())
                .await
                .unwrap()
        );
        assert!(
            !super::verify("wrong horse battery".into(), phc)
                .await
                .unwrap()
        );
    }
}

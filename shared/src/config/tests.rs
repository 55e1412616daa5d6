//! The settings read from a made-up environment: defaults, each variable, and the refusals.

use super::*;
use std::collections::HashMap;

fn settings(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn queues_and_their_concurrency_come_from_the_environment() {
    let data = std::env::temp_dir().join(format!("tend-cfg-{}", uuid::Uuid::new_v4()));
    let data = data.to_str().unwrap();
    let all = settings(&[("DATA_DIR", data), ("JWT_SECRET", "x")]).unwrap();
    assert_eq!(all.worker_queues, Queue::ALL.to_vec());
    assert_eq!(all.concurrency(Queue::Email), 4);

    let some = settings(&[
        ("DATA_DIR", data),
        ("JWT_SECRET", "x"),
        ("WORKER_QUEUES", "transcription, extraction,transcription"),
        ("WORKER_CONCURRENCY", "3"),
        ("WORKER_CONCURRENCY_TRANSCRIPTION", "1"),
    ])
    .unwrap();
    assert_eq!(
        some.worker_queues,
        [Queue::Transcription, Queue::Extraction]
    );
    assert_eq!(some.concurrency(Queue::Transcription), 1);
    assert_eq!(some.concurrency(Queue::Extraction), 3);

    let unknown = settings(&[("DATA_DIR", data), ("WORKER_QUEUES", "emails")]).unwrap_err();
    assert!(
        unknown.to_string().contains("unknown queue \"emails\""),
        "{unknown}"
    );
    let zero = settings(&[("DATA_DIR", data), ("WORKER_CONCURRENCY_EMAIL", "0")]).unwrap_err();
    assert!(
        zero.to_string().contains("WORKER_CONCURRENCY_EMAIL"),
        "{zero}"
    );
    std::fs::remove_dir_all(data).ok();
}

#[test]
fn production_refuses_a_missing_secret() {
    let err = settings(&[("TEND_ENV", "production")]).unwrap_err();
    assert!(err.to_string().contains("JWT_SECRET is required"));
}

#[test]
fn production_refuses_to_write_mail_to_files() {
    let err = settings(&[("TEND_ENV", "production"), ("JWT_SECRET", &"k".repeat(40))]).unwrap_err();
    assert!(err.to_string().contains("SMTP_URL is required"));
    let ok = settings(&[
        ("TEND_ENV", "production"),
        ("JWT_SECRET", &"k".repeat(40)),
        ("SMTP_URL", "smtp://mail:25"),
    ]);
    assert!(ok.is_ok());
}

#[test]
fn production_refuses_a_short_or_placeholder_secret() {
    let short = settings(&[
        ("TEND_ENV", "production"),
        ("JWT_SECRET", "abc"),
        ("SMTP_URL", "smtp://mail:25"),
    ])
    .unwrap_err();
    assert!(short.to_string().contains("at least 32 bytes"));
    let weak = settings(&[
        ("TEND_ENV", "production"),
        ("JWT_SECRET", "changeme-changeme-changeme-changeme"),
        ("SMTP_URL", "smtp://mail:25"),
    ])
    .unwrap_err();
    assert!(weak.to_string().contains("placeholder"));
}

#[test]
fn development_generates_a_secret_once_and_keeps_it() {
    let dir = std::env::temp_dir().join(format!("tend-cfg-{}", uuid::Uuid::new_v4()));
    let dir_s = dir.to_str().unwrap();
    let first = settings(&[("DATA_DIR", dir_s)]).unwrap();
    let second = settings(&[("DATA_DIR", dir_s)]).unwrap();
    assert_eq!(
        first.jwt_secret.expose_secret(),
        second.jwt_secret.expose_secret()
    );
    assert!(first.jwt_secret.expose_secret().len() >= 32);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn unset_public_urls_follow_the_address_the_api_listens_on() {
    let data = std::env::temp_dir().join("tend-config-urls");
    let data = data.to_str().unwrap();
    let any = settings(&[("DATA_DIR", data), ("BIND_ADDR", "0.0.0.0:9000")]).unwrap();
    assert_eq!(any.public_url.as_str(), "http://127.0.0.1:9000/");
    let bound = any.listening_on(43_210);
    assert_eq!(bound.public_url.as_str(), "http://127.0.0.1:43210/");
    assert_eq!(bound.app_url.as_str(), "http://127.0.0.1:43210/");
    let v6 = settings(&[("DATA_DIR", data), ("BIND_ADDR", "[::]:8080")]).unwrap();
    assert_eq!(v6.public_url.as_str(), "http://[::1]:8080/");
    // What was set stays as it was.
    let set = settings(&[
        ("DATA_DIR", data),
        ("BIND_ADDR", "0.0.0.0:0"),
        ("PUBLIC_URL", "https://api.example.org"),
    ])
    .unwrap()
    .listening_on(43_210);
    assert_eq!(set.public_url.as_str(), "https://api.example.org/");
    assert_eq!(set.app_url.as_str(), "https://api.example.org/");
}

#[test]
fn a_bad_value_names_its_variable() {
    let err = settings(&[("JWT_SECRET", &"k".repeat(40)), ("BIND_ADDR", "nope")]).unwrap_err();
    assert!(err.to_string().contains("BIND_ADDR"));
}

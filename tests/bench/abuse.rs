//! What an unauthenticated attacker costs the real `tend-api` release binary (embedded mode):
//!
//! 1. Password hashing: 300 requests that each ask for an Argon2 hash (registrations, logins
//!    of unknown and known addresses), 64 at a time, plus 300 resets with made-up tokens.
//!    Prints the answers by status, the API's RSS before, its peak (VmHWM) and its RSS after.
//!    Target: peak under 300 MB, memory handed back after the burst.
//! 2. Stalled connections: `ABUSE_STALLED` (5,000) connections that send half a request
//!    line. Prints how long `/health` takes meanwhile and when the server had closed them all.
//!
//! `cargo build --release -p tend-app && cargo bench -p tend-tests --bench abuse`
//! (the binary is built first because `cargo bench` holds the build directory).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use serde_json::json;
use tend_tests::status_kib;
use tokio::{io::AsyncReadExt, io::AsyncWriteExt, net::TcpStream};

#[tokio::main]
async fn main() {
    let stalled: usize = std::env::var("ABUSE_STALLED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    // The bench holds its side of every stalled connection.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut api = spawn_api(&api_bin(), data.path(), port);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    let pid = Some(api.id());
    let mib = |kib: u64| kib as f64 / 1024.0;
    let idle = status_kib(pid, "VmRSS");

    // A known account, for logins with a wrong password.
    let known = "known@example.org";
    let resp = post(
        &client,
        &base,
        "register",
        json!({"email": known, "password": "correct horse battery", "role": "patient"}),
    )
    .await;
    assert_eq!(resp, 201);

    let started = Instant::now();
    let requests = (0..300).map(|i| match i % 3 {
        0 => ("register", json!({"email": format!("bench-{i}@example.org"), "password": "correct horse battery", "role": "patient"})),
        1 => ("login", json!({"email": format!("nobody-{i}@example.org"), "password": "some guess at a password"})),
        _ => ("login", json!({"email": known, "password": format!("wrong guess {i}")})),
    });
    let resets = (0..300).map(|i| {
        (
            "reset-password",
            json!({"token": format!("made-up-{i}"), "new_password": "a brand new passphrase"}),
        )
    });
    let statuses: Vec<u16> = stream::iter(requests.chain(resets))
        .map(|(path, body)| {
            let client = client.clone();
            let base = base.clone();
            async move { post(&client, &base, path, body).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let burst = started.elapsed();
    let peak = status_kib(pid, "VmHWM");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = status_kib(pid, "VmRSS");
    let mut counts = std::collections::BTreeMap::new();
    for status in statuses {
        *counts.entry(status).or_insert(0) += 1;
    }
    println!("tend-api (release, embedded), 600 unauthenticated requests, 64 at a time:");
    println!("  300 that hash (register, login unknown, login wrong) and 300 made-up resets");
    println!(
        "  answers by status: {counts:?}, in {:.1} s",
        burst.as_secs_f64()
    );
    println!(
        "  RSS: {:.1} MiB before, {:.1} MiB peak (VmHWM), {:.1} MiB 2 s after",
        mib(idle),
        mib(peak),
        mib(after)
    );

    // Stalled connections.
    let mut held = Vec::with_capacity(stalled);
    let opening = Instant::now();
    for _ in 0..stalled {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(mut stream) => {
                let _ = stream.write_all(b"GET /hea").await;
                held.push(stream);
            }
            Err(err) => {
                println!(
                    "  could not open more than {} connections: {err}",
                    held.len()
                );
                break;
            }
        }
    }
    let opened = held.len();
    let asked = Instant::now();
    let health = client.get(format!("{base}/health")).send().await;
    let health_ms = asked.elapsed().as_secs_f64() * 1000.0;
    let health = health.map(|r| r.status().as_u16()).unwrap_or(0);
    let closed = stream::iter(held)
        .map(|mut stream| async move {
            let mut buf = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await;
        })
        .buffer_unordered(10_000)
        .count()
        .await;
    println!(
        "  {opened} stalled connections: /health answered {health} in {health_ms:.1} ms meanwhile; all {closed} closed by the server {:.1} s after opening",
        opening.elapsed().as_secs_f64()
    );
    println!(
        "  RSS with them: peak {:.1} MiB (VmHWM)",
        mib(status_kib(pid, "VmHWM"))
    );
    let _ = api.kill();
    let _ = api.wait();
}

async fn post(client: &reqwest::Client, base: &str, path: &str, body: serde_json::Value) -> u16 {
    client
        .post(format!("{base}/api/v1/auth/{path}"))
        .json(&body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(resp) = client.get(format!("{base}/ready")).send().await
            && resp.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tend-api did not become ready");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The release API binary, built beforehand.
fn api_bin() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let bin = target.join("release/tend-api");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release -p tend-app` first",
        bin.display()
    );
    bin
}

fn spawn_api(bin: &PathBuf, data: &std::path::Path, port: u16) -> Child {
    Command::new(bin)
        .env_clear()
        .env("DATA_DIR", data)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("REGISTER_RATE_LIMIT_PER_HOUR", "100000")
        .env("LOGIN_RATE_LIMIT_PER_MINUTE", "100000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tend-api")
}

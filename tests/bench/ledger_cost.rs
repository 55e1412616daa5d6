//! What the ledger's hot reads cost as history grows (issue 19): the queue figures every
//! metrics scrape and admin page reads, the relay's in-flight count and its newest-claimed
//! dispatch check. Seeds the ledger with finished jobs in steps (10,000, 100,000, 1,000,000 by
//! default) beside a few hundred live ones, and prints each read's p50 and p99 at each size.
//! Goal: at most 5 ms each at 1M rows on PostgreSQL, flat from 10k to 1M.
//!
//! `eval "$(.ci/services)"` then `cargo bench -p tend-tests --bench ledger_cost` (PostgreSQL;
//! without `TEST_DATABASE_URL` it runs on SQLite). `LEDGER_STEPS=10000,100000` sets the sizes.

use std::time::Instant;

use tend_shared::db;
use tend_tests::{AppOptions, spawn_app_with};

const RUNS: usize = 200;

/// p50 and p99 in milliseconds of `RUNS` runs of `read`.
async fn timed<F, Fut, T>(mut read: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<T>>,
{
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        read().await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[RUNS / 2], times[RUNS * 99 / 100])
}

#[tokio::main]
async fn main() {
    let steps: Vec<i64> = std::env::var("LEDGER_STEPS")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("LEDGER_STEPS: numbers"))
        .collect();
    let app = spawn_app_with(AppOptions {
        api_only: true,
        ..Default::default()
    })
    .await;
    let pg = db::is_postgres(&app.db);
    let now = db::now_ms();
    // A few hundred live jobs and the last hour's 3,600 done ones, as a busy installation
    // has, whatever its history.
    seed(&app.db, pg, 0, 300, "pending", now).await;
    seed(&app.db, pg, 0, 3_600, "recent", now).await;
    println!("backend: {}", if pg { "PostgreSQL" } else { "SQLite" });
    println!(
        "| finished jobs | queue figures p50 / p99 | in-flight count | newest claimed dispatch \
         | before: whole-ledger figures | before: one MAX over running and done |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut seeded = 0;
    for step in steps {
        seed(&app.db, pg, seeded, step - seeded, "done", now).await;
        seeded = step;
        if pg {
            sqlx::query("ANALYZE jobs").execute(&app.db).await.unwrap();
        }
        let counts = timed(|| db::job_admin::queue_counts(&app.db, db::now_ms())).await;
        let in_flight = timed(|| db::jobs::in_flight(&app.db, "email")).await;
        let latest = timed(|| db::jobs::latest_claimed_dispatch(&app.db, "email")).await;
        // The reads as they were before issue 19, for the side-by-side figure.
        let old_counts = timed(|| {
            sqlx::query(
                "SELECT queue, SUM(CASE WHEN state = 'done' AND finished_at >= $1 THEN 1 \
                 ELSE 0 END), SUM(CASE WHEN state IN ('pending', 'failed') THEN 1 ELSE 0 END) \
                 FROM jobs GROUP BY queue",
            )
            .bind(db::now_ms() - 3_600_000)
            .fetch_all(&app.db)
        })
        .await;
        let old_latest = timed(|| {
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT MAX(dispatched_at) FROM jobs WHERE queue = $1 \
                 AND state IN ('running', 'done')",
            )
            .bind("email")
            .fetch_one(&app.db)
        })
        .await;
        println!(
            "| {step} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms \
             | {:.2} / {:.2} ms |",
            counts.0,
            counts.1,
            in_flight.0,
            in_flight.1,
            latest.0,
            latest.1,
            old_counts.0,
            old_counts.1,
            old_latest.0,
            old_latest.1
        );
    }
}

/// Inserts `n` email jobs numbered from `from`: `pending`, `recent` (done within the last
/// hour, one a second) or `done` (finished between an hour and 15 days ago, spread evenly).
async fn seed(db: &db::Db, pg: bool, from: i64, n: i64, state: &str, now: i64) {
    let series = if pg {
        "SELECT g AS n FROM generate_series(1, $1) AS g"
    } else {
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) \
         SELECT n FROM s"
    };
    let sql = format!(
        "INSERT INTO jobs (id, kind, queue, payload, state, attempts, max_attempts, run_at, \
         dispatched_at, worker, created_at, started_at, finished_at, updated_at, claims) \
         SELECT 'bench-' || $3 || '-' || CAST(n + $2 AS TEXT), 'send_email', 'email', '{{}}', \
         CASE WHEN $3 = 'pending' THEN 'pending' ELSE 'done' END, 1, 10, \
         $4 - n * 1000, $4 - n * 1000, 'bench', $4 - n * 1000, $4 - n * 1000, \
         CASE WHEN $3 = 'recent' THEN $4 - n * 1000 \
         WHEN $3 = 'done' THEN $4 - 3600000 - ((n + $2) * 7919 % 1209600) * 1000 END, $4, 1 \
         FROM ({series}) AS s"
    );
    let mut left = n;
    let mut start = from;
    while left > 0 {
        let chunk = left.min(50_000);
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(chunk)
            .bind(start)
            .bind(state)
            .bind(now)
            .execute(db)
            .await
            .unwrap();
        left -= chunk;
        start += chunk;
    }
}

//! Pick-up latency: how long a job waits between the commit that starts it and its handler's
//! first line, at a steady rate, the way requests start jobs (`JobTx`: enqueue in the
//! transaction, hand over on commit). The moment a handler starts is taken from the runner's
//! "job started" event through a tracing layer, so the figures are exact to the microsecond.
//!
//! `cargo bench -p tend-tests --bench latency` on the embedded backends;
//! `eval "$(.ci/services)"` first for PostgreSQL + Redis. `LATENCY_JOBS` (2,000) and
//! `LATENCY_RATE` (200 jobs/s) set the load. On Redis: one API process and one worker
//! process; embedded: the all-in-one process.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tend_shared::jobs::JobOrigin;
use tend_shared::jobs::kinds::email::{EmailTemplate, SendEmail};
use tend_tests::{AppOptions, env_or, spawn_app_with};
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{EnvFilter, Layer, layer::Context, prelude::*, registry::LookupSpan};

/// When each job's handler started, by job id.
type Starts = Arc<Mutex<HashMap<String, Instant>>>;

/// Records the instant of every "job started" event under its span's `job_id`.
struct StartRecorder {
    starts: Starts,
}

struct JobId(String);

#[derive(Default)]
struct Fields {
    job_id: Option<String>,
    message: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "job_id" => self.job_id = Some(format!("{value:?}")),
            "message" => self.message = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "job_id" => self.job_id = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            _ => {}
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for StartRecorder {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(job_id), Some(span)) = (fields.job_id, ctx.span(id)) {
            span.extensions_mut().insert(JobId(job_id));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let at = Instant::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.message.as_deref() != Some("job started") {
            return;
        }
        if let Some(span) = ctx.event_span(event)
            && let Some(JobId(id)) = span.extensions().get::<JobId>()
        {
            self.starts.lock().unwrap().insert(id.clone(), at);
        }
    }
}

#[tokio::main]
async fn main() {
    let total: usize = env_or("LATENCY_JOBS", 2_000);
    let rate: u64 = env_or("LATENCY_RATE", 200);
    let starts: Starts = Arc::default();
    tracing_subscriber::registry()
        .with(
            StartRecorder {
                starts: starts.clone(),
            }
            .with_filter(EnvFilter::new("tend_worker::runner=info")),
        )
        .init();

    // On Redis, a worker process of its own (woken through Redis); embedded, the one process
    // that runs everything, as `cargo run` does.
    let server_backends = std::env::var("TEST_REDIS_URL").is_ok();
    let app = spawn_app_with(AppOptions {
        api_only: server_backends,
        env: vec![("RUST_LOG".into(), "warn".into())],
    })
    .await;
    let worker = server_backends.then(|| app.spawn_worker(&[]));
    let relay = app.relay();
    tokio::time::sleep(Duration::from_secs(1)).await; // workers registered

    let mut committed: Vec<(String, Instant)> = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    for _ in 0..total {
        tick.tick().await;
        let mut tx = tend_shared::jobs::JobTx::begin(&relay).await.unwrap();
        let payload = SendEmail {
            user_id: uuid::Uuid::now_v7(),
            template: EmailTemplate::PasswordChanged,
            subject_id: None,
        };
        let job = tx.enqueue(&payload, &JobOrigin::default()).await.unwrap();
        let at = Instant::now();
        tx.commit().await.unwrap();
        committed.push((job.id, at));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while starts.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(worker) = worker {
        worker.terminate().await;
    }

    let starts = starts.lock().unwrap().clone();
    let never: Vec<&String> = committed
        .iter()
        .map(|(id, _)| id)
        .filter(|id| !starts.contains_key(*id))
        .collect();
    if !never.is_empty() {
        let first = tend_shared::db::jobs::find(&app.db, never[0])
            .await
            .unwrap();
        eprintln!("{} jobs never started, e.g. {first:?}", never.len());
    }
    let mut waits: Vec<Duration> = committed
        .iter()
        .filter_map(|(id, at)| starts.get(id).map(|s| s.saturating_duration_since(*at)))
        .collect();
    waits.sort();
    let pct = |p: f64| waits[((waits.len() as f64 * p) as usize).min(waits.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "pick-up latency on {}, {total} jobs at {rate} jobs/s, commit to the handler's first line",
        tend_tests::backends()
    );
    println!(
        "  started {} of {total}; p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        waits.len(),
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(*waits.last().unwrap())
    );
}

//! The daily rollups: `daily_stats` per practitioner, `daily_platform_stats` and
//! `daily_job_stats`, computed for one UTC day at a time, and the costs read beside them.

use super::*;

/// Counts of one practitioner (or of the platform) for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayCounts {
    pub recordings_uploaded: i64,
    pub recordings_processed: i64,
    pub recordings_failed: i64,
    pub audio_ms: i64,
    pub new_patients: i64,
    pub mood_sum: i64,
    pub mood_count: i64,
    pub cost_micro_usd: i64,
}

/// One kind's finished jobs of a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct JobDay {
    pub kind: String,
    pub done: i64,
    pub dead: i64,
    pub p95_run_ms: Option<i64>,
}

/// What one day's computation wrote.
#[derive(Debug, Clone, Default)]
pub struct DaySummary {
    /// Practitioners with a row.
    pub practitioners: usize,
    /// The platform-wide counts.
    pub platform: DayCounts,
    /// Users who registered.
    pub users_registered: i64,
    /// Job kinds with a row.
    pub job_kinds: usize,
}

/// The per-practitioner sums of the day: `(practitioner_id, value)` per query, merged.
const PER_PRACTITIONER: [(&str, &str); 8] = [
    (
        "recordings_uploaded",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM sessions \
         WHERE created_at >= $1 AND created_at < $2 GROUP BY practitioner_id",
    ),
    (
        "recordings_processed",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM sessions WHERE status = 'processed' \
         AND extraction_finished_at >= $1 AND extraction_finished_at < $2 GROUP BY practitioner_id",
    ),
    (
        "recordings_failed",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM sessions WHERE status = 'failed' \
         AND updated_at >= $1 AND updated_at < $2 GROUP BY practitioner_id",
    ),
    (
        "audio_ms",
        "SELECT practitioner_id AS id, CAST(SUM(duration_ms) AS BIGINT) AS value FROM sessions \
         WHERE source = 'audio' AND duration_ms IS NOT NULL AND transcription_finished_at >= $1 \
         AND transcription_finished_at < $2 GROUP BY practitioner_id",
    ),
    (
        "new_patients",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM patients \
         WHERE created_at >= $1 AND created_at < $2 GROUP BY practitioner_id",
    ),
    (
        "mood_sum",
        "SELECT practitioner_id AS id, CAST(SUM(mood_score) AS BIGINT) AS value \
         FROM session_metrics WHERE session_date >= $1 AND session_date < $2 \
         GROUP BY practitioner_id",
    ),
    (
        "mood_count",
        "SELECT practitioner_id AS id, COUNT(*) AS value FROM session_metrics \
         WHERE session_date >= $1 AND session_date < $2 GROUP BY practitioner_id",
    ),
    (
        "cost_micro_usd",
        "SELECT s.practitioner_id AS id, CAST(SUM(u.cost_micro_usd) AS BIGINT) AS value \
         FROM provider_usage u JOIN sessions s ON s.id = u.session_id \
         WHERE u.created_at >= $1 AND u.created_at < $2 GROUP BY s.practitioner_id",
    ),
];

#[derive(FromRow)]
struct IdValue {
    id: String,
    value: Option<i64>,
}

fn set(counts: &mut DayCounts, field: &str, value: i64) {
    match field {
        "recordings_uploaded" => counts.recordings_uploaded = value,
        "recordings_processed" => counts.recordings_processed = value,
        "recordings_failed" => counts.recordings_failed = value,
        "audio_ms" => counts.audio_ms = value,
        "new_patients" => counts.new_patients = value,
        "mood_sum" => counts.mood_sum = value,
        "mood_count" => counts.mood_count = value,
        _ => counts.cost_micro_usd = value,
    }
}

/// Every practitioner's counts for the period `[start, end)`.
pub async fn practitioner_counts(
    db: &Db,
    start: i64,
    end: i64,
) -> sqlx::Result<BTreeMap<String, DayCounts>> {
    let mut all: BTreeMap<String, DayCounts> = BTreeMap::new();
    for (field, sql) in PER_PRACTITIONER {
        let rows = sqlx::query_as::<_, IdValue>(sql)
            .bind(start)
            .bind(end)
            .fetch_all(db)
            .await?;
        for row in rows {
            set(
                all.entry(row.id).or_default(),
                field,
                row.value.unwrap_or(0),
            );
        }
    }
    Ok(all)
}

/// 95th percentile (nearest rank) of `values`, sorted in place.
pub fn p95(values: &mut [i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (values.len() * 95).div_ceil(100);
    Some(values[rank.max(1) - 1])
}

#[derive(FromRow)]
struct FinishedJob {
    kind: String,
    state: String,
    run_ms: Option<i64>,
}

/// Computes day `day` and replaces its rows.
pub async fn compute_day(db: &Db, day: NaiveDate) -> sqlx::Result<DaySummary> {
    let (start, end) = day_bounds(day);
    let label = day.to_string();
    let practitioners = practitioner_counts(db, start, end).await?;

    let mut platform = DayCounts::default();
    for c in practitioners.values() {
        platform.recordings_uploaded += c.recordings_uploaded;
        platform.recordings_processed += c.recordings_processed;
        platform.recordings_failed += c.recordings_failed;
        platform.audio_ms += c.audio_ms;
        platform.new_patients += c.new_patients;
        platform.mood_sum += c.mood_sum;
        platform.mood_count += c.mood_count;
    }
    // Every call counts for the platform, for a session or not.
    platform.cost_micro_usd = sqlx::query_scalar::<_, Option<i64>>(
        "SELECT CAST(SUM(cost_micro_usd) AS BIGINT) FROM provider_usage \
         WHERE created_at >= $1 AND created_at < $2",
    )
    .bind(start)
    .bind(end)
    .fetch_one(db)
    .await?
    .unwrap_or(0);
    let users_registered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE created_at >= $1 AND created_at < $2")
            .bind(start)
            .bind(end)
            .fetch_one(db)
            .await?;

    let finished = sqlx::query_as::<_, FinishedJob>(
        "SELECT kind, state, finished_at - started_at AS run_ms FROM jobs \
         WHERE state IN ('done', 'dead') AND finished_at >= $1 AND finished_at < $2",
    )
    .bind(start)
    .bind(end)
    .fetch_all(db)
    .await?;
    let mut by_kind: BTreeMap<String, (i64, i64, Vec<i64>)> = BTreeMap::new();
    for job in finished {
        let entry = by_kind.entry(job.kind).or_default();
        if job.state == "done" {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        entry.2.extend(job.run_ms.filter(|ms| *ms >= 0));
    }

    let computed_at = now_ms();
    let mut tx = db.begin().await?;
    for delete in [
        "DELETE FROM daily_stats WHERE day = $1",
        "DELETE FROM daily_platform_stats WHERE day = $1",
        "DELETE FROM daily_job_stats WHERE day = $1",
    ] {
        sqlx::query(delete).bind(&label).execute(&mut *tx).await?;
    }
    let mut written = 0;
    for (practitioner_id, c) in &practitioners {
        // A practitioner deleted meanwhile has no account to hang the row on: skipped.
        let inserted = sqlx::query(
            "INSERT INTO daily_stats (practitioner_id, day, recordings_uploaded, \
             recordings_processed, recordings_failed, audio_ms, new_patients, mood_sum, \
             mood_count, cost_micro_usd, computed_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
             WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)",
        )
        .bind(practitioner_id)
        .bind(&label)
        .bind(c.recordings_uploaded)
        .bind(c.recordings_processed)
        .bind(c.recordings_failed)
        .bind(c.audio_ms)
        .bind(c.new_patients)
        .bind(c.mood_sum)
        .bind(c.mood_count)
        .bind(c.cost_micro_usd)
        .bind(computed_at)
        .execute(&mut *tx)
        .await?;
        written += inserted.rows_affected() as usize;
    }
    sqlx::query(
        "INSERT INTO daily_platform_stats (day, users_registered, recordings_uploaded, \
         recordings_processed, recordings_failed, audio_ms, new_patients, mood_sum, mood_count, \
         cost_micro_usd, computed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&label)
    .bind(users_registered)
    .bind(platform.recordings_uploaded)
    .bind(platform.recordings_processed)
    .bind(platform.recordings_failed)
    .bind(platform.audio_ms)
    .bind(platform.new_patients)
    .bind(platform.mood_sum)
    .bind(platform.mood_count)
    .bind(platform.cost_micro_usd)
    .bind(computed_at)
    .execute(&mut *tx)
    .await?;
    let job_kinds = by_kind.len();
    for (kind, (done, dead, mut run_ms)) in by_kind {
        sqlx::query(
            "INSERT INTO daily_job_stats (day, kind, done, dead, p95_run_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&label)
        .bind(&kind)
        .bind(done)
        .bind(dead)
        .bind(p95(&mut run_ms))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(DaySummary {
        practitioners: written,
        platform,
        users_registered,
        job_kinds,
    })
}

/// The last day `daily_platform_stats` has, if any.
pub async fn last_computed_day(db: &Db) -> sqlx::Result<Option<NaiveDate>> {
    let day: Option<String> = sqlx::query_scalar("SELECT MAX(day) FROM daily_platform_stats")
        .fetch_one(db)
        .await?;
    Ok(day.and_then(|d| d.parse().ok()))
}

/// One practitioner's stored day rows in `[from, to]` (inclusive labels).
pub async fn cost_between(
    db: &Db,
    practitioner_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<i64> {
    let sum: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(cost_micro_usd) AS BIGINT) FROM daily_stats \
         WHERE practitioner_id = $1 AND day >= $2 AND day <= $3",
    )
    .bind(practitioner_id)
    .bind(from.to_string())
    .bind(to.to_string())
    .fetch_one(db)
    .await?;
    Ok(sum.unwrap_or(0))
}

/// A practitioner's provider cost in `[start, end)`, live from the calls.
pub async fn live_cost(db: &Db, practitioner_id: &str, start: i64, end: i64) -> sqlx::Result<i64> {
    let sum: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(u.cost_micro_usd) AS BIGINT) FROM provider_usage u \
         JOIN sessions s ON s.id = u.session_id \
         WHERE s.practitioner_id = $1 AND u.created_at >= $2 AND u.created_at < $3",
    )
    .bind(practitioner_id)
    .bind(start)
    .bind(end)
    .fetch_one(db)
    .await?;
    Ok(sum.unwrap_or(0))
}

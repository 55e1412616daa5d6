//! The weekly rollup: `patient_progress`, one row per patient per ISO week (mood, sessions,
//! top topics), snapshotted once a week is over and read back for the progress charts.

use super::*;

/// One patient's week, as stored or computed live.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WeekProgress {
    pub sessions: i64,
    pub mood_sum: i64,
    pub mood_count: i64,
    pub improving: i64,
    pub declining: i64,
    pub stable: i64,
    pub fluctuating: i64,
    /// `(topic, sessions)`, most frequent first, at most five.
    pub top_topics: Vec<(String, i64)>,
    pub action_items: i64,
    pub risk_flags: i64,
}

#[derive(FromRow)]
struct MetricsOfWeek {
    patient_id: String,
    practitioner_id: String,
    mood_score: i64,
    mood_trajectory: String,
    topics: String,
    action_item_count: i64,
    risk_flag_count: i64,
}

/// Topics kept per week.
const TOP_TOPICS: usize = 5;

/// Every patient's progress in `week` (only `patient_id`'s when given), live from the
/// processed sessions: `patient_id -> (practitioner_id, progress)`.
pub async fn week_progress(
    db: &Db,
    week: Week,
    patient_id: Option<&str>,
) -> sqlx::Result<BTreeMap<String, (String, WeekProgress)>> {
    let (start, end) = week.bounds();
    let rows = sqlx::query_as::<_, MetricsOfWeek>(
        "SELECT patient_id, practitioner_id, mood_score, mood_trajectory, topics, \
         action_item_count, risk_flag_count FROM session_metrics \
         WHERE session_date >= $1 AND session_date < $2 \
         AND (CAST($3 AS TEXT) IS NULL OR patient_id = $3)",
    )
    .bind(start)
    .bind(end)
    .bind(patient_id)
    .fetch_all(db)
    .await?;
    let mut by_patient: BTreeMap<String, (String, WeekProgress, Vec<String>)> = BTreeMap::new();
    for row in rows {
        let entry = by_patient.entry(row.patient_id).or_insert_with(|| {
            (
                row.practitioner_id.clone(),
                WeekProgress::default(),
                Vec::new(),
            )
        });
        let p = &mut entry.1;
        p.sessions += 1;
        p.mood_sum += row.mood_score;
        p.mood_count += 1;
        match row.mood_trajectory.as_str() {
            "improving" => p.improving += 1,
            "declining" => p.declining += 1,
            "stable" => p.stable += 1,
            _ => p.fluctuating += 1,
        }
        p.action_items += row.action_item_count;
        p.risk_flags += row.risk_flag_count;
        entry.2.push(row.topics);
    }
    Ok(by_patient
        .into_iter()
        .map(|(patient, (practitioner, mut progress, topics))| {
            progress.top_topics = count_topics(topics.iter().map(String::as_str));
            progress.top_topics.truncate(TOP_TOPICS);
            (patient, (practitioner, progress))
        })
        .collect())
}

/// Computes `week` for every patient and replaces its snapshot rows; returns the patients.
pub async fn snapshot_week(db: &Db, week: Week) -> sqlx::Result<usize> {
    let progress = week_progress(db, week, None).await?;
    let label = week.label();
    let computed_at = now_ms();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM patient_progress WHERE week = $1")
        .bind(&label)
        .execute(&mut *tx)
        .await?;
    let mut written = 0;
    for (patient_id, (practitioner_id, p)) in &progress {
        let topics: Vec<serde_json::Value> = p
            .top_topics
            .iter()
            .map(|(topic, count)| serde_json::json!({ "topic": topic, "count": count }))
            .collect();
        // A patient deleted since the session has no row to keep (ON DELETE CASCADE would
        // remove it anyway); skip it rather than fail the week.
        let inserted = sqlx::query(
            "INSERT INTO patient_progress (patient_id, practitioner_id, week, sessions, mood_sum, \
             mood_count, improving, declining, stable, fluctuating, top_topics, action_items, \
             risk_flags, computed_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14 WHERE EXISTS (SELECT 1 FROM patients WHERE id = $1)",
        )
        .bind(patient_id)
        .bind(practitioner_id)
        .bind(&label)
        .bind(p.sessions)
        .bind(p.mood_sum)
        .bind(p.mood_count)
        .bind(p.improving)
        .bind(p.declining)
        .bind(p.stable)
        .bind(p.fluctuating)
        .bind(serde_json::Value::Array(topics).to_string())
        .bind(p.action_items)
        .bind(p.risk_flags)
        .bind(computed_at)
        .execute(&mut *tx)
        .await?;
        written += inserted.rows_affected() as usize;
    }
    sqlx::query("DELETE FROM weekly_snapshot_runs WHERE week = $1")
        .bind(&label)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO weekly_snapshot_runs (week, computed_at) VALUES ($1, $2)")
        .bind(&label)
        .bind(computed_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(written)
}

/// Whether `week`'s snapshot was computed.
pub async fn week_snapshotted(db: &Db, week: Week) -> sqlx::Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT week FROM weekly_snapshot_runs WHERE week = $1")
            .bind(week.label())
            .fetch_optional(db)
            .await?;
    Ok(found.is_some())
}

#[derive(FromRow)]
struct ProgressRow {
    week: String,
    sessions: i64,
    mood_sum: i64,
    mood_count: i64,
    improving: i64,
    declining: i64,
    stable: i64,
    fluctuating: i64,
    top_topics: String,
    action_items: i64,
    risk_flags: i64,
}

/// A patient's stored weeks in `[from, to]`, by label.
pub async fn stored_progress(
    db: &Db,
    patient_id: &str,
    from: Week,
    to: Week,
) -> sqlx::Result<BTreeMap<String, WeekProgress>> {
    let rows = sqlx::query_as::<_, ProgressRow>(
        "SELECT week, sessions, mood_sum, mood_count, improving, declining, stable, fluctuating, \
         top_topics, action_items, risk_flags FROM patient_progress \
         WHERE patient_id = $1 AND week >= $2 AND week <= $3",
    )
    .bind(patient_id)
    .bind(from.label())
    .bind(to.label())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let topics: Vec<serde_json::Value> =
                serde_json::from_str(&r.top_topics).unwrap_or_default();
            let top_topics = topics
                .iter()
                .filter_map(|t| Some((t["topic"].as_str()?.to_owned(), t["count"].as_i64()?)))
                .collect();
            (
                r.week,
                WeekProgress {
                    sessions: r.sessions,
                    mood_sum: r.mood_sum,
                    mood_count: r.mood_count,
                    improving: r.improving,
                    declining: r.declining,
                    stable: r.stable,
                    fluctuating: r.fluctuating,
                    top_topics,
                    action_items: r.action_items,
                    risk_flags: r.risk_flags,
                },
            )
        })
        .collect())
}

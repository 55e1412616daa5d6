//! `/analytics`: a practitioner's figures over their own patients, read from the analytics
//! tables (`session_metrics`, one row per processed session; the `daily_stats` and
//! `patient_progress` rollups), with the periods the rollups do not hold yet computed live.

mod bodies;

pub use bodies::*;

use std::collections::BTreeMap;

use chrono::{Datelike, Days, Months, NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use tend_shared::db::{
    analytics,
    stats::{self, Week, WeekProgress},
};

use crate::{
    error::ApiResult,
    guards::Practitioner,
    routes::{ApiTags, patients::owned},
    state::AppState,
};

const DAY_MS: i64 = 86_400_000;

/// The `/analytics` operations (practitioners, over their own patients).
pub struct AnalyticsApi;

#[OpenApi(prefix_path = "/api/v1/analytics", tag = "ApiTags::Analytics")]
impl AnalyticsApi {
    /// Patients, active patients, sessions this week and last, average mood, cost this month.
    #[oai(path = "/overview", method = "get", operation_id = "analyticsOverview")]
    async fn overview(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
    ) -> ApiResult<OverviewResponse> {
        let db = &state.db;
        let now = Utc::now();
        let now_ms = now.timestamp_millis();
        let today = now.date_naive();
        let patients = analytics::patients(db, &user.id).await?;
        let month_ago = now_ms - 30 * DAY_MS;
        let active_patients = analytics::active_patients(db, &user.id, month_ago).await?;
        let this_week = Week::of(today);
        let (this_start, this_end) = this_week.bounds();
        let (last_start, _) = this_week.previous().bounds();
        let sessions_this_week =
            analytics::sessions_between(db, &user.id, this_start, this_end).await?;
        let sessions_last_week =
            analytics::sessions_between(db, &user.id, last_start, this_start).await?;
        let mood = analytics::mood_since(db, &user.id, month_ago).await?;
        // The month's computed days from the rollup, the rest (today, and any day the daily
        // job has not reached yet) live.
        let month_start = today.with_day(1).unwrap_or(today);
        let computed = stats::last_computed_day(db)
            .await?
            .filter(|d| *d >= month_start && *d < today);
        let (stored, live_from) = match computed {
            Some(last) => (
                stats::cost_between(db, &user.id, month_start, last).await?,
                stats::day_bounds(last + Days::new(1)).0,
            ),
            None => (0, stats::day_bounds(month_start).0),
        };
        let live = stats::live_cost(db, &user.id, live_from, now_ms + 1).await?;
        Ok(OverviewResponse::Ok(Json(Overview {
            patients,
            active_patients,
            sessions_this_week,
            sessions_last_week,
            average_mood: average(mood.mood_sum.unwrap_or(0), mood.mood_count),
            cost_this_month_usd: (stored + live) as f64 / 1e6,
        })))
    }

    /// One patient's weekly progress (yours only; 404 otherwise): the current week computed
    /// live, earlier weeks from the weekly snapshots.
    #[oai(
        path = "/patients/:id/progress",
        method = "get",
        operation_id = "analyticsPatientProgress"
    )]
    async fn progress(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        /// The patient.
        id: Path<String>,
        /// Weeks to show, the current one included: 1 to 52 (default 12).
        #[oai(
            default = "default_weeks",
            validator(minimum(value = "1"), maximum(value = "52"))
        )]
        weeks: Query<u32>,
    ) -> ApiResult<ProgressResponse> {
        let patient = owned(&state, &id.0, &user).await?;
        let db = &state.db;
        let current = Week::of(Utc::now().date_naive());
        // Four more weeks before the first shown one, for its trend.
        let mut all = vec![current];
        for _ in 1..(weeks.0 as usize + 4) {
            let before = all[all.len() - 1].previous();
            all.push(before);
        }
        all.reverse();
        let stored = stats::stored_progress(db, &patient.id, all[0], current).await?;
        let snapshotted =
            analytics::snapshotted_weeks(db, &all[0].label(), &current.label()).await?;
        let mut series: Vec<(Week, WeekProgress, WeekSource)> = Vec::with_capacity(all.len());
        for week in all {
            let label = week.label();
            if week != current && snapshotted.contains(&label) {
                let p = stored.get(&label).cloned().unwrap_or_default();
                series.push((week, p, WeekSource::Snapshot));
            } else {
                let live = stats::week_progress(db, week, Some(&patient.id)).await?;
                let p = live
                    .into_values()
                    .next()
                    .map(|(_, p)| p)
                    .unwrap_or_default();
                series.push((week, p, WeekSource::Live));
            }
        }
        let averages: Vec<Option<f64>> = series
            .iter()
            .map(|(_, p, _)| average(p.mood_sum, p.mood_count))
            .collect();
        let weeks_out = series
            .into_iter()
            .enumerate()
            .skip(4)
            .map(|(i, (week, p, source))| {
                let before: Vec<f64> = averages[i - 4..i].iter().flatten().copied().collect();
                let mood_trend = match (averages[i], before.is_empty()) {
                    (Some(now), false) => Some(round2(
                        now - before.iter().sum::<f64>() / before.len() as f64,
                    )),
                    _ => None,
                };
                ProgressWeek {
                    week: week.label(),
                    week_start: week.monday(),
                    sessions: p.sessions,
                    average_mood: averages[i],
                    mood_trend,
                    trajectories: Trajectories {
                        improving: p.improving,
                        declining: p.declining,
                        stable: p.stable,
                        fluctuating: p.fluctuating,
                    },
                    top_topics: p
                        .top_topics
                        .into_iter()
                        .map(|(topic, sessions)| TopicCount { topic, sessions })
                        .collect(),
                    action_items: p.action_items,
                    risk_flags: p.risk_flags,
                    source,
                }
            })
            .collect();
        Ok(ProgressResponse::Ok(Json(Progress {
            patient_id: patient.id,
            weeks: weeks_out,
        })))
    }

    /// Sessions and average mood per day, week or month over a period, empty buckets included.
    #[oai(
        path = "/session-trends",
        method = "get",
        operation_id = "analyticsSessionTrends"
    )]
    async fn session_trends(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        /// How far back (default `30d`).
        #[oai(default = "default_period")]
        period: Query<Period>,
        /// Bucket size (default `day`).
        #[oai(default = "default_granularity")]
        granularity: Query<Granularity>,
    ) -> ApiResult<TrendsResponse> {
        let today = Utc::now().date_naive();
        let first_day = today - Days::new(period.0.days() - 1);
        let bucket_of = |day: NaiveDate| match granularity.0 {
            Granularity::Day => day,
            Granularity::Week => Week::of(day).monday(),
            Granularity::Month => day.with_day(1).unwrap_or(day),
        };
        let mut buckets: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
        let mut start = bucket_of(first_day);
        while start <= today {
            buckets.insert(start, (0, 0));
            start = match granularity.0 {
                Granularity::Day => start + Days::new(1),
                Granularity::Week => start + Days::new(7),
                Granularity::Month => start + Months::new(1),
            };
        }
        let rows = analytics::moods_between(
            &state.db,
            &user.id,
            stats::day_bounds(first_day).0,
            stats::day_bounds(today).1,
        )
        .await?;
        for row in rows {
            if let Some(bucket) = buckets.get_mut(&bucket_of(stats::day_of(row.session_date))) {
                bucket.0 += 1;
                bucket.1 += row.mood_score;
            }
        }
        Ok(TrendsResponse::Ok(Json(SessionTrends {
            buckets: buckets
                .into_iter()
                .map(|(start, (sessions, mood_sum))| TrendBucket {
                    start,
                    sessions,
                    average_mood: average(mood_sum, sessions),
                })
                .collect(),
        })))
    }

    /// The topics raised across your sessions of the last weeks.
    #[oai(
        path = "/common-topics",
        method = "get",
        operation_id = "analyticsCommonTopics"
    )]
    async fn common_topics(
        &self,
        state: Data<&AppState>,
        Practitioner(user): Practitioner,
        /// Most topics to list: 1 to 100 (default 20).
        #[oai(
            default = "default_topics",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// Weeks back to count: 1 to 52 (default 12).
        #[oai(
            default = "default_weeks",
            validator(minimum(value = "1"), maximum(value = "52"))
        )]
        weeks: Query<u32>,
    ) -> ApiResult<TopicsResponse> {
        let since = Utc::now().timestamp_millis() - i64::from(weeks.0) * 7 * DAY_MS;
        let lists = analytics::topic_lists_since(&state.db, &user.id, since).await?;
        let mut counted = stats::count_topics(lists.iter().map(String::as_str));
        counted.truncate(limit.0 as usize);
        Ok(TopicsResponse::Ok(Json(CommonTopics {
            items: counted
                .into_iter()
                .map(|(topic, sessions)| TopicCount { topic, sessions })
                .collect(),
            sessions: lists.len() as i64,
        })))
    }
}

/// `sum / count` to two decimals; `None` for no values.
fn average(sum: i64, count: i64) -> Option<f64> {
    (count > 0).then(|| round2(sum as f64 / count as f64))
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

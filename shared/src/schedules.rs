//! The periodic jobs, as operators configure them. Each is declared with its kind's payload
//! ([`crate::jobs::Periodic`]: its default cron expression, what it does, whether it has a
//! dry run); the schedule is named after its kind, and that name is part of the API.
//! `tend-scheduler` turns each tick into a job of the schedule's kind; admins see and run them
//! at `/api/v1/admin/maintenance`.

use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::jobs::{Enqueued, JobTx, kinds::KINDS};

pub use crate::jobs::{EnqueueTick, ScheduleSpec};

/// Every periodic job: the schedules of the [`crate::jobs::Periodic`] kinds, in the order of
/// [`KINDS`].
pub fn declared() -> impl Iterator<Item = &'static ScheduleSpec> {
    KINDS.iter().filter_map(|kind| kind.schedule.as_ref())
}

/// The declared schedule named `name`.
pub fn find(name: &str) -> Option<&'static ScheduleSpec> {
    declared().find(|spec| spec.name == name)
}

/// A schedule as this process runs it.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its declaration.
    pub spec: ScheduleSpec,
    /// The cron expression in force, or `None` when turned off.
    pub cron: Option<String>,
    parsed: Option<cron::Schedule>,
}

impl Schedule {
    /// The next fire time after `now`, if it is on.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.parsed.as_ref()?.after(&now).next()
    }

    /// The latest fire time at or before `now` (within `lookback`), if it is on.
    pub fn last_at_or_before(
        &self,
        now: DateTime<Utc>,
        lookback: chrono::Duration,
    ) -> Option<DateTime<Utc>> {
        self.parsed
            .as_ref()?
            .after(&(now - lookback))
            .take_while(|t| *t <= now)
            .last()
    }

    /// The parsed cron schedule, if it is on.
    pub fn cron_schedule(&self) -> Option<&cron::Schedule> {
        self.parsed.as_ref()
    }
}

/// Reads `SCHEDULE_<NAME>` for every declared schedule; a bad expression names its variable.
pub fn configured(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Vec<Schedule>> {
    declared()
        .map(|spec| {
            let variable = spec.variable();
            let raw = lookup(&variable).unwrap_or_else(|| spec.default_cron.to_owned());
            if raw.trim().eq_ignore_ascii_case("off") {
                return Ok(Schedule {
                    spec: *spec,
                    cron: None,
                    parsed: None,
                });
            }
            let parsed = cron::Schedule::from_str(raw.trim()).with_context(|| {
                format!(
                    "{variable} must be a cron expression with seconds (\"0 0 3 * * *\") or \
                     off, not {raw:?}"
                )
            })?;
            Ok(Schedule {
                spec: *spec,
                cron: Some(raw.trim().to_owned()),
                parsed: Some(parsed),
            })
        })
        .collect()
}

/// Stores the job of schedule `name` for the tick at `tick_ms` unless `dedup_key` was stored
/// before; `None` then.
pub async fn enqueue_run(
    tx: &mut JobTx,
    name: &str,
    tick_ms: i64,
    dry_run: bool,
    dedup_key: &str,
) -> anyhow::Result<Option<Enqueued>> {
    let spec = find(name).with_context(|| format!("no periodic job kind is named {name:?}"))?;
    Ok((spec.enqueue)(tx, tick_ms, dry_run, dedup_key).await?)
}

/// Enqueues a run of schedule `name` now (an admin's "run now"), whatever its cron says, in
/// the caller's transaction; `dry_run` only counts (for schedules that delete). `None` when a
/// run for this very millisecond was already asked for.
pub async fn run_now(
    tx: &mut JobTx,
    name: &str,
    dry_run: bool,
) -> anyhow::Result<Option<Enqueued>> {
    let now = crate::db::now_ms();
    let key = format!("{name}:now:{now}");
    enqueue_run(tx, name, now, dry_run, &key).await
}

/// The dedup-key prefix of every job schedule `name` enqueued (ticks and runs now alike).
pub fn job_key_prefix(name: &str) -> String {
    format!("{name}:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_take_their_defaults_overrides_and_off() {
        let none = |_: &str| None;
        let all = configured(&none).unwrap();
        let names: Vec<&str> = all.iter().map(|s| s.spec.name).collect();
        assert_eq!(
            names,
            [
                "daily_stats",
                "weekly_snapshots",
                "backup",
                "cleanup",
                "rotate_signing_key"
            ]
        );
        let defaults = &all[3..];
        assert_eq!(defaults[0].cron.as_deref(), Some("0 0 3 * * *"));
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            defaults[0].next_after(now).unwrap().to_rfc3339(),
            "2026-11-23T03:00:00+00:00"
        );
        assert_eq!(
            defaults[0]
                .last_at_or_before(now, chrono::Duration::days(2))
                .unwrap()
                .to_rfc3339(),
            "2026-11-22T03:00:00+00:00"
        );

        assert_eq!(
            all[1].next_after(now).unwrap().to_rfc3339(),
            "2026-11-29T01:00:00+00:00",
            "Sundays at 01:00"
        );
        let off = configured(&|k: &str| (k == "SCHEDULE_CLEANUP").then(|| "off".into())).unwrap();
        assert!(off[3].cron.is_none() && off[3].next_after(now).is_none());

        let hourly =
            configured(&|k: &str| (k == "SCHEDULE_CLEANUP").then(|| "0 17 * * * *".into()))
                .unwrap();
        assert_eq!(
            hourly[3].next_after(now).unwrap().to_rfc3339(),
            "2026-11-22T10:17:00+00:00"
        );

        let err =
            configured(&|k: &str| (k == "SCHEDULE_CLEANUP").then(|| "daily".into())).unwrap_err();
        assert!(err.to_string().contains("SCHEDULE_CLEANUP"), "{err}");
    }
}

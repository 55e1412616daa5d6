//! The periodic jobs, as operators configure them: one declaration per schedule (its name,
//! which is part of the API, and its default cron expression). `tend-scheduler` turns each
//! tick into a job of the schedule's kind; admins see and run them at
//! `/api/v1/admin/maintenance`.

use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::jobs::{
    Enqueued, JobTx,
    kinds::{
        backup::Backup, cleanup::Cleanup, daily_stats::DailyStats,
        rotate_signing_key::RotateSigningKey, weekly_snapshots::WeeklySnapshots,
    },
};

/// One periodic job as declared: `SCHEDULE_<NAME>` overrides its cron expression (UTC, with
/// seconds: `sec min hour day month weekday`), or `off` turns it off.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleSpec {
    /// The schedule's name (`cleanup`), in the API and in `SCHEDULE_<NAME>`.
    pub name: &'static str,
    /// The job kind each tick enqueues.
    pub kind: &'static str,
    /// When it runs unless configured otherwise.
    pub default_cron: &'static str,
    /// What it does, for the admin API.
    pub description: &'static str,
    /// Whether it deletes, and so can be run as a dry run that only counts.
    pub dry_run: bool,
}

impl ScheduleSpec {
    /// The environment variable that configures it.
    pub fn variable(&self) -> String {
        format!("SCHEDULE_{}", self.name.to_ascii_uppercase())
    }
}

/// Every periodic job. Adding one: a line here, and its arm in [`enqueue_run`].
pub static SCHEDULES: &[ScheduleSpec] = &[
    ScheduleSpec {
        name: "daily_stats",
        kind: "daily_stats",
        default_cron: "0 5 0 * * *",
        description: "Computes yesterday's per-practitioner and platform-wide statistics, and \
                      every day missed since the last run (at most 31).",
        dry_run: false,
    },
    ScheduleSpec {
        name: "weekly_snapshots",
        kind: "weekly_snapshots",
        default_cron: "0 0 1 * * Sun",
        description: "Snapshots each patient's progress for the last complete ISO week, and \
                      the weeks missed since the last run (at most 12).",
        dry_run: false,
    },
    ScheduleSpec {
        name: "backup",
        kind: "backup",
        default_cron: "0 0 2 * * *",
        description: "Writes a verified-restorable backup of the whole database to the object \
                      store under backups/, then deletes those past retention \
                      (BACKUP_KEEP_DAILY, BACKUP_KEEP_WEEKLY).",
        dry_run: false,
    },
    ScheduleSpec {
        name: "cleanup",
        kind: "cleanup",
        default_cron: "0 0 3 * * *",
        description: "Deletes spent tokens, old finished jobs and attempts, stale mail \
                      requests, silent workers, what abandoned uploads left in the store, the \
                      audio of recordings failed long ago, objects no row owns and backups \
                      past retention.",
        dry_run: true,
    },
    ScheduleSpec {
        name: "rotate_signing_key",
        kind: "rotate_signing_key",
        default_cron: "0 0 4 1 * *",
        description: "Rotates the key that signs access tokens (monthly): the new key signs, \
                      the old one verifies its tokens until they expire, and keys that \
                      verify nothing any more are deleted.",
        dry_run: false,
    },
];

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
    SCHEDULES
        .iter()
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
/// before; `None` then. The one place that maps a schedule to its job's payload.
pub async fn enqueue_run(
    tx: &mut JobTx,
    name: &str,
    tick_ms: i64,
    dry_run: bool,
    dedup_key: &str,
) -> anyhow::Result<Option<Enqueued>> {
    let job = match name {
        "cleanup" => {
            let cleanup = Cleanup {
                scheduled_for: tick_ms,
                dry_run,
            };
            tx.enqueue_once(&cleanup, dedup_key).await?
        }
        "daily_stats" => {
            let run = DailyStats {
                scheduled_for: tick_ms,
            };
            tx.enqueue_once(&run, dedup_key).await?
        }
        "weekly_snapshots" => {
            let run = WeeklySnapshots {
                scheduled_for: tick_ms,
            };
            tx.enqueue_once(&run, dedup_key).await?
        }
        "backup" => {
            let run = Backup {
                scheduled_for: tick_ms,
            };
            tx.enqueue_once(&run, dedup_key).await?
        }
        "rotate_signing_key" => {
            let run = RotateSigningKey {
                scheduled_for: tick_ms,
            };
            tx.enqueue_once(&run, dedup_key).await?
        }
        other => anyhow::bail!("schedule {other:?} has no job: add it to enqueue_run"),
    };
    Ok(job)
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

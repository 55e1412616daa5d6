//! Housekeeping: deletes spent or expired tokens, old finished jobs (with their attempts and
//! reports), stale mail requests, silent workers, the transport's copies of finished
//! deliveries, what abandoned uploads left in the object store, the audio of recordings that
//! failed long ago, objects no row owns, and backups past retention. Patient audio must not
//! outlive its purpose.
//!
//! A dry run counts what would go (rows, objects, bytes) per category and deletes nothing;
//! a real run reports what went. Both reports are stored for admins. Where a row and an object
//! go together, the object goes first and the row after: a crash between leaves a row that
//! points at nothing, which the next run finishes (deleting a missing object is no error),
//! never an object nobody can find. Idempotent: a second run finds nothing left.

use std::{collections::BTreeSet, time::Duration};

use tend_shared::{
    backup,
    db::{
        self,
        exports::ExpiringTable,
        maintenance::{CategoryReport, Report},
    },
    jobs::{JobError, JobPayload},
};

use crate::{
    env::JobEnv,
    job::{Job, JobCtx},
};
use tend_shared::jobs::kinds::cleanup::Cleanup;

/// Done jobs are kept this long for `GET /jobs/{id}` and admins, then deleted.
pub const KEEP_DONE_JOBS: Duration = Duration::from_secs(14 * 24 * 3600);
/// Spent and expired tokens are kept this long (for the reuse check), then deleted.
pub const KEEP_DEAD_TOKENS: Duration = Duration::from_secs(7 * 24 * 3600);
/// Worker processes silent this long are no longer listed for admins.
pub const KEEP_SILENT_WORKERS: Duration = Duration::from_secs(24 * 3600);
/// Finished deliveries stay in the transport this long (for apalis' own tools), then go.
pub const KEEP_DELIVERIES: Duration = Duration::from_secs(3600);
/// An upload still pending after this long was abandoned (a 500 MiB upload takes a day only
/// below 6 KB/s); whatever it stored is removed.
pub const ABANDONED_UPLOAD_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Objects listed per page of the store sweep.
const PAGE: usize = 500;
/// The store prefixes whose objects belong to rows (backups are kept by retention).
const OWNED_PREFIXES: [&str; 3] = ["sessions/", "exports/", "data-exports/"];

impl Job for Cleanup {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let report = run(ctx.env, self.dry_run).await?;
        db::maintenance::save(&ctx.env.db, &ctx.job.id, Self::KIND, &report)
            .await
            .map_err(|e| JobError::transient("storing the cleanup report", e))?;
        Ok(())
    }
}

/// The repair pass ([`db::repair`]): fails the sessions, exports, data exports and drafts left
/// in a working state by a job that is over, logs and counts them. Runs at worker start and in
/// every cleanup.
pub async fn resolve_stuck(db: &db::Db) -> sqlx::Result<u64> {
    let repaired = db::repair::resolve_stuck(db).await?;
    for (table, count) in [
        ("sessions", repaired.sessions),
        ("exports", repaired.exports),
        ("data_exports", repaired.data_exports),
        ("mission_drafts", repaired.drafts),
    ] {
        if count > 0 {
            metrics::counter!("tend_stuck_subjects_failed_total", "table" => table)
                .increment(count);
        }
    }
    if repaired.total() > 0 {
        tracing::warn!(
            sessions = repaired.sessions,
            exports = repaired.exports,
            data_exports = repaired.data_exports,
            drafts = repaired.drafts,
            "subjects left in a working state by a finished job were failed (retry runs them again)"
        );
    }
    Ok(repaired.total())
}

fn ms_ago(d: Duration) -> i64 {
    db::now_ms() - d.as_millis() as i64
}

fn rows(category: &str, items: u64) -> CategoryReport {
    CategoryReport {
        category: category.to_owned(),
        items,
        bytes: None,
    }
}

/// Runs one cleanup (or counts it, with `dry_run`).
pub async fn run(env: &JobEnv, dry_run: bool) -> Result<Report, JobError> {
    let mut categories = Vec::new();

    // Rows alone: deleted in one transaction, rolled back in a dry run (the counts are then
    // exactly what a real run would delete).
    let mut tx = env
        .db
        .begin()
        .await
        .map_err(|e| JobError::transient("starting the cleanup", e))?;
    let fail = |what: &'static str| move |e: sqlx::Error| JobError::transient(what, e);
    let tokens = db::tokens::delete_expired(&mut tx, ms_ago(KEEP_DEAD_TOKENS))
        .await
        .map_err(fail("deleting expired tokens"))?;
    let jobs = db::jobs::prune_done(&mut tx, ms_ago(KEEP_DONE_JOBS))
        .await
        .map_err(fail("pruning finished jobs"))?;
    // A request whose job died holds an address nobody will use: kept as long as spent tokens.
    let mail_requests = db::mail_requests::delete_older_than(&mut tx, ms_ago(KEEP_DEAD_TOKENS))
        .await
        .map_err(fail("deleting stale mail requests"))?;
    let workers = db::workers::delete_silent_since(&mut tx, ms_ago(KEEP_SILENT_WORKERS))
        .await
        .map_err(fail("forgetting silent workers"))?;
    let networks = db::sign_ins::forget_stale(&mut tx, db::now_ms())
        .await
        .map_err(fail("forgetting old sign-in networks"))?;
    if dry_run {
        tx.rollback().await.map_err(fail("rolling back"))?;
    } else {
        tx.commit().await.map_err(fail("committing the cleanup"))?;
    }
    categories.push(rows("expired_tokens", tokens));
    categories.push(rows("finished_jobs", jobs));
    categories.push(rows("mail_requests", mail_requests));
    categories.push(rows("silent_workers", workers));
    categories.push(rows("stale_sign_in_networks", networks));
    if !dry_run {
        let deliveries = env
            .transport()
            .vacuum(KEEP_DELIVERIES)
            .await
            .map_err(|e| JobError::transient("vacuuming the queue", e))?;
        categories.push(rows("transport_deliveries", deliveries as u64));
        let stuck = resolve_stuck(&env.db)
            .await
            .map_err(|e| JobError::transient("failing stuck subjects", e))?;
        categories.push(rows("stuck_subjects_failed", stuck));
    }

    categories.push(abandoned_uploads(env, dry_run).await?);
    categories.push(failed_recording_audio(env, dry_run).await?);
    categories.push(expired_exports(env, dry_run).await?);
    categories.push(orphan_objects(env, dry_run).await?);
    categories.push(old_backups(env, dry_run).await?);

    tracing::info!(
        dry_run,
        report = %serde_json::to_string(&categories).unwrap_or_default(),
        "cleanup finished"
    );
    Ok(Report {
        dry_run,
        categories,
    })
}

fn store_error(what: &'static str) -> impl Fn(anyhow::Error) -> JobError {
    move |e| JobError::Transient(format!("{what}: {e:#}"))
}

/// The objects of uploads that never became a session, then their rows.
async fn abandoned_uploads(env: &JobEnv, dry_run: bool) -> Result<CategoryReport, JobError> {
    let before = ms_ago(ABANDONED_UPLOAD_AFTER);
    let (mut items, mut bytes) = (0, 0);
    let mut after = String::new();
    loop {
        let keys = db::uploads::abandoned_uploads(&env.db, before, &after, 100)
            .await
            .map_err(|e| JobError::transient("listing abandoned uploads", e))?;
        let Some(last) = keys.last() else {
            break;
        };
        after = last.clone();
        for key in keys {
            items += 1;
            bytes += env
                .store
                .size(&key)
                .await
                .map_err(store_error("reading an object's size"))?
                .unwrap_or(0);
            if dry_run {
                continue;
            }
            env.store
                .discard(&key)
                .await
                .map_err(store_error("removing an abandoned upload"))?;
            db::uploads::end_upload(&env.db, &key)
                .await
                .map_err(|e| JobError::transient("forgetting an abandoned upload", e))?;
        }
    }
    Ok(CategoryReport {
        category: "abandoned_uploads".into(),
        items,
        bytes: Some(bytes),
    })
}

/// The audio of recordings that failed more than `FAILED_RECORDING_RETENTION_DAYS` ago; the
/// session stays, saying it failed.
async fn failed_recording_audio(env: &JobEnv, dry_run: bool) -> Result<CategoryReport, JobError> {
    let days = i64::from(env.settings.failed_recording_retention_days);
    let before = db::now_ms() - days * 86_400_000;
    let (mut items, mut bytes) = (0, 0);
    let mut after = String::new();
    loop {
        let page = db::sessions::failed_objects_page(&env.db, before, &after, 100)
            .await
            .map_err(|e| JobError::transient("listing failed recordings", e))?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.0.clone();
        for (id, key, size) in page {
            items += 1;
            bytes += size.max(0) as u64;
            if dry_run {
                continue;
            }
            env.store
                .delete(&key)
                .await
                .map_err(store_error("removing a failed recording's audio"))?;
            db::sessions::clear_object_key(&env.db, &id, &key)
                .await
                .map_err(|e| JobError::transient("forgetting a failed recording's audio", e))?;
        }
    }
    Ok(CategoryReport {
        category: "failed_recording_audio".into(),
        items,
        bytes: Some(bytes),
    })
}

/// The files of exports and personal data exports past their 7 days; the rows stay and say
/// `expired` (their downloads answer 410).
async fn expired_exports(env: &JobEnv, dry_run: bool) -> Result<CategoryReport, JobError> {
    let now = db::now_ms();
    let (mut items, mut bytes) = (0, 0);
    for table in [ExpiringTable::Exports, ExpiringTable::DataExports] {
        let mut after = String::new();
        loop {
            let page = db::exports::expired_page(&env.db, table, now, &after, 100)
                .await
                .map_err(|e| JobError::transient("listing expired exports", e))?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.0.clone();
            for (id, key, size) in page {
                items += 1;
                bytes += size.max(0) as u64;
                if dry_run {
                    continue;
                }
                env.store
                    .delete(&key)
                    .await
                    .map_err(store_error("removing an expired export"))?;
                db::exports::mark_expired(&env.db, table, &id)
                    .await
                    .map_err(|e| JobError::transient("marking an export expired", e))?;
            }
        }
    }
    Ok(CategoryReport {
        category: "expired_exports".into(),
        items,
        bytes: Some(bytes),
    })
}

/// Objects under the owned prefixes that no session and no pending upload names, older than
/// `ORPHAN_OBJECT_MIN_AGE_SECS`; the store is listed a page at a time.
async fn orphan_objects(env: &JobEnv, dry_run: bool) -> Result<CategoryReport, JobError> {
    let old = ms_ago(env.settings.orphan_object_min_age);
    let (mut items, mut bytes) = (0, 0);
    for prefix in OWNED_PREFIXES {
        let mut after: Option<String> = None;
        loop {
            let page = env
                .store
                .list_page(prefix, after.as_deref(), PAGE)
                .await
                .map_err(store_error("listing the object store"))?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.key.clone());
            let candidates: Vec<_> = page.into_iter().filter(|o| o.modified_ms < old).collect();
            let owned = owned_keys(env, candidates.iter().map(|o| o.key.as_str())).await?;
            for object in candidates {
                if owned.contains(&object.key) {
                    continue;
                }
                items += 1;
                bytes += object.size;
                if !dry_run {
                    env.store
                        .delete(&object.key)
                        .await
                        .map_err(store_error("removing an orphan object"))?;
                }
            }
        }
    }
    Ok(CategoryReport {
        category: "orphan_objects".into(),
        items,
        bytes: Some(bytes),
    })
}

/// Which of `keys` a row names.
async fn owned_keys<'a>(
    env: &JobEnv,
    keys: impl Iterator<Item = &'a str>,
) -> Result<BTreeSet<String>, JobError> {
    let keys: Vec<&str> = keys.collect();
    db::maintenance::owned_object_keys(&env.db, &keys)
        .await
        .map_err(|e| JobError::transient("matching objects to rows", e))
}

/// Backups past retention (`BACKUP_KEEP_DAILY`, `BACKUP_KEEP_WEEKLY`).
async fn old_backups(env: &JobEnv, dry_run: bool) -> Result<CategoryReport, JobError> {
    let (daily, weekly) = (
        env.settings.backup_keep_daily,
        env.settings.backup_keep_weekly,
    );
    let backups = backup::list(&env.store)
        .await
        .map_err(store_error("listing backups"))?;
    let keep = backup::kept(&backups, daily, weekly);
    let going: Vec<_> = backups.iter().filter(|b| !keep.contains(&b.id)).collect();
    let bytes = going.iter().map(|b| b.total_bytes()).sum();
    let items = going.len() as u64;
    if !dry_run {
        backup::prune(&env.store, &backups, daily, weekly)
            .await
            .map_err(store_error("deleting old backups"))?;
    }
    Ok(CategoryReport {
        category: "old_backups".into(),
        items,
        bytes: Some(bytes),
    })
}

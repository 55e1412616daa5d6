//! `backup`: a verified-restorable snapshot of the whole database into the object store
//! (`tend_shared::backup`), then retention (`BACKUP_KEEP_DAILY`, `BACKUP_KEEP_WEEKLY`). A failed
//! backup retries, then is a dead job with its reason for admins; nothing half-written is
//! listed (the manifest is written last).

use tend_shared::{backup, jobs::JobError};

use crate::job::{Job, JobCtx};
use tend_shared::jobs::kinds::backup::Backup;

impl Job for Backup {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let env = ctx.env;
        let manifest = backup::take(&env.db, &env.store, &env.settings.staging_dir())
            .await
            .map_err(|e| JobError::Transient(format!("taking the backup: {e:#}")))?;
        tracing::info!(
            backup = %manifest.id,
            tables = manifest.tables.len(),
            rows = manifest.total_rows(),
            bytes = manifest.total_bytes(),
            "backup written"
        );
        let prune = async {
            let backups = backup::list(&env.store).await?;
            backup::prune(
                &env.store,
                &backups,
                env.settings.backup_keep_daily,
                env.settings.backup_keep_weekly,
            )
            .await
        };
        let deleted = prune
            .await
            .map_err(|e| JobError::Transient(format!("pruning old backups: {e:#}")))?;
        if !deleted.is_empty() {
            tracing::info!(deleted = deleted.len(), "old backups deleted by retention");
        }
        Ok(())
    }
}

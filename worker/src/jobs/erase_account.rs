//! `erase_account`: the right to be forgotten. `DELETE /users/me` makes the account unusable
//! at once and starts this job, which removes everything the account owns: the audio of a
//! practitioner's sessions from the object store (a page at a time, each object before its
//! row forgets it, so thousands of objects never hold a request open and a crash loses
//! nothing the next attempt cannot finish), then the account row, which takes its patients,
//! sessions, transcripts, notes, metrics, statistics and tokens with it (ON DELETE CASCADE).
//! Its pending mail requests and open invitations to its address go too. The audit log keeps
//! a pseudonymous trail: the user id and actions, without address, IP or user agent.

use tend_shared::{
    db::{self, exports::ExportOwner},
    jobs::JobError,
};

use crate::job::{Job, JobCtx};
use tend_shared::jobs::kinds::erase_account::EraseAccount;

impl Job for EraseAccount {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let env = ctx.env;
        let id = self.user_id.to_string();
        let Some(user) = db::users::find(&env.db, &id)
            .await
            .map_err(|e| JobError::transient("reading the account", e))?
        else {
            // Erased already (a repeated delivery).
            return Ok(());
        };
        let mut objects = 0;
        let mut after = String::new();
        loop {
            let page = db::sessions::objects_of_practitioner_page(&env.db, &id, &after, 200)
                .await
                .map_err(|e| JobError::transient("listing the account's recordings", e))?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.0.clone();
            for (session_id, key) in page {
                env.store
                    .delete(&key)
                    .await
                    .map_err(|e| JobError::Transient(format!("deleting a recording: {e:#}")))?;
                db::sessions::clear_object_key(&env.db, &session_id, &key)
                    .await
                    .map_err(|e| JobError::transient("forgetting a recording", e))?;
                objects += 1;
            }
        }
        // Rendered documents and personal data exports.
        let mut documents = db::exports::objects_of(&env.db, ExportOwner::Practitioner, &id)
            .await
            .map_err(|e| JobError::transient("listing the account's exports", e))?;
        documents.extend(
            db::data_exports::objects_of_user(&env.db, &id)
                .await
                .map_err(|e| JobError::transient("listing the account's data exports", e))?,
        );
        for key in documents {
            env.store
                .delete(&key)
                .await
                .map_err(|e| JobError::Transient(format!("deleting an export: {e:#}")))?;
            objects += 1;
        }
        let fail = |e| JobError::transient("erasing the account's rows", e);
        let mut tx = env.db.begin().await.map_err(fail)?;
        db::users::erase(&mut tx, &id, user.email.as_str())
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        tracing::info!(user_id = %id, objects, "account erased");
        Ok(())
    }
}

//! Operator commands run from the shell.

use anyhow::{Context, bail};
use tend_shared::{
    auth::password,
    db::{
        self, Db,
        audit::{self, AuditAction, Origin},
    },
    domain::{Email, Password, Role},
};

/// Creates an admin account, or promotes an existing account to admin (audited as a role
/// change). Returns the user id.
pub async fn create_admin(db: &Db, email: &str, password: &str) -> anyhow::Result<String> {
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("email {m}"))?;
    let origin = Origin {
        ip: None,
        user_agent: Some("tend-api create-admin".into()),
    };
    if let Some(user) = db::users::find_by_email(db, &email).await? {
        if user.role() == Role::Admin {
            return Ok(user.id);
        }
        let mut conn = db.acquire().await?;
        db::users::set_role(&mut conn, &user.id, Role::Admin).await?;
        audit::record(
            &mut conn,
            AuditAction::RoleChanged,
            Some(&user.id),
            &origin,
            Some(serde_json::json!({"from": user.role, "to": "admin"})),
        )
        .await?;
        return Ok(user.id);
    }
    let password = match Password::parse(password) {
        Ok(pw) => pw,
        Err(m) => bail!("password {m}"),
    };
    let hash = password::hash(password.expose().to_owned()).await?;
    let mut tx = db.begin().await?;
    let user = db::users::insert(&mut tx, &email, &hash, Role::Admin, None)
        .await
        .context("creating the admin")?;
    db::users::mark_verified(&mut tx, &user.id).await?;
    audit::record(
        &mut tx,
        AuditAction::RoleChanged,
        Some(&user.id),
        &origin,
        Some(serde_json::json!({"from": null, "to": "admin"})),
    )
    .await?;
    tx.commit().await?;
    Ok(user.id)
}

//! Operator commands run from the shell.

use anyhow::{Context, bail};
use tend_shared::{
    Settings,
    auth::{
        keys::{self, RotatedBy},
        password,
    },
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

/// What [`backfill_stats`] recomputed.
#[derive(Debug)]
pub struct Backfilled {
    /// Days recomputed.
    pub days: usize,
    /// ISO weeks recomputed.
    pub weeks: usize,
    /// How long it took.
    pub elapsed: std::time::Duration,
}

/// Recomputes the daily stats of `[from, to]` and the snapshots of the ISO weeks whose Sunday
/// lies within it (at most 5 years at once).
pub async fn backfill_stats(
    db: &Db,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> anyhow::Result<Backfilled> {
    use tend_shared::db::stats::{self, Week};
    if from > to {
        bail!("--from {from} is after --to {to}");
    }
    if (to - from).num_days() > 5 * 366 {
        bail!("at most five years at once");
    }
    let started = std::time::Instant::now();
    let mut days = 0;
    for day in from.iter_days().take_while(|d| *d <= to) {
        stats::compute_day(db, day)
            .await
            .with_context(|| format!("computing {day}"))?;
        days += 1;
    }
    let mut weeks = 0;
    let mut week = Week::of(from);
    while week.monday() <= to {
        let sunday = week.monday() + chrono::Days::new(6);
        if sunday >= from && sunday <= to {
            stats::snapshot_week(db, week)
                .await
                .with_context(|| format!("snapshotting {}", week.label()))?;
            weeks += 1;
        }
        week = Week::of(week.monday() + chrono::Days::new(7));
    }
    Ok(Backfilled {
        days,
        weeks,
        elapsed: started.elapsed(),
    })
}

/// `tend-api signing-keys list`: the keys in force, one line each (never a secret).
pub async fn list_signing_keys(db: &Db, settings: &Settings) -> anyhow::Result<String> {
    let mut out = String::new();
    for key in keys::list(db, settings).await? {
        let role = if key.signing { "signing" } else { "verifying" };
        let until = key
            .verifies_until
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(String::new, |t| format!(" until {}", t.to_rfc3339()));
        let source = key.source.as_str();
        out.push_str(&format!("{}\t{source}\t{role}{until}\n", key.kid));
    }
    Ok(out)
}

/// `tend-api signing-keys rotate`: a new key signs from now on.
pub async fn rotate_signing_key(db: &Db, settings: &Settings) -> anyhow::Result<String> {
    let key = keys::rotate(db, settings, RotatedBy::Command)
        .await?
        .context("the rotation made no key")?;
    Ok(format!(
        "signing key {} signs from now on (in every API process within {} s)\n",
        key.kid,
        keys::RELOAD_EVERY.as_secs()
    ))
}

/// `tend-api signing-keys remove <kid>`: the key's tokens are refused.
pub async fn remove_signing_key(db: &Db, settings: &Settings, kid: &str) -> anyhow::Result<String> {
    keys::remove(db, settings, kid, None, &Origin::default()).await??;
    Ok(format!(
        "signing key {kid} removed; its tokens are refused\n"
    ))
}

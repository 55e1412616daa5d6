//! The `practice_budgets` table: the monthly budget an admin set for a practice.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};

/// A practice's own budget.
#[derive(Debug, Clone, FromRow)]
pub struct BudgetRow {
    pub tenant: String,
    /// Millionths of a dollar per calendar month (UTC); `None`: no limit.
    pub monthly_micro_usd: Option<i64>,
    /// The admin who set it.
    pub updated_by: Option<String>,
    pub updated_at: i64,
}

/// The budget an admin set for `tenant`, if any.
pub async fn find(db: &Db, tenant: &str) -> sqlx::Result<Option<BudgetRow>> {
    sqlx::query_as::<_, BudgetRow>(
        "SELECT tenant, monthly_micro_usd, updated_by, updated_at FROM practice_budgets \
         WHERE tenant = $1",
    )
    .bind(tenant)
    .fetch_optional(db)
    .await
}

/// Sets `tenant`'s budget (`None`: no limit), on behalf of admin `by`.
pub async fn set(
    conn: &mut AnyConnection,
    tenant: &str,
    monthly_micro_usd: Option<i64>,
    by: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO practice_budgets (tenant, monthly_micro_usd, updated_by, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant) DO UPDATE SET \
         monthly_micro_usd = excluded.monthly_micro_usd, updated_by = excluded.updated_by, \
         updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(monthly_micro_usd)
    .bind(by)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets `tenant`'s budget (its account was erased).
pub async fn forget(conn: &mut AnyConnection, tenant: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM practice_budgets WHERE tenant = $1")
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

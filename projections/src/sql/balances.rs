//! The balances read model: per tenant, the balance and how it came about, plus the allowance
//! each replica currently holds.

use modelrouter_domain::account::AccountEvent;
use serde::Serialize;
use sqlx::Row;

use super::{on_tx, DbTx};
use crate::db::{Db, StoredEvent};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceRow {
    pub tenant_id: String,
    pub balance: i64,
    pub credited: i64,
    pub adjusted: i64,
    pub settled: i64,
    /// Refunds of recharge orders taken from the balance.
    pub refunded: i64,
    pub outstanding: i64,
    pub calls: i64,
    pub updated_at: String,
}

pub(super) async fn apply(tx: &mut DbTx<'_>, event: &StoredEvent) -> Result<(), sqlx::Error> {
    let Ok(payload) = serde_json::from_value::<AccountEvent>(event.payload.clone()) else {
        tracing::error!(
            position = event.position,
            "account event does not decode; skipped"
        );
        return Ok(());
    };
    let tenant = event.aggregate_id.as_str();
    // (balance, credited, adjusted, settled, refunded, calls) deltas
    let (balance, credited, adjusted, settled, refunded, calls) = match &payload {
        AccountEvent::Credited { amount, .. } => (amount.0, amount.0, 0, 0, 0, 0),
        AccountEvent::Adjusted { amount, .. } => (amount.0, 0, amount.0, 0, 0, 0),
        AccountEvent::Refunded { amount, .. } => (-amount.0, 0, 0, 0, amount.0, 0),
        AccountEvent::UsageSettled { used, calls, .. } => (
            -used.0,
            0,
            0,
            used.0,
            0,
            i64::try_from(*calls).unwrap_or(i64::MAX),
        ),
        _ => (0, 0, 0, 0, 0, 0),
    };
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO balances
               (tenant_id, balance, credited, adjusted, settled, outstanding, calls, updated_at,
                refunded)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)
             ON CONFLICT (tenant_id) DO UPDATE SET
               balance = balances.balance + excluded.balance,
               credited = balances.credited + excluded.credited,
               adjusted = balances.adjusted + excluded.adjusted,
               settled = balances.settled + excluded.settled,
               refunded = balances.refunded + excluded.refunded,
               calls = balances.calls + excluded.calls,
               updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(balance)
        .bind(credited)
        .bind(adjusted)
        .bind(settled)
        .bind(calls)
        .bind(&event.recorded_at)
        .bind(refunded)
        .execute(&mut *conn)
        .await?;
        match &payload {
            AccountEvent::AllowanceGranted { lease_id, node, amount } => {
                sqlx::query(
                    "INSERT INTO balance_leases (tenant_id, lease_id, node, outstanding)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant_id, lease_id) DO UPDATE SET
                       outstanding = balance_leases.outstanding + excluded.outstanding",
                )
                .bind(tenant)
                .bind(lease_id)
                .bind(node)
                .bind(amount.0)
                .execute(&mut *conn)
                .await?;
            }
            AccountEvent::UsageSettled { lease_id, used, .. } => {
                sqlx::query(
                    "UPDATE balance_leases
                        SET outstanding = CASE WHEN outstanding > $1 THEN outstanding - $1 ELSE 0 END
                      WHERE tenant_id = $2 AND lease_id = $3",
                )
                .bind(used.0)
                .bind(tenant)
                .bind(lease_id)
                .execute(&mut *conn)
                .await?;
            }
            AccountEvent::AllowanceReleased { lease_id, .. } => {
                sqlx::query("DELETE FROM balance_leases WHERE tenant_id = $1 AND lease_id = $2")
                    .bind(tenant)
                    .bind(lease_id)
                    .execute(&mut *conn)
                    .await?;
            }
            _ => {}
        }
        sqlx::query(
            "UPDATE balances SET outstanding =
               (SELECT COALESCE(SUM(outstanding), 0) FROM balance_leases WHERE tenant_id = $1)
             WHERE tenant_id = $1",
        )
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
        Ok(())
    })
}

pub async fn balance_of(db: &Db, tenant_id: &str) -> Result<Option<BalanceRow>, sqlx::Error> {
    let rows = all(db, Some(tenant_id)).await?;
    Ok(rows.into_iter().next())
}

pub async fn all(db: &Db, tenant_id: Option<&str>) -> Result<Vec<BalanceRow>, sqlx::Error> {
    crate::on_db!(db, pool => {
        sqlx::query(
            "SELECT tenant_id, balance, credited, adjusted, settled, refunded, outstanding, calls,
                    updated_at
               FROM balances WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY tenant_id",
        )
        .bind(tenant_id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(BalanceRow {
                tenant_id: row.try_get("tenant_id")?,
                balance: row.try_get("balance")?,
                credited: row.try_get("credited")?,
                adjusted: row.try_get("adjusted")?,
                settled: row.try_get("settled")?,
                refunded: row.try_get("refunded")?,
                outstanding: row.try_get("outstanding")?,
                calls: row.try_get("calls")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
    })
}

pub(super) async fn dump(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let mut lines: Vec<String> = all(db, None)
        .await?
        .iter()
        .map(|row| serde_json::to_string(row).unwrap_or_default())
        .collect();
    let leases: Vec<String> = crate::on_db!(db, pool => {
        sqlx::query(
            "SELECT tenant_id, lease_id, node, outstanding FROM balance_leases
              ORDER BY tenant_id, lease_id",
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| -> Result<String, sqlx::Error> {
            let tenant: String = row.try_get("tenant_id")?;
            let lease: String = row.try_get("lease_id")?;
            let node: String = row.try_get("node")?;
            let outstanding: i64 = row.try_get("outstanding")?;
            Ok(format!("lease {tenant} {lease} {node} {outstanding}"))
        })
        .collect::<Result<_, _>>()?
    });
    lines.extend(leases);
    Ok(lines)
}

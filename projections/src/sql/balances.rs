//! The balances read model: per tenant, the balance and how it came about, plus the allowance
//! each replica currently holds.
//!
//! Sums are worked out here with checked arithmetic, not in SQL (where SQLite would silently turn
//! an overflowing sum into a float): an event whose amount is beyond `Money::MAX_AMOUNT` (stored
//! by a version before the limit) or whose sum would overflow is an `ApplyError::Event`, left out
//! and reported (`failures.rs`) like the Account aggregate leaves it out.

use modelrouter_domain::account::AccountEvent;
use serde::Serialize;
use sqlx::Row;

use super::{on_tx, ApplyError, DbTx};
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

/// The running totals of one tenant's row.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    balance: i64,
    credited: i64,
    adjusted: i64,
    settled: i64,
    refunded: i64,
    calls: i64,
}

impl Totals {
    /// These totals moved by `delta`, or the name of the first total that would overflow.
    fn plus(self, delta: Totals) -> Result<Totals, &'static str> {
        let add = |total: i64, by: i64, name| total.checked_add(by).ok_or(name);
        Ok(Totals {
            balance: add(self.balance, delta.balance, "balance")?,
            credited: add(self.credited, delta.credited, "credited")?,
            adjusted: add(self.adjusted, delta.adjusted, "adjusted")?,
            settled: add(self.settled, delta.settled, "settled")?,
            refunded: add(self.refunded, delta.refunded, "refunded")?,
            calls: add(self.calls, delta.calls, "calls")?,
        })
    }
}

pub(super) async fn apply(tx: &mut DbTx<'_>, event: &StoredEvent) -> Result<(), ApplyError> {
    let Ok(payload) = serde_json::from_value::<AccountEvent>(event.payload.clone()) else {
        tracing::error!(
            position = event.position,
            "account event does not decode; skipped"
        );
        return Ok(());
    };
    let tenant = event.aggregate_id.as_str();
    if !payload.within_limits() {
        return Err(ApplyError::Event(format!(
            "the amount is beyond the largest single amount ({}); only a version before that \
             limit could store it, and the balance leaves it out",
            modelrouter_domain::Money::MAX_AMOUNT
        )));
    }
    let negative = |amount: i64| {
        amount
            .checked_neg()
            .ok_or_else(|| ApplyError::Event(format!("the amount {amount} cannot be negated")))
    };
    let delta = match &payload {
        AccountEvent::Credited { amount, .. } => Totals {
            balance: amount.0,
            credited: amount.0,
            ..Totals::default()
        },
        AccountEvent::Adjusted { amount, .. } => Totals {
            balance: amount.0,
            adjusted: amount.0,
            ..Totals::default()
        },
        AccountEvent::Refunded { amount, .. } => Totals {
            balance: negative(amount.0)?,
            refunded: amount.0,
            ..Totals::default()
        },
        AccountEvent::UsageSettled { used, calls, .. } => Totals {
            balance: negative(used.0)?,
            settled: used.0,
            calls: i64::try_from(*calls)
                .map_err(|_| ApplyError::Event(format!("{calls} calls do not fit a total")))?,
            ..Totals::default()
        },
        _ => Totals::default(),
    };
    on_tx!(tx, conn => {
        let current = sqlx::query(
            "SELECT balance, credited, adjusted, settled, refunded, calls
               FROM balances WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| -> Result<Totals, sqlx::Error> {
            Ok(Totals {
                balance: row.try_get("balance")?,
                credited: row.try_get("credited")?,
                adjusted: row.try_get("adjusted")?,
                settled: row.try_get("settled")?,
                refunded: row.try_get("refunded")?,
                calls: row.try_get("calls")?,
            })
        })
        .transpose()?
        .unwrap_or_default();
        let next = current.plus(delta).map_err(|total| {
            ApplyError::Event(format!("the tenant's {total} total would overflow"))
        })?;
        sqlx::query(
            "INSERT INTO balances
               (tenant_id, balance, credited, adjusted, settled, outstanding, calls, updated_at,
                refunded)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)
             ON CONFLICT (tenant_id) DO UPDATE SET
               balance = excluded.balance,
               credited = excluded.credited,
               adjusted = excluded.adjusted,
               settled = excluded.settled,
               refunded = excluded.refunded,
               calls = excluded.calls,
               updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(next.balance)
        .bind(next.credited)
        .bind(next.adjusted)
        .bind(next.settled)
        .bind(next.calls)
        .bind(&event.recorded_at)
        .bind(next.refunded)
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
            AccountEvent::AllowanceReturned { lease_id, amount } => {
                sqlx::query(
                    "UPDATE balance_leases
                        SET outstanding = CASE WHEN outstanding > $1 THEN outstanding - $1 ELSE 0 END
                      WHERE tenant_id = $2 AND lease_id = $3",
                )
                .bind(amount.0)
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

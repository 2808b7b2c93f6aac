//! The commissions read model: which tenants each agent referred, commission accrued per agent,
//! month and tenant from those tenants' settled usage, and the payouts operators recorded.
//!
//! Commission is worked out per `UsageSettled` event — the event's amount times the agent's rate
//! in force when it was applied, rounded down to a micro-unit — and summed per month (UTC, by the
//! event's recorded time). Events are applied in log order, so a rebuild reaches the same
//! numbers: the rate and the referral an event sees are those recorded before it.

use chrono::{DateTime, Utc};
use modelrouter_domain::account::AccountEvent;
use modelrouter_domain::agent::AgentEvent;
use modelrouter_domain::aggregate_types as types;
use modelrouter_domain::tenant::TenantEvent;
use serde::Serialize;
use sqlx::Row;

use super::{on_tx, DbTx};
use crate::db::{Db, StoredEvent};

/// An agent's referred tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferredTenant {
    pub tenant_id: String,
    pub registered_at: String,
    /// Settled usage of the tenant, all time and in the month asked for.
    pub usage_total: i64,
    pub usage_month: i64,
    pub commission_total: i64,
}

/// One month of an agent's commission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthRow {
    pub month: String,
    pub tenants: i64,
    pub usage: i64,
    pub calls: i64,
    pub commission: i64,
    pub paid: Option<Payout>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payout {
    pub amount: i64,
    pub reference: String,
    pub paid_at: String,
    pub paid_by: String,
}

/// One tenant's line of a month's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementLine {
    pub tenant_id: String,
    pub usage: i64,
    pub calls: i64,
    pub commission: i64,
}

/// The UTC month (`YYYY-MM`) of an event's recorded time.
fn month_of(recorded_at: &str) -> String {
    DateTime::parse_from_rfc3339(recorded_at)
        .map(|t| t.with_timezone(&Utc).format("%Y-%m").to_string())
        .unwrap_or_else(|_| recorded_at.chars().take(7).collect())
}

/// Commission on `usage` at `bps` basis points, rounded down.
pub fn commission_on(usage: i64, bps: u32) -> i64 {
    let product = i128::from(usage) * i128::from(bps) / 10_000;
    i64::try_from(product).unwrap_or(i64::MAX)
}

pub(super) async fn apply(tx: &mut DbTx<'_>, event: &StoredEvent) -> Result<(), sqlx::Error> {
    match event.aggregate_type.as_str() {
        types::TENANT => apply_tenant(tx, event).await,
        types::AGENT => apply_agent(tx, event).await,
        types::ACCOUNT => apply_account(tx, event).await,
        _ => Ok(()),
    }
}

async fn apply_tenant(tx: &mut DbTx<'_>, event: &StoredEvent) -> Result<(), sqlx::Error> {
    let Ok(TenantEvent::Registered {
        referred_by: Some(agent_id),
        ..
    }) = serde_json::from_value::<TenantEvent>(event.payload.clone())
    else {
        return Ok(());
    };
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO agent_tenants (tenant_id, agent_id, registered_at) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(&event.aggregate_id)
        .bind(&agent_id)
        .bind(&event.recorded_at)
        .execute(conn)
        .await
        .map(|_| ())
    })
}

async fn apply_agent(tx: &mut DbTx<'_>, event: &StoredEvent) -> Result<(), sqlx::Error> {
    let Ok(payload) = serde_json::from_value::<AgentEvent>(event.payload.clone()) else {
        tracing::error!(
            position = event.position,
            "agent event does not decode; skipped"
        );
        return Ok(());
    };
    let agent = event.aggregate_id.as_str();
    match payload {
        AgentEvent::Registered { commission_bps, .. }
        | AgentEvent::CommissionChanged { commission_bps } => on_tx!(tx, conn => {
            sqlx::query(
                "INSERT INTO agent_rates (agent_id, commission_bps) VALUES ($1, $2)
                 ON CONFLICT (agent_id) DO UPDATE SET commission_bps = excluded.commission_bps",
            )
            .bind(agent)
            .bind(i64::from(commission_bps))
            .execute(conn)
            .await
            .map(|_| ())
        }),
        AgentEvent::CommissionPaid {
            month,
            amount,
            reference,
        } => {
            let paid_by = event
                .metadata
                .get(modelrouter_domain::metadata::ACTOR)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            on_tx!(tx, conn => {
                sqlx::query(
                    "INSERT INTO agent_payouts (agent_id, month, amount, reference, paid_at, paid_by)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (agent_id, month) DO NOTHING",
                )
                .bind(agent)
                .bind(&month)
                .bind(amount.0)
                .bind(&reference)
                .bind(&event.recorded_at)
                .bind(&paid_by)
                .execute(conn)
                .await
                .map(|_| ())
            })
        }
        _ => Ok(()),
    }
}

async fn apply_account(tx: &mut DbTx<'_>, event: &StoredEvent) -> Result<(), sqlx::Error> {
    let Ok(AccountEvent::UsageSettled { used, calls, .. }) =
        serde_json::from_value::<AccountEvent>(event.payload.clone())
    else {
        return Ok(());
    };
    let tenant = event.aggregate_id.as_str();
    let month = month_of(&event.recorded_at);
    let calls = i64::try_from(calls).unwrap_or(i64::MAX);
    on_tx!(tx, conn => {
        // Only referred tenants earn commission; most settlements end here.
        let referral = sqlx::query(
            "SELECT t.agent_id, COALESCE(r.commission_bps, 0) AS bps
               FROM agent_tenants t LEFT JOIN agent_rates r ON r.agent_id = t.agent_id
              WHERE t.tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(referral) = referral else {
            return Ok(());
        };
        let agent: String = referral.try_get("agent_id")?;
        let bps: i64 = referral.try_get("bps")?;
        let commission = commission_on(used.0, u32::try_from(bps).unwrap_or(0));
        sqlx::query(
            "INSERT INTO agent_commissions (agent_id, month, tenant_id, usage, calls, commission)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (agent_id, month, tenant_id) DO UPDATE SET
               usage = agent_commissions.usage + excluded.usage,
               calls = agent_commissions.calls + excluded.calls,
               commission = agent_commissions.commission + excluded.commission",
        )
        .bind(&agent)
        .bind(&month)
        .bind(tenant)
        .bind(used.0)
        .bind(calls)
        .bind(commission)
        .execute(&mut *conn)
        .await?;
        Ok(())
    })
}

/// The tenants an agent referred, newest first, with their usage all time and in `month`.
pub async fn tenants_of(
    db: &Db,
    agent_id: &str,
    month: &str,
) -> Result<Vec<ReferredTenant>, sqlx::Error> {
    crate::on_db!(db, pool => {
        sqlx::query(
            "SELECT t.tenant_id, t.registered_at,
                    CAST(COALESCE(SUM(c.usage), 0) AS BIGINT) AS usage_total,
                    CAST(COALESCE(SUM(CASE WHEN c.month = $2 THEN c.usage ELSE 0 END), 0) AS BIGINT)
                      AS usage_month,
                    CAST(COALESCE(SUM(c.commission), 0) AS BIGINT) AS commission_total
               FROM agent_tenants t
               LEFT JOIN agent_commissions c
                 ON c.agent_id = t.agent_id AND c.tenant_id = t.tenant_id
              WHERE t.agent_id = $1
              GROUP BY t.tenant_id, t.registered_at
              ORDER BY t.registered_at DESC, t.tenant_id",
        )
        .bind(agent_id)
        .bind(month)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(ReferredTenant {
                tenant_id: row.try_get("tenant_id")?,
                registered_at: row.try_get("registered_at")?,
                usage_total: row.try_get("usage_total")?,
                usage_month: row.try_get("usage_month")?,
                commission_total: row.try_get("commission_total")?,
            })
        })
        .collect()
    })
}

/// An agent's commission by month, newest first, with each month's payout if recorded. Months
/// with a payout but no accrual (none should exist) are listed too.
pub async fn months_of(db: &Db, agent_id: &str) -> Result<Vec<MonthRow>, sqlx::Error> {
    let accrued: Vec<(String, i64, i64, i64, i64)> = crate::on_db!(db, pool => {
        sqlx::query(
            "SELECT month, COUNT(*) AS tenants, CAST(SUM(usage) AS BIGINT) AS usage,
                    CAST(SUM(calls) AS BIGINT) AS calls,
                    CAST(SUM(commission) AS BIGINT) AS commission
               FROM agent_commissions WHERE agent_id = $1
              GROUP BY month",
        )
        .bind(agent_id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok((
                row.try_get("month")?,
                row.try_get("tenants")?,
                row.try_get("usage")?,
                row.try_get("calls")?,
                row.try_get("commission")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?
    });
    let payouts = payouts_of(db, agent_id).await?;
    let mut months: Vec<MonthRow> = accrued
        .into_iter()
        .map(|(month, tenants, usage, calls, commission)| MonthRow {
            paid: payouts
                .iter()
                .find(|(m, _)| *m == month)
                .map(|(_, p)| p.clone()),
            month,
            tenants,
            usage,
            calls,
            commission,
        })
        .collect();
    for (month, payout) in payouts {
        if !months.iter().any(|m| m.month == month) {
            months.push(MonthRow {
                month,
                tenants: 0,
                usage: 0,
                calls: 0,
                commission: 0,
                paid: Some(payout),
            });
        }
    }
    months.sort_by(|a, b| b.month.cmp(&a.month));
    Ok(months)
}

async fn payouts_of(db: &Db, agent_id: &str) -> Result<Vec<(String, Payout)>, sqlx::Error> {
    crate::on_db!(db, pool => {
        sqlx::query(
            "SELECT month, amount, reference, paid_at, paid_by FROM agent_payouts
              WHERE agent_id = $1 ORDER BY month",
        )
        .bind(agent_id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok((
                row.try_get("month")?,
                Payout {
                    amount: row.try_get("amount")?,
                    reference: row.try_get("reference")?,
                    paid_at: row.try_get("paid_at")?,
                    paid_by: row.try_get("paid_by")?,
                },
            ))
        })
        .collect()
    })
}

/// One month's statement of an agent: a line per referred tenant with settled usage that month.
pub async fn statement(
    db: &Db,
    agent_id: &str,
    month: &str,
) -> Result<Vec<StatementLine>, sqlx::Error> {
    crate::on_db!(db, pool => {
        sqlx::query(
            "SELECT tenant_id, usage, calls, commission FROM agent_commissions
              WHERE agent_id = $1 AND month = $2 ORDER BY commission DESC, tenant_id",
        )
        .bind(agent_id)
        .bind(month)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(StatementLine {
                tenant_id: row.try_get("tenant_id")?,
                usage: row.try_get("usage")?,
                calls: row.try_get("calls")?,
                commission: row.try_get("commission")?,
            })
        })
        .collect()
    })
}

pub(super) async fn dump(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    crate::on_db!(db, pool => {
        let mut lines = Vec::new();
        for row in sqlx::query("SELECT agent_id, commission_bps FROM agent_rates ORDER BY agent_id")
            .fetch_all(pool)
            .await?
        {
            let agent: String = row.try_get("agent_id")?;
            let bps: i64 = row.try_get("commission_bps")?;
            lines.push(format!("rate {agent} {bps}"));
        }
        for row in sqlx::query(
            "SELECT tenant_id, agent_id, registered_at FROM agent_tenants ORDER BY tenant_id",
        )
        .fetch_all(pool)
        .await?
        {
            let tenant: String = row.try_get("tenant_id")?;
            let agent: String = row.try_get("agent_id")?;
            let at: String = row.try_get("registered_at")?;
            lines.push(format!("tenant {tenant} {agent} {at}"));
        }
        for row in sqlx::query(
            "SELECT agent_id, month, tenant_id, usage, calls, commission FROM agent_commissions
              ORDER BY agent_id, month, tenant_id",
        )
        .fetch_all(pool)
        .await?
        {
            let agent: String = row.try_get("agent_id")?;
            let month: String = row.try_get("month")?;
            let tenant: String = row.try_get("tenant_id")?;
            let usage: i64 = row.try_get("usage")?;
            let calls: i64 = row.try_get("calls")?;
            let commission: i64 = row.try_get("commission")?;
            lines.push(format!(
                "commission {agent} {month} {tenant} {usage} {calls} {commission}"
            ));
        }
        for (agent, month, amount, reference, at, by) in sqlx::query_as::<_, (String, String, i64, String, String, String)>(
            "SELECT agent_id, month, amount, reference, paid_at, paid_by FROM agent_payouts
              ORDER BY agent_id, month",
        )
        .fetch_all(pool)
        .await?
        {
            lines.push(format!("payout {agent} {month} {amount} {reference} {at} {by}"));
        }
        Ok(lines)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commission_rounds_down_and_months_are_utc() {
        assert_eq!(commission_on(1_000_000, 1000), 100_000);
        assert_eq!(commission_on(999, 1000), 99);
        assert_eq!(commission_on(i64::MAX, 10_000), i64::MAX);
        assert_eq!(month_of("2026-11-30T23:30:00-02:00"), "2026-12");
        assert_eq!(month_of("2026-11-30T23:30:00Z"), "2026-11");
    }
}

//! The per-call usage read model: one row per metered call.

use modelrouter_domain::inference::InferenceCallEvent;
use serde::Serialize;
use sqlx::Row;

use super::{on_tx, DbTx};
use crate::db::{Db, StoredEvent};

/// The columns of `usage_calls`, in the order [`apply_batch`] binds them and [`row_to_usage`]
/// reads them. A macro rather than a constant so `concat!` can build each statement as one
/// static string: no SQL text is assembled at run time.
macro_rules! usage_columns {
    () => {
        "request_id, tenant_id, key_id, model, inbound_protocol, stream, status, \
         input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, \
         estimated, cost, price_version, latency_ms, ttft_ms, attempts, provider, started_at"
    };
}
pub(super) use usage_columns;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    pub request_id: String,
    pub tenant_id: String,
    pub key_id: String,
    pub model: String,
    pub inbound_protocol: String,
    pub stream: bool,
    pub status: i64,
    pub input_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub estimated: bool,
    pub cost: i64,
    pub price_version: i64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub attempts: i64,
    pub provider: Option<String>,
    pub started_at: String,
}

fn to_i64(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

const COLUMNS: usize = 20;
/// Rows per INSERT: well under SQLite's bound-parameter limit.
const ROWS_PER_STATEMENT: usize = 400;

/// Applies a batch of InferenceCall events with one multi-row INSERT per few hundred calls, so
/// the projection holds the store's write lock briefly even under heavy traffic.
pub(super) async fn apply_batch(
    tx: &mut DbTx<'_>,
    events: &[&StoredEvent],
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&StoredEvent, Box<modelrouter_domain::inference::CallRecord>)> = events
        .iter()
        .filter_map(
            |event| match serde_json::from_value(event.payload.clone()) {
                Ok(InferenceCallEvent::Completed(call)) => Some((*event, call)),
                Err(_) => {
                    tracing::error!(
                        position = event.position,
                        "inference event does not decode; skipped"
                    );
                    None
                }
            },
        )
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        // Placeholders only — never data — go into the SQL text.
        let mut sql = String::from(concat!(
            "INSERT INTO usage_calls (",
            usage_columns!(),
            ") VALUES "
        ));
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let placeholders: Vec<String> = (1..=COLUMNS)
                .map(|c| format!("${}", i * COLUMNS + c))
                .collect();
            sql.push('(');
            sql.push_str(&placeholders.join(","));
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (request_id) DO NOTHING");
        on_tx!(tx, conn => {
            let mut query = sqlx::query(&sql);
            for (event, call) in chunk {
                query = query
                    .bind(&event.aggregate_id)
                    .bind(&call.tenant_id)
                    .bind(&call.key_id)
                    .bind(&call.model)
                    .bind(&call.inbound_protocol)
                    .bind(i64::from(call.stream))
                    .bind(i64::from(call.status))
                    .bind(to_i64(call.usage.input_total))
                    .bind(to_i64(call.usage.cache_read))
                    .bind(to_i64(call.usage.cache_write))
                    .bind(to_i64(call.usage.output_total))
                    .bind(to_i64(call.usage.reasoning))
                    .bind(i64::from(call.usage.estimated))
                    .bind(call.cost.0)
                    .bind(i64::from(call.price_version))
                    .bind(i64::try_from(call.latency_ms).unwrap_or(i64::MAX))
                    .bind(to_i64(call.ttft_ms))
                    .bind(i64::try_from(call.attempts.len()).unwrap_or(i64::MAX))
                    .bind(call.attempts.last().map(|attempt| attempt.provider.clone()))
                    .bind(call.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            }
            query.execute(conn).await.map(|_| ())
        })?;
    }
    add_lease_usage(tx, &rows).await
}

/// Adds each lease's calls of the batch to `lease_usage`, one statement per lease.
async fn add_lease_usage(
    tx: &mut DbTx<'_>,
    rows: &[(&StoredEvent, Box<modelrouter_domain::inference::CallRecord>)],
) -> Result<(), sqlx::Error> {
    let mut per_lease: std::collections::BTreeMap<&str, (&str, i64, i64)> = Default::default();
    for (_, call) in rows {
        if let Some(lease) = &call.lease_id {
            let entry = per_lease.entry(lease).or_insert((&call.tenant_id, 0, 0));
            entry.1 += call.cost.0;
            entry.2 += 1;
        }
    }
    for (lease, (tenant, used, calls)) in per_lease {
        on_tx!(tx, conn => {
            sqlx::query(
                "INSERT INTO lease_usage (lease_id, tenant_id, used, calls) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (lease_id) DO UPDATE SET used = lease_usage.used + excluded.used,
                                                      calls = lease_usage.calls + excluded.calls",
            )
            .bind(lease)
            .bind(tenant)
            .bind(used)
            .bind(calls)
            .execute(conn)
            .await
            .map(|_| ())
        })?;
    }
    Ok(())
}

/// What the calls metered under one lease were charged, and how many there were.
pub async fn lease_usage(db: &Db, lease_id: &str) -> Result<(i64, i64), sqlx::Error> {
    let row: Option<(i64, i64)> = crate::on_db!(db, pool => {
        sqlx::query_as("SELECT used, calls FROM lease_usage WHERE lease_id = $1")
            .bind(lease_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.unwrap_or((0, 0)))
}

/// Calls of one tenant (or all tenants), newest first.
pub async fn calls(
    db: &Db,
    tenant_id: Option<&str>,
    limit: i64,
) -> Result<Vec<UsageRow>, sqlx::Error> {
    crate::on_db!(db, pool => {
        sqlx::query(concat!(
            "SELECT ",
            usage_columns!(),
            " FROM usage_calls WHERE ($1 IS NULL OR tenant_id = $1)
              ORDER BY started_at DESC, request_id LIMIT $2"
        ))
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(row_to_usage)
        .collect()
    })
}

/// Reads a [`UsageRow`] from a row that selected [`usage_columns!`], on either backend.
pub(super) fn row_to_usage<R>(row: &R) -> Result<UsageRow, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(UsageRow {
        request_id: row.try_get("request_id")?,
        tenant_id: row.try_get("tenant_id")?,
        key_id: row.try_get("key_id")?,
        model: row.try_get("model")?,
        inbound_protocol: row.try_get("inbound_protocol")?,
        stream: row.try_get::<i64, _>("stream")? != 0,
        status: row.try_get("status")?,
        input_tokens: row.try_get("input_tokens")?,
        cached_tokens: row.try_get("cached_tokens")?,
        cache_write_tokens: row.try_get("cache_write_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        reasoning_tokens: row.try_get("reasoning_tokens")?,
        estimated: row.try_get::<i64, _>("estimated")? != 0,
        cost: row.try_get("cost")?,
        price_version: row.try_get("price_version")?,
        latency_ms: row.try_get("latency_ms")?,
        ttft_ms: row.try_get("ttft_ms")?,
        attempts: row.try_get("attempts")?,
        provider: row.try_get("provider")?,
        started_at: row.try_get("started_at")?,
    })
}

pub(super) async fn dump(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let mut rows = calls(db, None, i64::MAX).await?;
    rows.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    let mut lines: Vec<String> = rows
        .iter()
        .map(|row| serde_json::to_string(row).unwrap_or_default())
        .collect();
    let leases: Vec<(String, String, i64, i64)> = crate::on_db!(db, pool => {
        sqlx::query_as("SELECT lease_id, tenant_id, used, calls FROM lease_usage ORDER BY lease_id")
            .fetch_all(pool)
            .await?
    });
    lines.extend(
        leases
            .into_iter()
            .map(|(lease, tenant, used, calls)| format!("lease {lease} {tenant} {used} {calls}")),
    );
    Ok(lines)
}

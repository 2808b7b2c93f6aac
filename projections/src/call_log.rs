//! One tenant's metered calls, read straight from the log — not from the usage read model, which
//! is among the things the ledger checks — through migration 0015's index on the tenant id of
//! InferenceCall events. A tenant's calls are found without reading anyone else's, however long
//! the log; only the fields the ledger needs are extracted, in SQL, so whole payloads never
//! leave the database.
//!
//! Each query spells the index's expression and the literal aggregate type exactly as the
//! migration does: a bound parameter or a different spelling would make the planner scan the
//! log instead. On SQLite the queries also name the index (`INDEXED BY`): without statistics
//! its planner may prefer the primary key, which scans every call, and should the index no
//! longer fit the query, the query fails rather than scan.

use serde::Serialize;
use sqlx::Row;

use crate::db::Db;

// The statements are public so that a test can check that their plans use the index.

/// A page of one tenant's calls (`$1` tenant, `$2` after this position, `$3` at most).
pub const SQLITE_CALLS_OF_TENANT: &str = "
    SELECT aggregate_id, global_position,
           CAST(json_extract(payload, '$.Completed.cost') AS TEXT) AS cost,
           CAST(json_extract(payload, '$.Completed.lease_id') AS TEXT) AS lease_id,
           CAST(json_extract(payload, '$.Completed.status') AS TEXT) AS status
      FROM events INDEXED BY events_calls_by_tenant
     WHERE aggregate_type = 'InferenceCall'
       AND json_extract(payload, '$.Completed.tenant_id') = $1
       AND global_position > $2
     ORDER BY global_position
     LIMIT $3";

/// [`SQLITE_CALLS_OF_TENANT`] on PostgreSQL. The payload is a `json` (text) column, which every
/// `->` parses again from the start: the record's fields are taken in one `json_to_record`,
/// which halves the work per call.
pub const POSTGRES_CALLS_OF_TENANT: &str = "
    SELECT events.aggregate_id, events.global_position, call.cost, call.lease_id, call.status
      FROM events
     CROSS JOIN LATERAL json_to_record(events.payload->'Completed')
                        AS call(cost text, lease_id text, status text)
     WHERE events.aggregate_type = 'InferenceCall'
       AND events.payload->'Completed'->>'tenant_id' = $1
       AND events.global_position > $2
     ORDER BY events.global_position
     LIMIT $3";

/// Every tenant id the calls name: from the smallest (every text is `>= ''`), each next one
/// found by one index probe.
pub const SQLITE_TENANTS_WITH_CALLS: &str = "
    WITH RECURSIVE tenant(id) AS (
      SELECT (SELECT json_extract(payload, '$.Completed.tenant_id') FROM events INDEXED BY events_calls_by_tenant
               WHERE aggregate_type = 'InferenceCall'
                 AND json_extract(payload, '$.Completed.tenant_id') >= ''
               ORDER BY json_extract(payload, '$.Completed.tenant_id') LIMIT 1)
      UNION ALL
      SELECT (SELECT json_extract(payload, '$.Completed.tenant_id') FROM events INDEXED BY events_calls_by_tenant
               WHERE aggregate_type = 'InferenceCall'
                 AND json_extract(payload, '$.Completed.tenant_id') > tenant.id
               ORDER BY json_extract(payload, '$.Completed.tenant_id') LIMIT 1)
        FROM tenant WHERE tenant.id IS NOT NULL
    )
    SELECT CAST(id AS TEXT) FROM tenant WHERE id IS NOT NULL";

/// [`SQLITE_TENANTS_WITH_CALLS`] on PostgreSQL.
pub const POSTGRES_TENANTS_WITH_CALLS: &str = "
    WITH RECURSIVE tenant(id) AS (
      SELECT (SELECT payload->'Completed'->>'tenant_id' FROM events
               WHERE aggregate_type = 'InferenceCall'
                 AND payload->'Completed'->>'tenant_id' >= ''
               ORDER BY payload->'Completed'->>'tenant_id' LIMIT 1)
      UNION ALL
      SELECT (SELECT payload->'Completed'->>'tenant_id' FROM events
               WHERE aggregate_type = 'InferenceCall'
                 AND payload->'Completed'->>'tenant_id' > tenant.id
               ORDER BY payload->'Completed'->>'tenant_id' LIMIT 1)
        FROM tenant WHERE tenant.id IS NOT NULL
    )
    SELECT id FROM tenant WHERE id IS NOT NULL";

/// One metered call as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedCall {
    /// The InferenceCall's aggregate id.
    pub request_id: String,
    pub position: i64,
    /// The call's cost in micro-units; None when the record holds no integer that fits (no
    /// version writes one, so the ledger reports it).
    pub cost: Option<i64>,
    /// The allowance lease the call was charged to.
    pub lease_id: Option<String>,
    /// The HTTP status the client saw.
    pub status: Option<u16>,
}

impl Db {
    /// Up to `limit` of the tenant's calls after log position `after`, in log order: read page
    /// by page, a tenant with millions of calls never sits in memory whole.
    pub async fn calls_of_tenant(
        &self,
        tenant_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedCall>, sqlx::Error> {
        // Numbers come back as text on both backends, so a malformed one is reported, not fatal.
        match self {
            Db::Sqlite(pool) => sqlx::query(SQLITE_CALLS_OF_TENANT)
                .bind(tenant_id)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(logged_call)
                .collect(),
            Db::Postgres(pool) => sqlx::query(POSTGRES_CALLS_OF_TENANT)
                .bind(tenant_id)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(logged_call)
                .collect(),
        }
    }

    /// Every tenant id that InferenceCall events name, sorted by byte value. A skip scan of
    /// migration 0015's index: one index probe per tenant, however many calls each has.
    pub async fn tenants_with_calls(&self) -> Result<Vec<String>, sqlx::Error> {
        let mut ids: Vec<String> = match self {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(SQLITE_TENANTS_WITH_CALLS)
                    .fetch_all(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar(POSTGRES_TENANTS_WITH_CALLS)
                    .fetch_all(pool)
                    .await?
            }
        };
        ids.sort_unstable();
        Ok(ids)
    }
}

fn logged_call<R>(row: &R) -> Result<LoggedCall, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let number = |index: usize| -> Result<Option<String>, sqlx::Error> { row.try_get(index) };
    Ok(LoggedCall {
        request_id: row.try_get(0)?,
        position: row.try_get(1)?,
        cost: number(2)?.and_then(|text| text.parse().ok()),
        lease_id: row.try_get(3)?,
        status: number(4)?.and_then(|text| text.parse().ok()),
    })
}

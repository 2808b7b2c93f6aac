//! Which gateway replicas are alive: each serving replica writes a heartbeat, and the allowance
//! leases of a replica whose heartbeat stopped are reclaimed by the others (`allowance.rs`).
//! Plain state, not events: liveness is not a business fact, and the rows come and go.

use modelrouter_projections::on_db;

use super::Db;

/// Says that `node` is alive at `now` (Unix seconds).
pub async fn heartbeat(db: &Db, node: &str, started_at: i64, now: i64) -> Result<(), sqlx::Error> {
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        sqlx::query(
            "INSERT INTO replica_heartbeats (node, started_at, seen_at) VALUES ($1, $2, $3)
             ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(node)
        .bind(started_at)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Removes a replica that stopped gracefully (its leases are already settled and released).
pub async fn forget(db: &Db, node: &str) -> Result<(), sqlx::Error> {
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        sqlx::query("DELETE FROM replica_heartbeats WHERE node = $1")
            .bind(node)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// A lease still holding allowance whose replica has not been seen since the cutoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedLease {
    pub tenant_id: String,
    pub lease_id: String,
    pub node: String,
}

/// Leases in the balances read model whose replica (other than `me`) has no heartbeat at or
/// after `seen_since` (Unix seconds).
pub async fn orphaned_leases(
    db: &Db,
    me: &str,
    seen_since: i64,
) -> Result<Vec<OrphanedLease>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT tenant_id, lease_id, node FROM balance_leases
              WHERE node <> $1
                AND node NOT IN (SELECT node FROM replica_heartbeats WHERE seen_at >= $2)
              ORDER BY tenant_id, lease_id",
        )
        .bind(me)
        .bind(seen_since)
        .fetch_all(pool)
        .await?
    });
    Ok(leases(rows))
}

/// The leases in the balances read model that one node still holds.
pub async fn leases_of_node(db: &Db, node: &str) -> Result<Vec<OrphanedLease>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT tenant_id, lease_id, node FROM balance_leases WHERE node = $1
              ORDER BY tenant_id, lease_id",
        )
        .bind(node)
        .fetch_all(pool)
        .await?
    });
    Ok(leases(rows))
}

fn leases(rows: Vec<(String, String, String)>) -> Vec<OrphanedLease> {
    rows.into_iter()
        .map(|(tenant_id, lease_id, node)| OrphanedLease {
            tenant_id,
            lease_id,
            node,
        })
        .collect()
}

//! Events a SQL projection could not apply. Such an event is recorded here and left out, and the
//! projection goes on with the next one: one bad event (an amount no version accepts any more, a
//! sum that would overflow) must not hold every tenant's balances back. While any failure is
//! unacknowledged, `/health/ready` answers 503 naming it and the console shows it; an operator
//! acknowledges it once understood (it stays listed). A rebuild forgets unacknowledged failures
//! of its projection and records again those that still fail (`rebuild.rs`).

use chrono::Utc;
use serde::Serialize;
use sqlx::Row;

use super::{on_tx, DbTx, Projection};
use crate::db::{Db, StoredEvent};

/// One event a projection left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub projection: String,
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub error: String,
    pub failed_at: String,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
}

impl Failure {
    /// One line for people: which projection, which event, why.
    pub fn describe(&self) -> String {
        format!(
            "projection {} could not apply the event at position {} ({} of {} {}): {}",
            self.projection,
            self.position,
            self.event_type,
            self.aggregate_type,
            self.aggregate_id,
            self.error
        )
    }
}

pub(super) async fn record(
    tx: &mut DbTx<'_>,
    projection: Projection,
    event: &StoredEvent,
    error: &str,
) -> Result<(), sqlx::Error> {
    tracing::error!(
        projection = projection.name(),
        position = event.position,
        aggregate_type = event.aggregate_type,
        aggregate_id = event.aggregate_id,
        error,
        "projection could not apply an event; left out and reported"
    );
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO projection_failures
               (name, position, aggregate_type, aggregate_id, event_type, error, failed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name, position) DO UPDATE SET error = excluded.error",
        )
        .bind(projection.name())
        .bind(event.position)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(&event.event_type)
        .bind(error)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ())
    })
}

/// Every recorded failure, unacknowledged first, oldest event first.
pub async fn all(db: &Db) -> Result<Vec<Failure>, sqlx::Error> {
    crate::on_db!(db, pool => {
        sqlx::query(
            "SELECT name, position, aggregate_type, aggregate_id, event_type, error, failed_at,
                    acknowledged_at, acknowledged_by
               FROM projection_failures
              ORDER BY CASE WHEN acknowledged_at IS NULL THEN 0 ELSE 1 END, position, name",
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(Failure {
                projection: row.try_get("name")?,
                position: row.try_get("position")?,
                aggregate_type: row.try_get("aggregate_type")?,
                aggregate_id: row.try_get("aggregate_id")?,
                event_type: row.try_get("event_type")?,
                error: row.try_get("error")?,
                failed_at: row.try_get("failed_at")?,
                acknowledged_at: row.try_get("acknowledged_at")?,
                acknowledged_by: row.try_get("acknowledged_by")?,
            })
        })
        .collect()
    })
}

/// The failures no operator has acknowledged yet: what makes the replica unready.
pub async fn unacknowledged(db: &Db) -> Result<Vec<Failure>, sqlx::Error> {
    let mut failures = all(db).await?;
    failures.retain(|failure| failure.acknowledged_at.is_none());
    Ok(failures)
}

/// Marks a failure acknowledged by `by`; false when there is no such failure.
pub async fn acknowledge(
    db: &Db,
    projection: Projection,
    position: i64,
    by: &str,
) -> Result<bool, sqlx::Error> {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let _writing = db.write_lock().await;
    let affected = crate::on_db!(db, pool => {
        sqlx::query(
            "UPDATE projection_failures SET acknowledged_at = COALESCE(acknowledged_at, $1),
                    acknowledged_by = COALESCE(acknowledged_by, $2)
              WHERE name = $3 AND position = $4",
        )
        .bind(now)
        .bind(by)
        .bind(projection.name())
        .bind(position)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(affected > 0)
}

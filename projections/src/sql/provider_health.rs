//! Provider health: every upstream attempt of every metered call, counted per provider and per
//! minute (attempts, errors, latency sum and maximum, latency buckets, the minute's newest
//! error). Any window — the console shows the last 15 minutes and the last 24 hours — is a sum
//! of minute rows, and its p95 is read from the summed buckets.
//!
//! The minute is that of the call's `started_at`, not of when the event was stored, so a
//! rebuild puts every attempt where the live projection did. Minutes more than [`KEEP_DAYS`]
//! before the newest call are deleted as calls arrive.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use modelrouter_domain::inference::{CallRecord, InferenceCallEvent};
use serde::Serialize;
use sqlx::Row;

use super::{on_tx, DbTx};
use crate::db::{Db, StoredEvent};

/// Upper bounds (milliseconds) of the latency buckets `b0`..`b10`; `b11` counts the rest.
pub const BUCKET_BOUNDS_MS: [i64; 11] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];
const BUCKETS: usize = BUCKET_BOUNDS_MS.len() + 1;
/// Minutes older than this before the newest call are deleted: the console shows a day, and
/// the log keeps every call for anything older.
pub const KEEP_DAYS: i64 = 7;
/// Errors are kept short: they are attempt summaries, never upstream bodies.
const ERROR_MAX_CHARS: usize = 300;

fn bucket(latency_ms: i64) -> usize {
    BUCKET_BOUNDS_MS
        .iter()
        .position(|bound| latency_ms <= *bound)
        .unwrap_or(BUCKETS - 1)
}

/// The minute row an attempt of a call started at `at` counts in.
pub fn minute_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:00Z").to_string()
}

/// The newest failure seen in a minute (or a window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    /// When the call started, RFC 3339 UTC.
    pub at: String,
    pub error: String,
    pub status: Option<i64>,
    pub upstream_model: String,
}

/// What one provider's attempts added up to, in a minute or a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub attempts: i64,
    pub errors: i64,
    pub latency_sum: i64,
    pub latency_max: i64,
    pub buckets: [i64; BUCKETS],
    pub last_error: Option<LastError>,
}

impl Tally {
    fn add(&mut self, latency_ms: i64, failure: Option<LastError>) {
        self.attempts += 1;
        self.latency_sum += latency_ms;
        self.latency_max = self.latency_max.max(latency_ms);
        self.buckets[bucket(latency_ms)] += 1;
        if let Some(failure) = failure {
            self.errors += 1;
            // The newest by call time; of two at the same time, the later in the log.
            if self
                .last_error
                .as_ref()
                .is_none_or(|last| failure.at >= last.at)
            {
                self.last_error = Some(failure);
            }
        }
    }

    /// Mean latency in milliseconds (rounded down), if there were attempts.
    pub fn average_ms(&self) -> Option<i64> {
        (self.attempts > 0).then(|| self.latency_sum / self.attempts)
    }

    /// An upper estimate of the 95th percentile latency: the upper bound of the bucket in which
    /// 95 % of attempts are reached, but never above the slowest attempt seen.
    pub fn p95_ms(&self) -> Option<i64> {
        if self.attempts == 0 {
            return None;
        }
        // The rank of the 95th percentile, rounded up, in integers.
        let rank = (self.attempts * 95 + 99) / 100;
        let mut seen = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let bound = BUCKET_BOUNDS_MS
                    .get(index)
                    .copied()
                    .unwrap_or(self.latency_max);
                return Some(bound.min(self.latency_max));
            }
        }
        Some(self.latency_max)
    }

    /// Errors per thousand attempts, rounded to the nearest (integers: a rate is shown, not
    /// computed on).
    pub fn error_permille(&self) -> Option<i64> {
        (self.attempts > 0).then(|| (self.errors * 1000 + self.attempts / 2) / self.attempts)
    }
}

fn failure(
    call: &CallRecord,
    attempt: &modelrouter_domain::inference::Attempt,
) -> Option<LastError> {
    let error = attempt.error.as_ref()?;
    Some(LastError {
        at: call
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        error: error.chars().take(ERROR_MAX_CHARS).collect(),
        status: attempt.status.map(i64::from),
        upstream_model: attempt.upstream_model.clone(),
    })
}

/// Adds a batch of InferenceCall events: summed per provider and minute in memory first, then
/// one upsert per (provider, minute), so a busy batch costs a handful of statements.
pub(super) async fn apply_batch(
    tx: &mut DbTx<'_>,
    events: &[&StoredEvent],
) -> Result<(), sqlx::Error> {
    let mut tallies: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for event in events {
        let call = match serde_json::from_value(event.payload.clone()) {
            Ok(InferenceCallEvent::Completed(call)) => call,
            Err(_) => {
                tracing::error!(
                    position = event.position,
                    "inference event does not decode; skipped"
                );
                continue;
            }
        };
        let minute = minute_of(call.started_at);
        for attempt in &call.attempts {
            let latency = i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX);
            tallies
                .entry((attempt.provider.clone(), minute.clone()))
                .or_default()
                .add(latency, failure(&call, attempt));
        }
    }
    if tallies.is_empty() {
        return Ok(());
    }
    for ((provider, minute), tally) in tallies {
        upsert(tx, &provider, &minute, &tally).await?;
    }
    prune(tx).await
}

/// Deletes the minutes more than [`KEEP_DAYS`] before the newest one. Measured from the calls,
/// not the clock, so a rebuild keeps what the live build kept.
async fn prune(tx: &mut DbTx<'_>) -> Result<(), sqlx::Error> {
    let newest: Option<String> = on_tx!(tx, conn => {
        sqlx::query_scalar("SELECT max(minute) FROM provider_health")
            .fetch_one(conn)
            .await
    })?;
    let Some(newest) = newest.and_then(|m| DateTime::parse_from_rfc3339(&m).ok()) else {
        return Ok(());
    };
    let cutoff = minute_of(newest.with_timezone(&Utc) - chrono::Duration::days(KEEP_DAYS));
    on_tx!(tx, conn => {
        sqlx::query("DELETE FROM provider_health WHERE minute < $1")
            .bind(&cutoff)
            .execute(conn)
            .await
            .map(|_| ())
    })
}

async fn upsert(
    tx: &mut DbTx<'_>,
    provider: &str,
    minute: &str,
    tally: &Tally,
) -> Result<(), sqlx::Error> {
    let last = tally.last_error.as_ref();
    on_tx!(tx, conn => {
        let mut query = sqlx::query(
            "INSERT INTO provider_health (provider, minute, attempts, errors, latency_sum,
                 latency_max, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11,
                 last_error_at, last_error, last_status, last_model)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22)
             ON CONFLICT (provider, minute) DO UPDATE SET
                 attempts = provider_health.attempts + excluded.attempts,
                 errors = provider_health.errors + excluded.errors,
                 latency_sum = provider_health.latency_sum + excluded.latency_sum,
                 latency_max = CASE WHEN excluded.latency_max > provider_health.latency_max
                     THEN excluded.latency_max ELSE provider_health.latency_max END,
                 b0 = provider_health.b0 + excluded.b0, b1 = provider_health.b1 + excluded.b1,
                 b2 = provider_health.b2 + excluded.b2, b3 = provider_health.b3 + excluded.b3,
                 b4 = provider_health.b4 + excluded.b4, b5 = provider_health.b5 + excluded.b5,
                 b6 = provider_health.b6 + excluded.b6, b7 = provider_health.b7 + excluded.b7,
                 b8 = provider_health.b8 + excluded.b8, b9 = provider_health.b9 + excluded.b9,
                 b10 = provider_health.b10 + excluded.b10,
                 b11 = provider_health.b11 + excluded.b11,
                 last_error_at = CASE WHEN excluded.last_error_at IS NOT NULL AND
                     (provider_health.last_error_at IS NULL
                      OR excluded.last_error_at >= provider_health.last_error_at)
                     THEN excluded.last_error_at ELSE provider_health.last_error_at END,
                 last_error = CASE WHEN excluded.last_error_at IS NOT NULL AND
                     (provider_health.last_error_at IS NULL
                      OR excluded.last_error_at >= provider_health.last_error_at)
                     THEN excluded.last_error ELSE provider_health.last_error END,
                 last_status = CASE WHEN excluded.last_error_at IS NOT NULL AND
                     (provider_health.last_error_at IS NULL
                      OR excluded.last_error_at >= provider_health.last_error_at)
                     THEN excluded.last_status ELSE provider_health.last_status END,
                 last_model = CASE WHEN excluded.last_error_at IS NOT NULL AND
                     (provider_health.last_error_at IS NULL
                      OR excluded.last_error_at >= provider_health.last_error_at)
                     THEN excluded.last_model ELSE provider_health.last_model END",
        )
        .bind(provider)
        .bind(minute)
        .bind(tally.attempts)
        .bind(tally.errors)
        .bind(tally.latency_sum)
        .bind(tally.latency_max);
        for count in tally.buckets {
            query = query.bind(count);
        }
        query
            .bind(last.map(|l| l.at.clone()))
            .bind(last.map(|l| l.error.clone()))
            .bind(last.and_then(|l| l.status))
            .bind(last.map(|l| l.upstream_model.clone()))
            .execute(conn)
            .await
            .map(|_| ())
    })
}

/// The columns [`read_tally`] reads, summed over a window or taken from one row.
macro_rules! summed_columns {
    () => {
        "CAST(sum(attempts) AS BIGINT) AS attempts, CAST(sum(errors) AS BIGINT) AS errors,
         CAST(sum(latency_sum) AS BIGINT) AS latency_sum,
         CAST(max(latency_max) AS BIGINT) AS latency_max,
         CAST(sum(b0) AS BIGINT) AS b0, CAST(sum(b1) AS BIGINT) AS b1,
         CAST(sum(b2) AS BIGINT) AS b2, CAST(sum(b3) AS BIGINT) AS b3,
         CAST(sum(b4) AS BIGINT) AS b4, CAST(sum(b5) AS BIGINT) AS b5,
         CAST(sum(b6) AS BIGINT) AS b6, CAST(sum(b7) AS BIGINT) AS b7,
         CAST(sum(b8) AS BIGINT) AS b8, CAST(sum(b9) AS BIGINT) AS b9,
         CAST(sum(b10) AS BIGINT) AS b10, CAST(sum(b11) AS BIGINT) AS b11"
    };
}

fn read_tally<R>(row: &R) -> Result<Tally, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut buckets = [0; BUCKETS];
    for (index, count) in buckets.iter_mut().enumerate() {
        *count = row.try_get(format!("b{index}").as_str())?;
    }
    Ok(Tally {
        attempts: row.try_get("attempts")?,
        errors: row.try_get("errors")?,
        latency_sum: row.try_get("latency_sum")?,
        latency_max: row.try_get("latency_max")?,
        buckets,
        last_error: None,
    })
}

fn read_last_error<R>(row: &R) -> Result<Option<LastError>, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let at: Option<String> = row.try_get("last_error_at")?;
    let Some(at) = at else {
        return Ok(None);
    };
    Ok(Some(LastError {
        at,
        error: row
            .try_get::<Option<String>, _>("last_error")?
            .unwrap_or_default(),
        status: row.try_get("last_status")?,
        upstream_model: row
            .try_get::<Option<String>, _>("last_model")?
            .unwrap_or_default(),
    }))
}

/// Every provider's tally over the minutes from `since` (inclusive) on, with the newest error
/// of the window.
pub async fn window(db: &Db, since: DateTime<Utc>) -> Result<BTreeMap<String, Tally>, sqlx::Error> {
    let since = minute_of(since);
    let mut tallies = BTreeMap::new();
    crate::on_db!(db, pool => {
        let rows = sqlx::query(concat!(
            "SELECT provider, ",
            summed_columns!(),
            " FROM provider_health WHERE minute >= $1 GROUP BY provider"
        ))
        .bind(&since)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            let provider: String = row.try_get("provider")?;
            tallies.insert(provider, read_tally(row)?);
        }
        // The newest error per provider: rows are few (one per minute), so pick in Rust.
        let rows = sqlx::query(
            "SELECT provider, last_error_at, last_error, last_status, last_model
               FROM provider_health
              WHERE minute >= $1 AND last_error_at IS NOT NULL
              ORDER BY last_error_at DESC",
        )
        .bind(&since)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            let provider: String = row.try_get("provider")?;
            if let Some(tally) = tallies.get_mut(&provider) {
                if tally.last_error.is_none() {
                    tally.last_error = read_last_error(row)?;
                }
            }
        }
    });
    Ok(tallies)
}

pub(super) async fn dump(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    crate::on_db!(db, pool => {
        let rows = sqlx::query(concat!(
            "SELECT provider, minute, ",
            summed_columns!(),
            ", max(last_error_at) AS last_error_at, max(last_error) AS last_error,
               max(last_status) AS last_status, max(last_model) AS last_model
               FROM provider_health GROUP BY provider, minute ORDER BY provider, minute"
        ))
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                let provider: String = row.try_get("provider")?;
                let minute: String = row.try_get("minute")?;
                let mut tally = read_tally(row)?;
                tally.last_error = read_last_error(row)?;
                Ok(format!(
                    "{provider} {minute} {}",
                    serde_json::to_string(&tally).unwrap_or_default()
                ))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(latencies: &[i64]) -> Tally {
        let mut tally = Tally::default();
        for latency in latencies {
            tally.add(*latency, None);
        }
        tally
    }

    #[test]
    fn p95_is_the_bucket_bound_where_95_percent_are_reached() {
        // 95 fast attempts and 5 slow ones: the 95th is still fast.
        let mut latencies = vec![20; 95];
        latencies.extend([4_000; 5]);
        assert_eq!(tally(&latencies).p95_ms(), Some(25));
        // 94 fast and 6 slow: the 95th is slow.
        let mut latencies = vec![20; 94];
        latencies.extend([4_000; 6]);
        assert_eq!(tally(&latencies).p95_ms(), Some(4_000));
        // Never above the slowest attempt, and the open last bucket reports the slowest.
        assert_eq!(tally(&[3]).p95_ms(), Some(3));
        assert_eq!(tally(&[45_000, 50_000]).p95_ms(), Some(50_000));
        assert_eq!(Tally::default().p95_ms(), None);
    }

    #[test]
    fn averages_and_error_rates_are_integers() {
        let mut t = tally(&[10, 20, 31]);
        assert_eq!(t.average_ms(), Some(20));
        t.add(
            5,
            Some(LastError {
                at: "2026-01-01T00:00:00.000Z".into(),
                error: "the upstream answered 500".into(),
                status: Some(500),
                upstream_model: "m".into(),
            }),
        );
        assert_eq!(t.errors, 1);
        assert_eq!(t.error_permille(), Some(250));
        assert_eq!(bucket(10), 0);
        assert_eq!(bucket(11), 1);
        assert_eq!(bucket(30_001), BUCKETS - 1);
    }
}

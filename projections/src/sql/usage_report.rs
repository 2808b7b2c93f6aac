//! Usage reports for one tenant over the `usage_calls` read model: the matching calls page by
//! page, how many there are, and totals per model, per UTC day and per key — what the tenant
//! portal's usage page shows.
//!
//! Every query is one tenant's: the tenant id is not optional. Every statement is static SQL
//! with the same filter (`filter_where!`) bound in the same order, so no SQL text is built
//! from what a user typed.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::query::Query;
use sqlx::{Database, Row};

use super::usage::{self, row_to_usage, usage_columns};
use crate::db::Db;

/// Which of one tenant's calls a report covers. Absent bounds and filters match everything.
#[derive(Debug, Clone, Copy)]
pub struct UsageFilter<'a> {
    pub tenant_id: &'a str,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    pub key_id: Option<&'a str>,
    pub model: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelTotals {
    pub model: String,
    pub requests: i64,
    /// Calls whose caller saw a status of 400 or above.
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    /// Micro-units.
    pub cost: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayTotals {
    /// `YYYY-MM-DD`, in UTC.
    pub day: String,
    pub requests: i64,
    /// Micro-units.
    pub cost: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyTotals {
    pub key_id: String,
    pub requests: i64,
    /// Micro-units.
    pub cost: i64,
    /// The newest call's `started_at`.
    pub last_used: Option<String>,
}

/// Matching calls, newest first (started_at DESC, request_id), paged. A negative limit or
/// offset counts as zero.
pub async fn page(
    db: &Db,
    filter: &UsageFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<usage::UsageRow>, sqlx::Error> {
    let binds = Binds::of(filter);
    crate::on_db!(db, pool => {
        binds
            .bind(sqlx::query(concat!(
                "SELECT ",
                usage_columns!(),
                " FROM usage_calls WHERE ",
                filter_where!(),
                " ORDER BY started_at DESC, request_id LIMIT $6 OFFSET $7"
            )))
            .bind(limit.max(0))
            .bind(offset.max(0))
            .fetch_all(pool)
            .await?
            .iter()
            .map(row_to_usage)
            .collect()
    })
}

/// How many calls match.
pub async fn count(db: &Db, filter: &UsageFilter<'_>) -> Result<i64, sqlx::Error> {
    let binds = Binds::of(filter);
    crate::on_db!(db, pool => {
        binds
            .bind(sqlx::query(concat!(
                "SELECT CAST(COUNT(*) AS BIGINT) AS calls FROM usage_calls WHERE ",
                filter_where!()
            )))
            .fetch_one(pool)
            .await?
            .try_get("calls")
    })
}

/// Totals per model over the matching calls, highest cost first then model name.
pub async fn totals_by_model(
    db: &Db,
    filter: &UsageFilter<'_>,
) -> Result<Vec<ModelTotals>, sqlx::Error> {
    let binds = Binds::of(filter);
    // PostgreSQL's SUM of bigint is numeric; the casts make both backends return a 64-bit
    // integer. Tokens the upstream did not report (NULL) add nothing.
    crate::on_db!(db, pool => {
        binds
            .bind(sqlx::query(concat!(
                "SELECT model,
                        CAST(COUNT(*) AS BIGINT) AS requests,
                        CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0)
                             AS BIGINT) AS errors,
                        CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens,
                        CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens,
                        CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens,
                        CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost
                   FROM usage_calls WHERE ",
                filter_where!(),
                " GROUP BY model ORDER BY cost DESC, model"
            )))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(ModelTotals {
                    model: row.try_get("model")?,
                    requests: row.try_get("requests")?,
                    errors: row.try_get("errors")?,
                    input_tokens: row.try_get("input_tokens")?,
                    output_tokens: row.try_get("output_tokens")?,
                    cached_tokens: row.try_get("cached_tokens")?,
                    cost: row.try_get("cost")?,
                })
            })
            .collect()
    })
}

/// Per-UTC-day totals over the matching calls, oldest day first; days without calls are absent.
pub async fn daily(db: &Db, filter: &UsageFilter<'_>) -> Result<Vec<DayTotals>, sqlx::Error> {
    let binds = Binds::of(filter);
    // `started_at` is always UTC RFC 3339, so its first ten characters are the UTC day.
    crate::on_db!(db, pool => {
        binds
            .bind(sqlx::query(concat!(
                "SELECT substr(started_at, 1, 10) AS day,
                        CAST(COUNT(*) AS BIGINT) AS requests,
                        CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost
                   FROM usage_calls WHERE ",
                filter_where!(),
                " GROUP BY substr(started_at, 1, 10) ORDER BY day"
            )))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(DayTotals {
                    day: row.try_get("day")?,
                    requests: row.try_get("requests")?,
                    cost: row.try_get("cost")?,
                })
            })
            .collect()
    })
}

/// Totals and last use per key of one tenant, over all time; the most recently used key first
/// (then by key id). Keys that never made a call are absent: this read model only knows calls.
pub async fn by_key(db: &Db, tenant_id: &str) -> Result<Vec<KeyTotals>, sqlx::Error> {
    crate::on_db!(db, pool => {
        sqlx::query(
            "SELECT key_id,
                    CAST(COUNT(*) AS BIGINT) AS requests,
                    CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost,
                    MAX(started_at) AS last_used
               FROM usage_calls WHERE tenant_id = $1
              GROUP BY key_id ORDER BY last_used DESC, key_id",
        )
        .bind(tenant_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| {
            Ok(KeyTotals {
                key_id: row.try_get("key_id")?,
                requests: row.try_get("requests")?,
                cost: row.try_get("cost")?,
                last_used: row.try_get("last_used")?,
            })
        })
        .collect()
    })
}

/// The one WHERE clause of every filtered report, with placeholders `$1`–`$5` that
/// [`Binds::bind`] fills in this order: tenant, from, until, key, model.
///
/// The time bounds are always bound (an absent one becomes [`EARLIEST`] or [`LATEST`]) rather
/// than written `($2 IS NULL OR started_at >= $2)`: a plain range lets SQLite and PostgreSQL
/// walk the `(tenant_id, started_at)` index over just the requested period, where the `IS NULL`
/// form makes SQLite read every call the tenant ever made. Key and model keep the `IS NULL`
/// form; it needs no cast on PostgreSQL because sqlx sends every parameter typed (text).
macro_rules! filter_where {
    () => {
        "tenant_id = $1 AND started_at >= $2 AND started_at < $3 \
         AND ($4 IS NULL OR key_id = $4) AND ($5 IS NULL OR model = $5)"
    };
}
use filter_where;

/// Below every stamp the gateway writes (same format, so it compares as a string).
const EARLIEST: &str = "0000-01-01T00:00:00.000Z";
/// Above every stamp a call can carry (chrono's clock stays far below the year 9999).
const LATEST: &str = "9999-12-31T23:59:59.999Z";

/// A [`UsageFilter`] as the values [`filter_where!`] expects.
struct Binds<'a> {
    tenant_id: &'a str,
    from: String,
    until: String,
    key_id: Option<&'a str>,
    model: Option<&'a str>,
}

impl<'a> Binds<'a> {
    fn of(filter: &UsageFilter<'a>) -> Binds<'a> {
        Binds {
            tenant_id: filter.tenant_id,
            from: filter.from.map_or_else(|| EARLIEST.to_owned(), stamp),
            until: filter.until.map_or_else(|| LATEST.to_owned(), stamp),
            key_id: filter.key_id,
            model: filter.model,
        }
    }

    fn bind<'q, DB>(
        &'q self,
        query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    ) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
    where
        DB: Database,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        query
            .bind(self.tenant_id)
            .bind(self.from.as_str())
            .bind(self.until.as_str())
            .bind(self.key_id)
            .bind(self.model)
    }
}

/// A bound in the stored format of `started_at` (UTC, milliseconds, `Z`), so string order is
/// time order. Bounds are compared at the millisecond, as calls are stored. Instants outside the
/// four-digit years would not compare as strings, so they are clamped to the ends.
fn stamp(at: DateTime<Utc>) -> String {
    let text = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    // chrono writes years before 0 as `-YYYY` and after 9999 as `+YYYYY`.
    if text.starts_with('-') {
        EARLIEST.to_owned()
    } else if text.starts_with('+') {
        LATEST.to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bounds_are_stamped_like_stored_calls_and_clamped_to_four_digit_years() {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 16, 40, 12).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(stamp(at), "2026-11-25T16:40:12.123Z");
        assert_eq!(stamp(DateTime::<Utc>::MIN_UTC), EARLIEST);
        assert_eq!(stamp(DateTime::<Utc>::MAX_UTC), LATEST);
        let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(stamp(far), LATEST);
    }
}

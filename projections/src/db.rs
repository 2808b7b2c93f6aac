//! The two storage backends behind one type. SQL that is the same on both is written once with
//! [`on_db!`], which expands it for each pool so each stays fully type-checked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

/// Creates the SQLite file, if it does not exist yet, readable and writable by its owner only
/// (0600, whatever the umask): it holds password hashes, sealed credentials and every tenant's
/// usage. SQLite gives the `-wal` and `-shm` files it creates the database file's mode. A file
/// that exists keeps the mode its operator gave it.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(file) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            drop(file);
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Runs the same expression against whichever pool a [`Db`] holds.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// The columns a [`StoredEvent`] is read from, per backend (PostgreSQL keeps JSON as `jsonb` and
/// times as `timestamptz`; both come back as text in one format).
macro_rules! sqlite_select_events {
    () => {
        "SELECT 0 AS tx, global_position, aggregate_type, aggregate_id, sequence,
                event_type, payload, metadata, recorded_at
           FROM events"
    };
}
macro_rules! pg_select_events {
    () => {
        "SELECT tx::text::bigint AS tx, global_position, aggregate_type, aggregate_id,
                sequence, event_type, payload::text AS payload, metadata::text AS metadata,
                to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                  AS recorded_at
           FROM events"
    };
}

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An event as the tail reads it: the log's order plus the raw payload.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub tx: i64,
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: String,
}

/// What an audit search looks for; every field left `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter<'a> {
    pub aggregate_type: Option<&'a str>,
    pub aggregate_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    /// The actor as stored in the metadata: `operator:<id>`, `tenant:<id>`, `cli`, `system`, …
    pub actor: Option<&'a str>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events before this global position (the next page).
    pub before: Option<i64>,
    /// Whether metered calls (InferenceCall events, the bulk of the log) are included.
    pub include_calls: bool,
}

/// A time as SQLite's `recorded_at` text has it (`2026-11-25T10:00:00.000Z`), which also casts
/// to PostgreSQL's timestamptz.
fn rfc3339_millis(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A point in the log: the transaction order (0 on SQLite) and the global position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TailPosition {
    pub tx: i64,
    pub position: i64,
}

impl StoredEvent {
    pub fn tail_position(&self) -> TailPosition {
        TailPosition {
            tx: self.tx,
            position: self.position,
        }
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// One fair write lock per SQLite file in this process (see [`Db::write_lock`]).
static SQLITE_WRITE_LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Db {
    /// Serializes this process's writes to a SQLite file. SQLite allows one writer at a time
    /// and makes the others sleep and retry (up to 100 ms a sleep, with no fairness), so under
    /// load concurrent writers — metering, projections, allowance commands — starve each other.
    /// Queueing them on one FIFO lock instead keeps every write short. PostgreSQL needs none.
    pub async fn write_lock(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let Db::Sqlite(pool) = self else {
            return None;
        };
        let path = pool.connect_options().get_filename().to_path_buf();
        let lock = {
            let mut locks = SQLITE_WRITE_LOCKS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            locks.entry(path).or_default().clone()
        };
        Some(lock.lock_owned().await)
    }

    /// Connects to `postgres://…` URLs, or else to the SQLite file `path_or_url` names
    /// (`sqlite://…` or a plain path), creating it if missing.
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            if !path.starts_with(':') {
                create_private(std::path::Path::new(path)).map_err(sqlx::Error::Io)?;
            }
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    /// Reads up to `limit` events after `after`, in log order. On PostgreSQL only events a
    /// tailer may read are returned ([`tail_bound`]), so the order never changes after it was
    /// read.
    pub async fn read_events(
        &self,
        after: TailPosition,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        self.read_events_of(Types::All, after, limit).await
    }

    /// [`Db::read_events`] limited to some aggregate types: each projection reads only its
    /// own, through an index, so none scans the bulk of the log (InferenceCall events) to
    /// find them.
    pub async fn read_events_of(
        &self,
        types: Types<'_>,
        after: TailPosition,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        match self {
            Db::Sqlite(pool) => {
                read_events_sqlite(&mut *pool.acquire().await?, types, after, limit).await
            }
            Db::Postgres(pool) => {
                read_events_postgres(&mut *pool.acquire().await?, types, after, limit).await
            }
        }
    }

    /// Every event of one aggregate, in sequence order. Unlike [`Db::read_events`] this is not
    /// limited to what a tailer may read yet (on PostgreSQL, transactions older than every
    /// running one): it is for audits, which want everything committed.
    pub async fn events_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let rows = match self {
            Db::Sqlite(pool) => sqlx::query(concat!(
                sqlite_select_events!(),
                " WHERE aggregate_type = $1 AND aggregate_id = $2
                      ORDER BY sequence"
            ))
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| stored_event(&row))
            .collect::<Result<Vec<_>, _>>()?,
            Db::Postgres(pool) => sqlx::query(concat!(
                pg_select_events!(),
                " WHERE aggregate_type = $1 AND aggregate_id = $2
                      ORDER BY sequence"
            ))
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| stored_event(&row))
            .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    /// Events matching an audit filter, newest first, at most `limit` of them.
    pub async fn search_events(
        &self,
        filter: &EventFilter<'_>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let from = filter.from.map(rfc3339_millis);
        let until = filter.until.map(rfc3339_millis);
        let rows = match self {
            Db::Sqlite(pool) => sqlx::query(concat!(
                sqlite_select_events!(),
                " WHERE ($1 IS NULL OR aggregate_type = $1)
                    AND ($2 IS NULL OR aggregate_id = $2)
                    AND ($3 IS NULL OR event_type = $3)
                    AND ($4 IS NULL OR json_extract(metadata, '$.actor') = $4)
                    AND ($5 IS NULL OR recorded_at >= $5)
                    AND ($6 IS NULL OR recorded_at < $6)
                    AND ($7 IS NULL OR global_position < $7)
                    AND ($8 OR aggregate_type <> 'InferenceCall')
                  ORDER BY global_position DESC LIMIT $9"
            ))
            .bind(filter.aggregate_type)
            .bind(filter.aggregate_id)
            .bind(filter.event_type)
            .bind(filter.actor)
            .bind(&from)
            .bind(&until)
            .bind(filter.before)
            .bind(filter.include_calls)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| stored_event(&row))
            .collect::<Result<Vec<_>, _>>()?,
            Db::Postgres(pool) => sqlx::query(concat!(
                pg_select_events!(),
                " WHERE ($1::text IS NULL OR aggregate_type = $1)
                    AND ($2::text IS NULL OR aggregate_id = $2)
                    AND ($3::text IS NULL OR event_type = $3)
                    AND ($4::text IS NULL OR metadata->>'actor' = $4)
                    AND ($5::text IS NULL OR recorded_at >= $5::timestamptz)
                    AND ($6::text IS NULL OR recorded_at < $6::timestamptz)
                    AND ($7::bigint IS NULL OR global_position < $7)
                    AND ($8 OR aggregate_type <> 'InferenceCall')
                  ORDER BY global_position DESC LIMIT $9"
            ))
            .bind(filter.aggregate_type)
            .bind(filter.aggregate_id)
            .bind(filter.event_type)
            .bind(filter.actor)
            .bind(&from)
            .bind(&until)
            .bind(filter.before)
            .bind(filter.include_calls)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| stored_event(&row))
            .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    /// The distinct ids of every aggregate of one type that has events, sorted by byte value
    /// (in Rust, so both backends agree whatever PostgreSQL's collation).
    pub async fn aggregate_ids(&self, aggregate_type: &str) -> Result<Vec<String>, sqlx::Error> {
        let mut ids: Vec<String> = on_db!(self, pool => {
            sqlx::query_scalar("SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = $1")
                .bind(aggregate_type)
                .fetch_all(pool)
                .await?
        });
        ids.sort_unstable();
        Ok(ids)
    }

    /// How many events carry `request_id` in their metadata (e.g. one import run's).
    pub async fn count_events_of_request(&self, request_id: &str) -> Result<i64, sqlx::Error> {
        match self {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM events WHERE json_extract(metadata, '$.request_id') = $1",
                )
                .bind(request_id)
                .fetch_one(pool)
                .await
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar("SELECT count(*) FROM events WHERE metadata->>'request_id' = $1")
                    .bind(request_id)
                    .fetch_one(pool)
                    .await
            }
        }
    }

    /// Where the newest committed event of one aggregate sits in the log (whether or not a
    /// tailer could read it yet), or None when the aggregate has no events.
    pub async fn last_event_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<TailPosition>, sqlx::Error> {
        let tx = match self {
            Db::Sqlite(_) => "0",
            Db::Postgres(_) => "tx::text::bigint",
        };
        // Only the backend's column expression — never data — goes into the SQL text.
        let sql = format!(
            "SELECT {tx} AS tx, global_position FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2
              ORDER BY sequence DESC LIMIT 1"
        );
        let row = on_db!(self, pool => sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_optional(pool)
            .await?
            .map(|row| (row.try_get("tx"), row.try_get("global_position"))));
        match row {
            None => Ok(None),
            Some((tx, position)) => Ok(Some(TailPosition {
                tx: tx?,
                position: position?,
            })),
        }
    }

    /// The position of the newest event a tailer could read now.
    pub async fn head(&self) -> Result<TailPosition, sqlx::Error> {
        self.newest(Types::All, true).await
    }

    /// The position of the newest committed event. On PostgreSQL a tailer may not read it yet
    /// while an older transaction of this database is still open (migration 0014): this is
    /// what a read of one's own writes waits for.
    pub async fn committed_head(&self) -> Result<TailPosition, sqlx::Error> {
        self.newest(Types::All, false).await
    }

    /// [`Db::committed_head`] among some aggregate types: where a projection that reads only
    /// those types stands once it has applied everything committed.
    pub async fn committed_head_of(&self, types: Types<'_>) -> Result<TailPosition, sqlx::Error> {
        self.newest(types, false).await
    }

    /// [`Db::head`] among some aggregate types.
    pub async fn head_of(&self, types: Types<'_>) -> Result<TailPosition, sqlx::Error> {
        self.newest(types, true).await
    }

    async fn newest(
        &self,
        types: Types<'_>,
        readable_only: bool,
    ) -> Result<TailPosition, sqlx::Error> {
        let mut newest = TailPosition::default();
        // Only constant clauses and placeholders go into the SQL text.
        let of_type = |filter: Option<&str>, first: usize| {
            filter.map_or(String::new(), |_| format!("AND aggregate_type = ${first}"))
        };
        match self {
            Db::Sqlite(pool) => {
                for filter in types.each() {
                    let sql = format!(
                        "SELECT 0 AS tx, global_position FROM events WHERE 1 = 1 {}
                          ORDER BY global_position DESC LIMIT 1",
                        of_type(filter, 1)
                    );
                    let mut query = sqlx::query(&sql);
                    if let Some(aggregate_type) = filter {
                        query = query.bind(aggregate_type);
                    }
                    let row = query.fetch_optional(pool).await?;
                    if let Some(row) = row {
                        newest = newest.max(tail_position_of(&row)?);
                    }
                }
            }
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let bound = match readable_only {
                    true => tail_bound(&mut conn).await?,
                    false => i64::MAX,
                };
                for filter in types.each() {
                    let sql = format!(
                        "SELECT tx::text::bigint AS tx, global_position FROM events
                          WHERE events.tx < $1::text::xid8 {}
                          ORDER BY events.tx DESC, events.global_position DESC LIMIT 1",
                        of_type(filter, 2)
                    );
                    let mut query = sqlx::query(&sql).bind(bound);
                    if let Some(aggregate_type) = filter {
                        query = query.bind(aggregate_type);
                    }
                    let row = query.fetch_optional(&mut *conn).await?;
                    if let Some(row) = row {
                        newest = newest.max(tail_position_of(&row)?);
                    }
                }
            }
        }
        Ok(newest)
    }
}

/// Which aggregate types a read of the log is about.
#[derive(Debug, Clone, Copy)]
pub enum Types<'a> {
    All,
    Only(&'a [&'a str]),
}

impl<'a> Types<'a> {
    /// One filter per type (None: no filter), so each query walks one index range in order.
    fn each(self) -> Vec<Option<&'a str>> {
        match self {
            Types::All => vec![None],
            Types::Only(types) => types.iter().map(|t| Some(*t)).collect(),
        }
    }
}

fn tail_position_of<R>(row: &R) -> Result<TailPosition, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(TailPosition {
        tx: row.try_get("tx")?,
        position: row.try_get("global_position")?,
    })
}

/// The transaction id below which every event of this database is committed (or rolled back)
/// and visible: the oldest running transaction of this database that has written anything,
/// else the next transaction id (migration 0014). Transactions in other databases on the same
/// server never hold it back. It must be taken in a statement *before* the read it bounds.
async fn tail_bound(conn: &mut sqlx::PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT modelrouter_tail_bound()::text::bigint")
        .fetch_one(conn)
        .await
}

/// The SQL of one tail read: per type, the next `limit` events after a position, walked in
/// index order and merged — never a sort of everything after the position. Parameters:
/// PostgreSQL `$1` tx, `$2` position, `$3` limit, `$4` the tail bound, types from `$5`;
/// SQLite `$1` position, `$2` limit, types from `$3`.
fn tail_sql(select: &str, types: Types<'_>, postgres: bool) -> String {
    let (after, order, limit, first_type) = if postgres {
        (
            "(events.tx, events.global_position) > ($1::text::xid8, $2) \
             AND events.tx < $4::text::xid8",
            "ORDER BY events.tx, events.global_position",
            "$3",
            5,
        )
    } else {
        (
            "events.global_position > $1",
            "ORDER BY events.global_position",
            "$2",
            3,
        )
    };
    // Only constant clauses and placeholders go into the SQL text.
    match types {
        Types::All => format!("{select} WHERE {after} {order} LIMIT {limit}"),
        Types::Only(types) => {
            let parts: Vec<String> = (0..types.len())
                .map(|i| {
                    format!(
                        "SELECT * FROM ({select} WHERE aggregate_type = ${} AND {after} {order} \
                         LIMIT {limit}) AS part{i}",
                        i + first_type
                    )
                })
                .collect();
            format!(
                "SELECT * FROM ({}) AS merged ORDER BY tx, global_position LIMIT {limit}",
                parts.join(" UNION ALL ")
            )
        }
    }
}

/// [`Db::read_events_of`] on a given SQLite connection (a projection's own transaction).
/// SQLite has one writer at a time, so rowid order is commit order: no bound is needed.
pub(crate) async fn read_events_sqlite(
    conn: &mut sqlx::SqliteConnection,
    types: Types<'_>,
    after: TailPosition,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = tail_sql(sqlite_select_events!(), types, false);
    let mut query = sqlx::query(&sql).bind(after.position).bind(limit);
    if let Types::Only(types) = types {
        for aggregate_type in types {
            query = query.bind(*aggregate_type);
        }
    }
    query
        .fetch_all(conn)
        .await?
        .iter()
        .map(stored_event)
        .collect()
}

/// [`Db::read_events_of`] on a given PostgreSQL connection (a projection's own transaction):
/// only events below the tail bound, in `(tx, global_position)` order.
pub(crate) async fn read_events_postgres(
    conn: &mut sqlx::PgConnection,
    types: Types<'_>,
    after: TailPosition,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let bound = tail_bound(&mut *conn).await?;
    let sql = tail_sql(pg_select_events!(), types, true);
    let mut query = sqlx::query(&sql)
        .bind(after.tx)
        .bind(after.position)
        .bind(limit)
        .bind(bound);
    if let Types::Only(types) = types {
        for aggregate_type in types {
            query = query.bind(*aggregate_type);
        }
    }
    query
        .fetch_all(conn)
        .await?
        .iter()
        .map(stored_event)
        .collect()
}

fn stored_event<R>(row: &R) -> Result<StoredEvent, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let json = |column: &str| -> Result<serde_json::Value, sqlx::Error> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    };
    Ok(StoredEvent {
        tx: row.try_get("tx")?,
        position: row.try_get("global_position")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        payload: json("payload")?,
        metadata: json("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

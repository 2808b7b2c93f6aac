//! SQL read models. Each projection applies the events it cares about and keeps a checkpoint
//! (the last event it applied) in the same transaction, so a crash never applies an event twice
//! or skips one. Replicas share the work safely: a batch holds the checkpoint row's lock.
//!
//! An event a projection cannot apply — an amount beyond every limit, a sum that would overflow
//! (`ApplyError::Event`) — is recorded in `projection_failures` and left out, and the projection
//! goes on (`failures.rs`): the other tenants' read models stay right and current, and readiness
//! reports the failure. A database that fails (`ApplyError::Database`) is retried as before.

pub mod balances;
pub mod commissions;
pub mod failures;
pub mod provider_health;
mod rebuild;
pub mod recharges;
pub mod usage;
pub mod usage_report;

use modelrouter_domain::aggregate_types as types;
use sqlx::{Connection, PgConnection, Postgres, Row, Sqlite, SqliteConnection, Transaction};
use std::time::Duration;

use crate::db::{Db, StoredEvent, TailPosition, Types};

pub use balances::BalanceRow;
pub use usage::UsageRow;

/// A transaction on either backend.
pub enum DbTx<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

/// Runs the same expression against whichever transaction a [`DbTx`] holds.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::sql::DbTx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::sql::DbTx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl DbTx<'_> {
    pub async fn begin(db: &Db) -> Result<DbTx<'static>, sqlx::Error> {
        Ok(match db {
            Db::Sqlite(pool) => DbTx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => DbTx::Postgres(pool.begin().await?),
        })
    }
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            DbTx::Sqlite(tx) => tx.commit().await,
            DbTx::Postgres(tx) => tx.commit().await,
        }
    }
}

/// Where a projector begins its transactions.
pub(crate) enum TxSource<'a> {
    /// The pool: the live tables, written one transaction at a time on SQLite
    /// ([`Db::write_lock`]).
    Pool(&'a Db),
    /// One connection of a rebuild's own, whose TEMP tables shadow the live ones (`rebuild.rs`).
    /// Its batches write only those tables, which no other connection sees, so they take no
    /// write lock; begun inside a transaction, each batch is a savepoint of it.
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

impl TxSource<'_> {
    async fn begin(&mut self) -> Result<DbTx<'_>, sqlx::Error> {
        Ok(match self {
            TxSource::Pool(db) => DbTx::begin(db).await?,
            TxSource::Sqlite(conn) => DbTx::Sqlite(conn.begin().await?),
            TxSource::Postgres(conn) => DbTx::Postgres(conn.begin().await?),
        })
    }

    async fn write_lock(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self {
            TxSource::Pool(db) => db.write_lock().await,
            TxSource::Sqlite(_) | TxSource::Postgres(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    Balances,
    Usage,
    Recharges,
    Commissions,
    ProviderHealth,
}

impl Projection {
    pub const ALL: [Projection; 5] = [
        Projection::Balances,
        Projection::Usage,
        Projection::Recharges,
        Projection::Commissions,
        Projection::ProviderHealth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Projection::Balances => "balances",
            Projection::Usage => "usage",
            Projection::Recharges => "recharges",
            Projection::Commissions => "commissions",
            Projection::ProviderHealth => "provider_health",
        }
    }

    pub fn from_name(name: &str) -> Option<Projection> {
        Projection::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The tables this projection owns, replaced whole by a rebuild. Every table its apply code
    /// writes must be here: a rebuild shadows exactly these (`rebuild.rs`), and its replay would
    /// write any other straight into the live one.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Projection::Balances => &["balances", "balance_leases"],
            Projection::Usage => &["usage_calls", "lease_usage"],
            Projection::Recharges => &["recharge_orders", "recharge_history", "prepaid_codes"],
            Projection::Commissions => &[
                "agent_rates",
                "agent_tenants",
                "agent_commissions",
                "agent_payouts",
            ],
            Projection::ProviderHealth => &["provider_health"],
        }
    }

    /// The aggregate types whose events this projection applies; it reads only those.
    pub fn aggregate_types(self) -> &'static [&'static str] {
        match self {
            Projection::Balances => &[types::ACCOUNT],
            Projection::Usage | Projection::ProviderHealth => &[types::INFERENCE_CALL],
            Projection::Recharges => &[types::RECHARGE_ORDER, types::PREPAID_CODE, types::ACCOUNT],
            Projection::Commissions => &[types::TENANT, types::AGENT, types::ACCOUNT],
        }
    }

    /// [`Projection::aggregate_types`] as a read filter.
    pub fn reads(self) -> Types<'static> {
        Types::Only(self.aggregate_types())
    }

    fn concerns(self, aggregate_type: &str) -> bool {
        self.aggregate_types().contains(&aggregate_type)
    }

    async fn apply(self, tx: &mut DbTx<'_>, events: &[&StoredEvent]) -> Result<(), ApplyError> {
        match self {
            Projection::Balances => {
                for event in events {
                    balances::apply(tx, event).await?;
                }
                Ok(())
            }
            Projection::Usage => Ok(usage::apply_batch(tx, events).await?),
            Projection::ProviderHealth => Ok(provider_health::apply_batch(tx, events).await?),
            Projection::Recharges => {
                for event in events {
                    recharges::apply(tx, event).await?;
                }
                Ok(())
            }
            Projection::Commissions => {
                for event in events {
                    commissions::apply(tx, event).await?;
                }
                Ok(())
            }
        }
    }
}

/// Why a projection did not apply a batch.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event itself cannot be applied, now or ever: it is recorded and left out.
    #[error("{0}")]
    Event(String),
    /// The database failed; the batch is tried again later.
    #[error("database: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for ApplyError {
    /// PostgreSQL's data exceptions (SQLSTATE class 22: a value out of range, say) are about the
    /// values the event brought, not about the database: retrying cannot help.
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("22")) => {
                ApplyError::Event(db.message().to_string())
            }
            _ => ApplyError::Database(error),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "unknown projection {0:?}; known: balances, usage, recharges, commissions, provider_health"
    )]
    Unknown(String),
}

/// Locks the projection's checkpoint row for this transaction and returns it.
async fn lock_checkpoint(
    tx: &mut DbTx<'_>,
    projection: Projection,
) -> Result<TailPosition, sqlx::Error> {
    let name = projection.name();
    // The no-op UPDATE takes SQLite's write lock (and PostgreSQL's row lock) up front, so two
    // runners never read the same checkpoint and both apply the batch after it.
    on_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, tx, position) VALUES ($1, 0, 0)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE projection_checkpoints SET name = name WHERE name = $1")
            .bind(name)
            .execute(&mut *conn)
            .await?;
        let row = sqlx::query("SELECT tx, position FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
        Ok(TailPosition { tx: row.try_get("tx")?, position: row.try_get("position")? })
    })
}

async fn save_checkpoint(
    tx: &mut DbTx<'_>,
    projection: Projection,
    at: TailPosition,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, conn => {
        sqlx::query("UPDATE projection_checkpoints SET tx = $1, position = $2 WHERE name = $3")
            .bind(at.tx)
            .bind(at.position)
            .bind(projection.name())
            .execute(conn)
            .await
            .map(|_| ())
    })
}

/// How long [`catch_up`] waits for transactions older than the caller's own write to end.
const OWN_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Applies every event committed before the call, so a handler that reads the projection
/// after its own write sees it. On PostgreSQL the readable tail trails a commit while older
/// transactions are still open (migration 0002); this waits for them, up to a few seconds.
/// Returns how many events it read.
pub async fn catch_up(db: &Db, projection: Projection, batch: i64) -> Result<usize, sqlx::Error> {
    let target = db.committed_head_of(projection.reads()).await?;
    let deadline = tokio::time::Instant::now() + OWN_WRITE_WAIT;
    let mut pause = Duration::from_millis(1);
    let mut total = 0;
    loop {
        if checkpoint(db, projection).await? >= target {
            return Ok(total);
        }
        total += advance(db, projection, batch).await?;
        if checkpoint(db, projection).await? >= target {
            return Ok(total);
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                projection = projection.name(),
                "an older transaction is still open; the projection trails the newest commit"
            );
            return Ok(total);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Applies every event the tail can read now, in batches of `batch` events, without waiting
/// for older open transactions: what the background tailer calls. Returns how many events it
/// read.
pub async fn advance(db: &Db, projection: Projection, batch: i64) -> Result<usize, sqlx::Error> {
    // Nothing new since the checkpoint: done without a write transaction, so idle replicas and
    // tailers take no write lock (on SQLite, other processes — the CLI — then never wait on
    // them).
    let seen = checkpoint(db, projection).await?;
    if db
        .read_events_of(projection.reads(), seen, 1)
        .await?
        .is_empty()
    {
        return Ok(0);
    }
    advance_on(&mut TxSource::Pool(db), projection, batch).await
}

/// [`advance`]'s batches, each a transaction begun on `source`: the live tables' or a
/// rebuild's shadow tables (`rebuild.rs`).
pub(crate) async fn advance_on(
    source: &mut TxSource<'_>,
    projection: Projection,
    batch: i64,
) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    loop {
        let _writing = source.write_lock().await;
        let mut tx = source.begin().await?;
        let checkpoint = lock_checkpoint(&mut tx, projection).await?;
        // On the transaction's own connection: waiting for another pooled connection while
        // holding the write lock could wait on writers that wait on this lock.
        let events = match &mut tx {
            DbTx::Sqlite(t) => {
                crate::db::read_events_sqlite(t, projection.reads(), checkpoint, batch).await?
            }
            DbTx::Postgres(t) => {
                crate::db::read_events_postgres(t, projection.reads(), checkpoint, batch).await?
            }
        };
        let Some(last) = events.last().map(StoredEvent::tail_position) else {
            tx.commit().await?;
            return Ok(total);
        };
        let concerned: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| projection.concerns(&e.aggregate_type))
            .collect();
        match projection.apply(&mut tx, &concerned).await {
            Ok(()) => {
                save_checkpoint(&mut tx, projection, last).await?;
                tx.commit().await?;
            }
            Err(ApplyError::Database(error)) => return Err(error),
            Err(ApplyError::Event(_)) => {
                // Some event of the batch cannot be applied: undo the batch and apply it one
                // event per transaction, so the bad one is found, recorded and left out.
                drop(tx);
                apply_one_by_one(source, projection, &concerned, last).await?;
            }
        }
        total += events.len();
        if (events.len() as i64) < batch {
            return Ok(total);
        }
    }
}

/// Applies `events` (a batch that ends at `last`) one per transaction, with the checkpoint: an
/// event that cannot be applied is recorded in `projection_failures` and the checkpoint moves
/// past it. The caller holds the store's write lock when `source` is the pool.
async fn apply_one_by_one(
    source: &mut TxSource<'_>,
    projection: Projection,
    events: &[&StoredEvent],
    last: TailPosition,
) -> Result<(), sqlx::Error> {
    for event in events {
        let mut tx = source.begin().await?;
        // Another replica may have applied part of the batch meanwhile (PostgreSQL).
        if lock_checkpoint(&mut tx, projection).await? >= event.tail_position() {
            continue;
        }
        match projection.apply(&mut tx, &[*event]).await {
            Ok(()) => {}
            Err(ApplyError::Database(error)) => return Err(error),
            Err(ApplyError::Event(error)) => {
                drop(tx);
                tx = source.begin().await?;
                if lock_checkpoint(&mut tx, projection).await? >= event.tail_position() {
                    continue;
                }
                failures::record(&mut tx, projection, event, &error).await?;
            }
        }
        save_checkpoint(&mut tx, projection, event.tail_position()).await?;
        tx.commit().await?;
    }
    // The events of the batch this projection ignores.
    let mut tx = source.begin().await?;
    if lock_checkpoint(&mut tx, projection).await? < last {
        save_checkpoint(&mut tx, projection, last).await?;
    }
    tx.commit().await
}

/// Replays the whole log into new tables beside the live ones and swaps them in in one
/// transaction, so readers see the old complete tables until the new complete ones
/// (`rebuild.rs`). Events that cannot be applied are recorded and left out, as when tailing
/// (`failures`). Returns how many events it read.
pub async fn rebuild(db: &Db, projection: Projection) -> Result<usize, sqlx::Error> {
    rebuild::rebuild(db, projection).await
}

/// The projection's checkpoint, without locking.
pub async fn checkpoint(db: &Db, projection: Projection) -> Result<TailPosition, sqlx::Error> {
    let row = crate::on_db!(db, pool => {
        sqlx::query("SELECT tx, position FROM projection_checkpoints WHERE name = $1")
            .bind(projection.name())
            .fetch_optional(pool)
            .await?
            .map(|row| -> Result<TailPosition, sqlx::Error> {
                Ok(TailPosition { tx: row.try_get("tx")?, position: row.try_get("position")? })
            })
    });
    row.unwrap_or(Ok(TailPosition::default()))
}

/// Every row of a projection's tables as JSON lines in a stable order, for comparing a rebuilt
/// projection with the incrementally built one.
pub async fn dump(db: &Db, projection: Projection) -> Result<Vec<String>, sqlx::Error> {
    match projection {
        Projection::Balances => balances::dump(db).await,
        Projection::Usage => usage::dump(db).await,
        Projection::Recharges => recharges::dump(db).await,
        Projection::Commissions => commissions::dump(db).await,
        Projection::ProviderHealth => provider_health::dump(db).await,
    }
}

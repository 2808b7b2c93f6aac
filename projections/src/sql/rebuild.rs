//! Rebuilding a SQL projection without ever showing a partial one. The log is replayed into
//! shadow tables beside the live ones, then one transaction swaps the result in: the portal,
//! the console and the gateway read the old complete tables until it commits and the new
//! complete ones after. A tenant's balance never disappears or climbs through partial sums.
//!
//! The shadow tables are TEMP tables with the live tables' names, plus a TEMP
//! `projection_checkpoints` and `projection_failures`, on one connection of the rebuild's own.
//! SQLite and PostgreSQL both resolve an unqualified name in the connection's temp schema first,
//! so the projection's apply code, its checkpoint and its failure records (`advance_on`) write
//! into the shadow unchanged, while `events`, which has no shadow, is the log. The swap names
//! both sides explicitly (`main.`/`temp.`, or the live schema and `pg_temp.`).
//!
//! Architecture Invariant: the connection is opened for the rebuild and closed after it, never
//! taken from the pool — its TEMP tables would shadow the live ones for whoever used it next.
//! Closing it drops them; a rebuild stopped half-way (an error, a killed process) leaves the
//! live tables as they were.
//!
//! The swap copies every row of the projection's tables inside one write transaction, so on
//! SQLite other writers wait for the copy (docs/architecture.md, "Projections").

use sqlx::{ConnectOptions, Connection, PgConnection, Row, SqliteConnection};

use super::{advance_on, on_tx, DbTx, Projection, TxSource};
use crate::db::{Db, TailPosition};

/// Events per transaction while replaying into the shadow.
const BATCH: i64 = 1000;

/// The bookkeeping a projector writes besides the projection's own tables, shadowed too.
const BOOKKEEPING: [&str; 2] = ["projection_checkpoints", "projection_failures"];

pub(super) async fn rebuild(db: &Db, projection: Projection) -> Result<usize, sqlx::Error> {
    let mut own = match db {
        Db::Sqlite(pool) => Own::Sqlite(pool.connect_options().connect().await?),
        Db::Postgres(pool) => Own::Postgres(pool.connect_options().connect().await?),
    };
    let result = replay_and_swap(db, &mut own, projection).await;
    // Closing drops the shadow tables.
    let closed = match own {
        Own::Sqlite(conn) => conn.close().await,
        Own::Postgres(conn) => conn.close().await,
    };
    if let Err(error) = closed {
        tracing::warn!(%error, "closing the rebuild's connection failed; it was dropped");
    }
    result
}

/// A connection opened for one rebuild.
enum Own {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Own {
    fn source(&mut self) -> TxSource<'_> {
        match self {
            Own::Sqlite(conn) => TxSource::Sqlite(conn),
            Own::Postgres(conn) => TxSource::Postgres(conn),
        }
    }

    async fn begin(&mut self) -> Result<DbTx<'_>, sqlx::Error> {
        Ok(match self {
            Own::Sqlite(conn) => DbTx::Sqlite(conn.begin().await?),
            Own::Postgres(conn) => DbTx::Postgres(conn.begin().await?),
        })
    }
}

/// How the two sides are named in SQL: `live.table` is what readers see, `shadow.table` the
/// rebuild's TEMP table.
struct Sides {
    live: String,
    shadow: &'static str,
}

async fn replay_and_swap(
    db: &Db,
    own: &mut Own,
    projection: Projection,
) -> Result<usize, sqlx::Error> {
    let sides = create_shadow(own, projection).await?;
    // Most of the log, in batches that write only the shadow: nothing waits for them.
    let mut events = advance_on(&mut own.source(), projection, BATCH).await?;

    let _writing = db.write_lock().await;
    let mut tx = own.begin().await?;
    // Live projectors lock this row for every batch: they wait until the swap is done, then go
    // on from the checkpoint it leaves.
    let live = &sides.live;
    let insert = format!(
        "INSERT INTO {live}.projection_checkpoints (name, tx, position) VALUES ($1, 0, 0)
         ON CONFLICT (name) DO NOTHING"
    );
    let lock = format!("UPDATE {live}.projection_checkpoints SET name = name WHERE name = $1");
    for statement in [insert, lock] {
        on_tx!(&mut tx, conn => {
            sqlx::query(&statement).bind(projection.name()).execute(conn).await?;
        });
    }
    // What came in since, up to what the tail can read now: savepoints of this transaction.
    events += match &mut tx {
        DbTx::Sqlite(t) => advance_on(&mut TxSource::Sqlite(t), projection, BATCH).await?,
        DbTx::Postgres(t) => advance_on(&mut TxSource::Postgres(t), projection, BATCH).await?,
    };
    swap(&mut tx, &sides, projection).await?;
    tx.commit().await?;
    Ok(events)
}

/// Creates the shadow tables on `own`, empty, with the live tables' columns in the same order
/// and their keys and indexes (the apply code's `ON CONFLICT` needs them).
async fn create_shadow(own: &mut Own, projection: Projection) -> Result<Sides, sqlx::Error> {
    let tables = projection.tables().iter().chain(&BOOKKEEPING);
    match own {
        Own::Sqlite(conn) => {
            for table in tables {
                // Tables first: an index needs its table.
                let rows = sqlx::query(
                    "SELECT type, sql FROM main.sqlite_master
                      WHERE tbl_name = $1 AND sql IS NOT NULL ORDER BY type = 'index'",
                )
                .bind(table)
                .fetch_all(&mut *conn)
                .await?;
                if rows.is_empty() {
                    return Err(schema_error(format!("no table {table} to rebuild")));
                }
                for row in rows {
                    let sql: String = row.try_get("sql")?;
                    let temp = temp_ddl(&sql).ok_or_else(|| {
                        schema_error(format!("cannot shadow {table}: unexpected DDL {sql:?}"))
                    })?;
                    sqlx::query(&temp).execute(&mut *conn).await?;
                }
            }
            Ok(Sides {
                live: "main".into(),
                shadow: "temp",
            })
        }
        Own::Postgres(conn) => {
            // The schema the migrations created the tables in (the first of the search path);
            // asked before any TEMP table exists.
            let schema: String = sqlx::query_scalar("SELECT quote_ident(current_schema())")
                .fetch_one(&mut *conn)
                .await?;
            for table in tables {
                // Names are constants of this crate and the server's own schema name.
                let create =
                    format!("CREATE TEMP TABLE {table} (LIKE {schema}.{table} INCLUDING ALL)");
                sqlx::query(&create).execute(&mut *conn).await?;
            }
            Ok(Sides {
                live: schema,
                shadow: "pg_temp",
            })
        }
    }
}

/// SQLite's DDL of a table or index in `main` (as `sqlite_master` keeps it: keywords in capitals,
/// no schema name) turned into the same object in `temp`.
fn temp_ddl(sql: &str) -> Option<String> {
    if let Some(rest) = sql.strip_prefix("CREATE TABLE ") {
        return Some(format!("CREATE TEMP TABLE {rest}"));
    }
    ["CREATE UNIQUE INDEX ", "CREATE INDEX "]
        .into_iter()
        .find_map(|create| Some(format!("{create}temp.{}", sql.strip_prefix(create)?)))
}

fn schema_error(message: String) -> sqlx::Error {
    sqlx::Error::Protocol(message)
}

/// Replaces the live rows with the shadow's in the swap's transaction: the projection's tables,
/// its failures and its checkpoint.
async fn swap(tx: &mut DbTx<'_>, sides: &Sides, projection: Projection) -> Result<(), sqlx::Error> {
    let Sides { live, shadow } = sides;
    let name = projection.name();
    for table in projection.tables() {
        // Not TRUNCATE: on PostgreSQL it would lock readers out until the commit.
        let delete = format!("DELETE FROM {live}.{table}");
        let insert = format!("INSERT INTO {live}.{table} SELECT * FROM {shadow}.{table}");
        on_tx!(&mut *tx, conn => {
            sqlx::query(&delete).execute(&mut *conn).await?;
            sqlx::query(&insert).execute(&mut *conn).await?;
        });
    }
    // Failures acknowledged before stay acknowledged (even one acknowledged while the rebuild
    // ran); unacknowledged ones are what the replay recorded again. The live rows are locked
    // first, so an acknowledgement either lands before they are read or finds them replaced.
    let lock = format!("UPDATE {live}.projection_failures SET name = name WHERE name = $1");
    let keep_acknowledged = format!(
        "INSERT INTO {shadow}.projection_failures
         SELECT * FROM {live}.projection_failures WHERE name = $1 AND acknowledged_at IS NOT NULL
         ON CONFLICT (name, position) DO UPDATE SET failed_at = excluded.failed_at,
           acknowledged_at = excluded.acknowledged_at, acknowledged_by = excluded.acknowledged_by"
    );
    let forget = format!("DELETE FROM {live}.projection_failures WHERE name = $1");
    let record = format!(
        "INSERT INTO {live}.projection_failures
         SELECT * FROM {shadow}.projection_failures WHERE name = $1"
    );
    let checkpoint =
        format!("SELECT tx, position FROM {shadow}.projection_checkpoints WHERE name = $1");
    let move_to =
        format!("UPDATE {live}.projection_checkpoints SET tx = $1, position = $2 WHERE name = $3");
    on_tx!(&mut *tx, conn => {
        for failures in [&lock, &keep_acknowledged, &forget, &record] {
            sqlx::query(failures).bind(name).execute(&mut *conn).await?;
        }
        let row = sqlx::query(&checkpoint).bind(name).fetch_one(&mut *conn).await?;
        let at = TailPosition { tx: row.try_get("tx")?, position: row.try_get("position")? };
        sqlx::query(&move_to)
            .bind(at.tx)
            .bind(at.position)
            .bind(name)
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::temp_ddl;

    #[test]
    fn sqlite_ddl_is_moved_to_the_temp_schema() {
        assert_eq!(
            temp_ddl("CREATE TABLE balances\n(\n  tenant_id text PRIMARY KEY NOT NULL\n) STRICT")
                .as_deref(),
            Some("CREATE TEMP TABLE balances\n(\n  tenant_id text PRIMARY KEY NOT NULL\n) STRICT")
        );
        assert_eq!(
            temp_ddl("CREATE INDEX usage_calls_tenant_time ON usage_calls (tenant_id, started_at)")
                .as_deref(),
            Some(
                "CREATE INDEX temp.usage_calls_tenant_time ON usage_calls (tenant_id, started_at)"
            )
        );
        assert_eq!(
            temp_ddl("CREATE UNIQUE INDEX i ON t (a)").as_deref(),
            Some("CREATE UNIQUE INDEX temp.i ON t (a)")
        );
        assert_eq!(temp_ddl("CREATE VIEW v AS SELECT 1"), None);
    }
}

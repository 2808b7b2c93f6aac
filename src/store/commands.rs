//! The command bus: one cqrs-es framework per aggregate on the configured backend. A command
//! that loses an optimistic-lock race is retried on fresh state. `Cqrs::load` reads an
//! aggregate's current state, so a caller can see what a command decided; [`Store`] corrects
//! cqrs-es's snapshots, which counted the snapshotting command's events twice.

use std::collections::HashMap;

use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventRepository, PersistedEventStore};
use cqrs_es::{
    Aggregate, AggregateContext, AggregateError, CqrsFramework, EventEnvelope, EventStore,
};
use modelrouter_domain::account::Account;
use modelrouter_domain::agent::Agent;
use modelrouter_domain::api_key::ApiKey;
use modelrouter_domain::catalog::CatalogModel;
use modelrouter_domain::metadata::Metadata;
use modelrouter_domain::operator::Operator;
use modelrouter_domain::prepaid::PrepaidCode;
use modelrouter_domain::provider::Provider;
use modelrouter_domain::recharge::RechargeOrder;
use modelrouter_domain::route::Route;
use modelrouter_domain::tenant::Tenant;
use modelrouter_domain::DomainError;
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;

use super::Db;

/// Account streams grow with every lease and settlement; a snapshot every this many events keeps
/// loading one cheap.
const ACCOUNT_SNAPSHOT_EVERY: usize = 50;
const CONFLICT_RETRIES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the aggregate kept changing under concurrent commands; try again")]
    Conflict,
    #[error("event store: {0}")]
    Store(String),
}

impl From<AggregateError<DomainError>> for CommandError {
    fn from(error: AggregateError<DomainError>) -> Self {
        match error {
            AggregateError::UserError(e) => CommandError::Domain(e),
            AggregateError::AggregateConflict => CommandError::Conflict,
            other => CommandError::Store(other.to_string()),
        }
    }
}

/// A cqrs-es framework on either backend, with a second event store on the same pool for
/// reading an aggregate's state. The framework keeps its store private, so the reader is built
/// alongside it, with the same snapshot setting so both see the aggregate the same way.
pub enum Cqrs<A: Aggregate> {
    Sqlite {
        framework: CqrsFramework<A, Store<SqliteEventRepository, A>>,
        reader: PersistedEventStore<SqliteEventRepository, A>,
        db: Db,
    },
    Postgres {
        framework: CqrsFramework<A, Store<PostgresEventRepository, A>>,
        reader: PersistedEventStore<PostgresEventRepository, A>,
    },
}

/// The event store under every framework: cqrs-es's persisted store, corrected for snapshots.
///
/// cqrs-es 0.5 builds a snapshot by applying the command's new events to the aggregate in the
/// commit's context, but `EventSink::write` already applied them to that same aggregate while
/// the command was handled. Every snapshot therefore counted the events of the command that took
/// it twice: an Account credited 50 times held one credit too many from then on, and granted
/// allowance against it. With snapshots on, this store lets the command work on a copy and
/// commits with the aggregate as loaded, so each event is applied once. (cqrs-es also applies
/// only the events up to the snapshot boundary while recording the last event's sequence; that
/// is exact for commands that emit one event, as every Account command does.)
pub struct Store<R: PersistedEventRepository, A: Aggregate> {
    inner: PersistedEventStore<R, A>,
    snapshots: bool,
}

/// An aggregate loaded by [`Store`]: the context as loaded, and, with snapshots on, the copy the
/// command works on.
pub struct Loaded<A: Aggregate> {
    context: EventStoreAggregateContext<A>,
    working: Option<A>,
}

impl<A: Aggregate> AggregateContext<A> for Loaded<A> {
    fn aggregate(&mut self) -> &mut A {
        match &mut self.working {
            Some(working) => working,
            None => &mut self.context.aggregate,
        }
    }
}

impl<R, A> EventStore<A> for Store<R, A>
where
    R: PersistedEventRepository,
    A: Aggregate + Send + Sync,
{
    type AC = Loaded<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.inner.load_events(aggregate_id).await
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Loaded<A>, AggregateError<A::Error>> {
        let context = self.inner.load_aggregate(aggregate_id).await?;
        // Aggregates need not be Clone, but they are serializable: copy through JSON.
        let working = match self.snapshots {
            true => Some(
                serde_json::to_value(&context.aggregate)
                    .and_then(serde_json::from_value)
                    .map_err(|e| AggregateError::UnexpectedError(Box::new(e)))?,
            ),
            false => None,
        };
        Ok(Loaded { context, working })
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        loaded: Loaded<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.inner.commit(events, loaded.context, metadata).await
    }
}

/// An event store on `repo`, snapshotting every `snapshot_every` events when given.
fn event_store<R, A>(repo: R, snapshot_every: Option<usize>) -> PersistedEventStore<R, A>
where
    R: PersistedEventRepository,
    A: Aggregate,
{
    match snapshot_every {
        Some(n) => PersistedEventStore::new_snapshot_store(repo, n),
        None => PersistedEventStore::new_event_store(repo),
    }
}

/// The store a framework commits through (see [`Store`]).
fn framework_store<R, A>(repo: R, snapshot_every: Option<usize>) -> Store<R, A>
where
    R: PersistedEventRepository,
    A: Aggregate,
{
    Store {
        inner: event_store(repo, snapshot_every),
        snapshots: snapshot_every.is_some(),
    }
}

impl<A> Cqrs<A>
where
    A: Aggregate<Error = DomainError, Services = ()>,
    A::Command: Clone,
{
    fn new(db: &Db, snapshot_every: Option<usize>) -> Self {
        match db {
            Db::Sqlite(pool) => Cqrs::Sqlite {
                framework: CqrsFramework::new(
                    framework_store(SqliteEventRepository::new(pool.clone()), snapshot_every),
                    vec![],
                    (),
                ),
                reader: event_store(SqliteEventRepository::new(pool.clone()), snapshot_every),
                db: db.clone(),
            },
            Db::Postgres(pool) => Cqrs::Postgres {
                framework: CqrsFramework::new(
                    framework_store(PostgresEventRepository::new(pool.clone()), snapshot_every),
                    vec![],
                    (),
                ),
                reader: event_store(PostgresEventRepository::new(pool.clone()), snapshot_every),
            },
        }
    }

    /// The aggregate's current state, from its events (and snapshot, where it has one); the
    /// default state for an aggregate without events. Handlers use it to read what the aggregate
    /// decided after a command: a command whose effect was already recorded succeeds without
    /// events, so its result alone does not say.
    pub async fn load(&self, id: &str) -> Result<A, CommandError> {
        // No write lock on SQLite: a read in WAL mode sees the last commit and blocks no writer.
        let context = match self {
            Cqrs::Sqlite { reader, .. } => reader.load_aggregate(id).await,
            Cqrs::Postgres { reader, .. } => reader.load_aggregate(id).await,
        };
        Ok(context.map_err(CommandError::from)?.aggregate)
    }

    /// Executes a command, retrying on optimistic-lock conflicts.
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        metadata: &Metadata,
    ) -> Result<(), CommandError> {
        let mut attempt = 0;
        loop {
            let meta: HashMap<String, String> = metadata.clone().into_map();
            let result = match self {
                Cqrs::Sqlite { framework, db, .. } => {
                    // Load and commit under this process's SQLite write lock (see Db::write_lock).
                    let _writing = db.write_lock().await;
                    framework
                        .execute_with_metadata(id, command.clone(), meta)
                        .await
                }
                Cqrs::Postgres { framework, .. } => {
                    framework
                        .execute_with_metadata(id, command.clone(), meta)
                        .await
                }
            };
            match result.map_err(CommandError::from) {
                Err(CommandError::Conflict) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    // A short, growing pause lets the winning writer finish.
                    tokio::time::sleep(std::time::Duration::from_millis(2 << attempt)).await;
                }
                // Another process (a CLI command beside a serving replica) held SQLite's write
                // lock past the busy timeout: nothing was written, so the command runs again.
                Err(CommandError::Store(message))
                    if attempt < CONFLICT_RETRIES && message.contains("database is locked") =>
                {
                    attempt += 1;
                    tracing::warn!("the SQLite store was busy; running the command again");
                }
                other => return other,
            }
        }
    }
}

/// Every aggregate's framework on one backend.
pub struct Commands {
    pub db: Db,
    pub tenants: Cqrs<Tenant>,
    pub keys: Cqrs<ApiKey>,
    pub accounts: Cqrs<Account>,
    pub providers: Cqrs<Provider>,
    pub models: Cqrs<CatalogModel>,
    pub routes: Cqrs<Route>,
    pub operators: Cqrs<Operator>,
    pub recharges: Cqrs<RechargeOrder>,
    pub prepaid: Cqrs<PrepaidCode>,
    pub agents: Cqrs<Agent>,
}

impl Commands {
    pub fn new(db: Db) -> Commands {
        Commands {
            tenants: Cqrs::new(&db, None),
            keys: Cqrs::new(&db, None),
            accounts: Cqrs::new(&db, Some(ACCOUNT_SNAPSHOT_EVERY)),
            providers: Cqrs::new(&db, None),
            models: Cqrs::new(&db, None),
            routes: Cqrs::new(&db, None),
            operators: Cqrs::new(&db, None),
            recharges: Cqrs::new(&db, None),
            prepaid: Cqrs::new(&db, None),
            agents: Cqrs::new(&db, None),
            db,
        }
    }
}

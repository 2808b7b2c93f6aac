//! Keeps this replica's in-memory view fresh: tails the event log (woken by PostgreSQL
//! LISTEN/NOTIFY, polling as the fallback), swaps in a new view after each batch that concerns
//! it, and runs the SQL projections forward.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use modelrouter_projections::live::LIVE_TYPES;
use modelrouter_projections::sql::{self, Projection};
use modelrouter_projections::{Db, LiveView, TailPosition, Types};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 1000;
/// The longest a portal write waits for the tail to reach it (see [`Live::include`]).
const OWN_WRITE_WAIT: Duration = Duration::from_secs(5);

/// The shared, swappable view plus what readiness needs to know.
pub struct Live {
    view: ArcSwap<LiveView>,
    /// How far the tail has read (of the live view's aggregate types).
    position: std::sync::Mutex<TailPosition>,
    /// The newest live-view event committed before this replica started ([`Live::start`]):
    /// until the view has applied it the replica is not ready — it might not know a key, a
    /// tenant or a route everyone else already sees.
    start_target: std::sync::Mutex<Option<TailPosition>>,
    caught_up: AtomicBool,
    changed: Notify,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            view: ArcSwap::from_pointee(LiveView::default()),
            position: std::sync::Mutex::new(TailPosition::default()),
            start_target: std::sync::Mutex::new(None),
            caught_up: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }
}

impl Live {
    pub fn view(&self) -> arc_swap::Guard<Arc<LiveView>> {
        self.view.load()
    }
    pub fn view_full(&self) -> Arc<LiveView> {
        self.view.load_full()
    }
    pub fn position(&self) -> TailPosition {
        *self.position.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Whether the view has applied every live-view event committed before the replica
    /// started: what readiness waits for.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Notes the newest live-view event committed now, then reads the log up to it — waiting a
    /// few seconds at most for a transaction of this database still open before it (the
    /// tailer goes on from there). Until the view has applied that event,
    /// [`Live::caught_up`] is false.
    pub async fn start(&self, db: &Db) -> Result<usize, sqlx::Error> {
        let target = db.committed_head_of(Types::Only(LIVE_TYPES)).await?;
        *self.start_target.lock().unwrap_or_else(|e| e.into_inner()) = Some(target);
        let deadline = tokio::time::Instant::now() + OWN_WRITE_WAIT;
        let mut pause = Duration::from_millis(1);
        let mut total = 0;
        loop {
            total += self.catch_up(db).await?;
            if self.caught_up() || tokio::time::Instant::now() >= deadline {
                return Ok(total);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Reads every live-view event after the view's position and applies it. Returns how many
    /// were read.
    pub async fn catch_up(&self, db: &Db) -> Result<usize, sqlx::Error> {
        let mut total = 0;
        loop {
            let events = db
                .read_events_of(Types::Only(LIVE_TYPES), self.position(), BATCH)
                .await?;
            let Some(last) = events.last().map(|e| e.tail_position()) else {
                break;
            };
            total += events.len();
            let mut next = (*self.view.load_full()).clone();
            for event in &events {
                next.apply(event);
            }
            self.view.store(Arc::new(next));
            *self.position.lock().unwrap_or_else(|e| e.into_inner()) = last;
            if (events.len() as i64) < BATCH {
                break;
            }
        }
        let target = *self.start_target.lock().unwrap_or_else(|e| e.into_inner());
        if target.is_none_or(|target| self.position() >= target) {
            self.caught_up.store(true, Ordering::Release);
        }
        self.changed.notify_waiters();
        Ok(total)
    }

    /// Reads the log until the view includes the newest event of one aggregate — what a write
    /// through the portal calls before it shows its result, so a page never shows the state
    /// from before the user's own change. On PostgreSQL the tail may trail a commit while older
    /// transactions are still open (migration 0002), hence the short wait.
    pub async fn include(
        &self,
        db: &Db,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<(), sqlx::Error> {
        // The view holds nothing of other aggregates (accounts, orders, codes): nothing to wait
        // for — pages that show those read a SQL projection, which `sql::catch_up` brings on.
        if !LIVE_TYPES.contains(&aggregate_type) {
            return Ok(());
        }
        let Some(target) = db.last_event_of(aggregate_type, aggregate_id).await? else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + OWN_WRITE_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            self.catch_up(db).await?;
            if self.position() >= target || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Reads the log into the view and moves the SQL projections on: what a portal write calls
    /// so that the page it redirects to shows the write (the tailer would within a poll).
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        self.catch_up(db).await?;
        for projection in Projection::ALL {
            sql::catch_up(db, projection, BATCH).await?;
        }
        Ok(())
    }

    /// Waits until the view has reached `position` or `timeout` passes.
    pub async fn wait_for(&self, position: TailPosition, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.position() >= position {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// Tails the log until `shutdown`: updates the live view, then moves the SQL projections on.
pub async fn run_tailer(db: Db, live: Arc<Live>, poll: Duration, shutdown: CancellationToken) {
    let wake = Arc::new(Notify::new());
    if let Db::Postgres(pool) = &db {
        tokio::spawn(listen_for_events(
            pool.clone(),
            wake.clone(),
            shutdown.clone(),
        ));
    }
    loop {
        match live.catch_up(&db).await {
            Ok(_) => {
                for projection in Projection::ALL {
                    if let Err(error) = sql::advance(&db, projection, BATCH).await {
                        tracing::warn!(%error, projection = projection.name(), "projection lagging");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "event tail failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

async fn listen_for_events(pool: sqlx::PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen("modelrouter_events").await?;
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = listener => {
                if let Err(error) = result {
                    tracing::warn!(%error, "LISTEN connection lost; polling until it is back");
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

//! Starting and stopping a gateway replica: open and migrate the store, read what it needs into
//! memory, open the metering spool (draining what a predecessor left and settling its leases),
//! start the tailer, settler and recall watcher, serve, and on shutdown drain in order —
//! in-flight requests, then metering, then allowance settlement and lease release.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::allowance::Allowances;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::gateway::{self, AppState};
use crate::live::{run_tailer, Live};
use crate::store::{self, replicas, Commands, Db, Spool, SpoolSettings};

mod connections;

/// The store, master key and command bus every CLI command shares.
pub struct Core {
    pub db: Db,
    pub master_key: MasterKey,
    pub commands: Arc<Commands>,
    pub live: Arc<Live>,
}

impl Core {
    /// Opens (and migrates) the configured store and replays the log into memory.
    pub async fn open(settings: &Settings) -> anyhow::Result<Core> {
        let db = open_store(settings).await?;
        let master_key = match &settings.master_key {
            Some(text) => MasterKey::parse(text)?,
            None => MasterKey::load_or_create(&settings.data_dir)?,
        };
        let live = Arc::new(Live::default());
        live.start(&db).await.context("cannot read the event log")?;
        Ok(Core {
            commands: Arc::new(Commands::new(db.clone())),
            db,
            master_key,
            live,
        })
    }
}

/// Opens (and migrates) the configured store, without replaying the log: for commands that read
/// only what they need (the ledger), which a log of millions of calls would otherwise delay by
/// minutes.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Db> {
    if settings.database_url.is_none() {
        crate::crypto::create_private_dir(&settings.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                settings.data_dir.display()
            )
        })?;
    }
    store::open(&settings.store_url()).await.with_context(|| {
        format!(
            "cannot open the event store ({})",
            redact(&settings.store_url())
        )
    })
}

/// Hides the password of a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Serves on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    settings: Settings,
    core: Core,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Core {
        db,
        master_key,
        commands,
        live,
    } = core;
    let background = CancellationToken::new();
    // Load the tokenizer's tables now rather than in the first call that needs an estimate.
    tokio::task::spawn_blocking(|| crate::tokenizer::count("warm up"));
    let node = format!("node-{}", uuid::Uuid::new_v4().simple());
    let allowances = Allowances::new(
        node.clone(),
        settings.lease_chunk,
        commands.clone(),
        settings.store_wait,
    );
    let counted = allowances.clone();
    let (spool, mut spool_task) = Spool::start(
        SpoolSettings {
            dir: settings.data_dir.join("spool"),
            fsync_every: settings.spool_fsync_every,
            max_backlog: settings.spool_max_backlog,
            flush_every: settings.metering_flush,
            max_batch: settings.metering_batch,
        },
        &node,
        db.clone(),
        Box::new(move |calls| counted.recorded(calls)),
    )?;
    // Say we are alive before taking any traffic, so no one reclaims the leases we are about to
    // take.
    let started_at = chrono::Utc::now().timestamp();
    replicas::heartbeat(&db, &node, started_at, started_at)
        .await
        .context("cannot register this replica")?;
    let liveness = tokio::spawn(keep_alive_and_reclaim(
        db.clone(),
        allowances.clone(),
        started_at,
        settings.lease_reclaim_after,
        background.clone(),
    ));
    let tailer = tokio::spawn(run_tailer(
        db.clone(),
        live.clone(),
        settings.tail_poll,
        background.clone(),
    ));
    if let Some(recovered) = spool_task.recovered() {
        tokio::spawn(settle_predecessor(
            db.clone(),
            allowances.clone(),
            recovered,
            background.clone(),
        ));
    }
    let recalls = tokio::spawn(allowances.clone().watch_recalls(
        db.clone(),
        settings.tail_poll,
        settings.lease_idle_return,
        background.clone(),
    ));
    let settler = tokio::spawn(settle_periodically(
        allowances.clone(),
        settings.settle_every,
        background.clone(),
    ));
    let housekeeping = tokio::spawn(purge_portal_state(
        db.clone(),
        settings.clone(),
        background.clone(),
    ));
    let http = crate::upstream::http_client(settings.upstream_connect_timeout);
    let state = Arc::new(AppState {
        db: db.clone(),
        live,
        allowances: allowances.clone(),
        commands,
        spool,
        stripe: settings
            .payments
            .stripe
            .clone()
            .map(|config| crate::payments::stripe::Stripe::new(config, http.clone())),
        http,
        master_key,
        settings,
    });
    let app = gateway::router(state.clone());
    let edge = state.settings.edge.clone();
    // Holds the state (and so the metering queue) only while serving: stopped before draining.
    let billing_stop = CancellationToken::new();
    let billing = tokio::spawn(billing_housekeeping(state.clone(), billing_stop.clone()));
    drop(state);
    connections::serve(listener, app, &edge, shutdown).await;

    billing_stop.cancel();
    let _ = billing.await;
    // In-flight requests are done and their records are in the spool: drain it into the store.
    if !spool_task.drained(Duration::from_secs(30)).await {
        tracing::error!(
            "metering records did not reach the store within 30s; they stay in the spool and \
             are sent at the next start"
        );
    }
    background.cancel();
    let _ = recalls.await;
    let _ = settler.await;
    let _ = housekeeping.await;
    let _ = liveness.await;
    allowances.release_all().await;
    if let Err(error) = replicas::forget(&db, &node).await {
        tracing::warn!(%error, "replica heartbeat not removed");
    }
    let _ = tailer.await;
    Ok(())
}

/// Once the records a predecessor left in the spool are in the store, settles and closes its
/// leases (tried again until it works, or until shutdown).
async fn settle_predecessor(
    db: Db,
    allowances: Arc<Allowances>,
    recovered: tokio::sync::oneshot::Receiver<crate::store::spool::Recovered>,
    shutdown: CancellationToken,
) {
    let recovered = tokio::select! {
        _ = shutdown.cancelled() => return,
        recovered = recovered => match recovered {
            Ok(recovered) => recovered,
            Err(_) => return,
        },
    };
    if recovered.previous_node.is_none() && recovered.leases.is_empty() {
        return;
    }
    loop {
        match allowances.reclaim_predecessor(&db, &recovered).await {
            Ok(settled) => {
                tracing::info!(
                    previous = recovered.previous_node.as_deref().unwrap_or("-"),
                    records = recovered.records,
                    leases = settled,
                    "settled the leases of the previous run on this data directory"
                );
                return;
            }
            Err(error) => tracing::warn!(%error, "previous run's leases not settled yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn settle_periodically(
    allowances: Arc<Allowances>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => allowances.settle().await,
        }
    }
}

/// Expires stale orders and finishes interrupted credits (every 30 seconds by default).
async fn billing_housekeeping(state: Arc<AppState>, stop: CancellationToken) {
    let every = state.settings.payments.sweep_every;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(error) = crate::billing::orders::housekeeping(&state).await {
            tracing::warn!(%error, "billing housekeeping failed; tried again later");
        }
    }
}

/// Heart-beats for this replica and reclaims the leases of replicas that stopped doing so.
async fn keep_alive_and_reclaim(
    db: Db,
    allowances: Arc<Allowances>,
    started_at: i64,
    dead_after: Duration,
    shutdown: CancellationToken,
) {
    let beat = (dead_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(15));
    let dead_after_secs = i64::try_from(dead_after.as_secs())
        .unwrap_or(i64::MAX)
        .max(1);
    let mut beats: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(beat) => {}
        }
        let now = chrono::Utc::now().timestamp();
        if let Err(error) = replicas::heartbeat(&db, allowances.node(), started_at, now).await {
            tracing::warn!(%error, "heartbeat not written");
        }
        beats += 1;
        // Look for dead replicas every other beat.
        if beats.is_multiple_of(2) {
            if let Err(error) = allowances.reclaim_orphans(&db, now - dead_after_secs).await {
                tracing::warn!(%error, "lease reclaim failed");
            }
        }
    }
}

/// Deletes ended portal sessions and sign-in failures that no longer count, every few minutes.
async fn purge_portal_state(db: Db, settings: Settings, shutdown: CancellationToken) {
    use crate::store::sessions::{purge_ended, purge_stale_failures, SessionPolicy};
    let policy = SessionPolicy {
        idle: settings.session_idle,
        absolute: settings.session_absolute,
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
        let now = chrono::Utc::now();
        if let Err(error) = purge_ended(&db, now, &policy).await {
            tracing::warn!(%error, "ended portal sessions not purged");
        }
        // The longest window of every rule counted in the throttle table, so none loses a live
        // count: sign-ins, code guesses, sign-ups per address, verification mails per tenant.
        let longest = settings
            .login_window
            .max(settings.code_guesses.window)
            .max(settings.signup_window)
            .max(crate::portal::verification::MAIL_WINDOW);
        if let Err(error) = purge_stale_failures(&db, now, longest).await {
            tracing::warn!(%error, "stale sign-in failures not purged");
        }
        if let Err(error) = crate::store::verifications::purge(&db, now).await {
            tracing::warn!(%error, "expired verification links not purged");
        }
    }
}

/// A replica serving in the background, for tests and `serve --demo`.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn start(settings: Settings) -> anyhow::Result<Running> {
        let listener = TcpListener::bind(settings.listen).await?;
        let addr = listener.local_addr()?;
        let core = Core::open(&settings).await?;
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        let task = tokio::spawn(serve(settings, core, listener, async move {
            signal.cancelled().await
        }));
        Ok(Running {
            addr,
            shutdown,
            task,
        })
    }

    /// Stops gracefully and waits until metering and settlement are written.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("server task panicked")?
    }
}

//! Settings for `serve` and the other commands: flags and `MODELROUTER_*` environment variables,
//! parsed, then validated into [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use modelrouter_domain::Money;

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `postgres://…`, or None for the embedded SQLite file in the data directory.
    pub database_url: Option<String>,
    /// Hex or base64 master key; None reads or creates `master.key` in the data directory.
    pub master_key: Option<String>,
    pub max_body_bytes: usize,
    pub upstream_connect_timeout: Duration,
    /// Time allowed until the upstream's response headers arrive.
    pub upstream_first_byte_timeout: Duration,
    /// Longest pause between two chunks of a streaming upstream response.
    pub upstream_idle_timeout: Duration,
    /// Keep-alive `ping` events toward Anthropic clients while a translated upstream is silent
    /// (protocols.md §6.1).
    pub stream_ping_every: Duration,
    pub metering_flush: Duration,
    pub metering_batch: usize,
    pub lease_chunk: Money,
    pub settle_every: Duration,
    pub tail_poll: Duration,
    /// A replica not heard from for this long is dead: others settle and release its leases.
    pub lease_reclaim_after: Duration,
    /// The portal's idea of this gateway's public address, for snippets and cookies
    /// (`https://api.example.com`). None derives it from each request's `Host`.
    pub public_url: Option<String>,
    /// The platform currency's code, shown beside amounts (all amounts are micro-units of it).
    pub currency: String,
    /// Credited once to every tenant who signs up (a trial credit); zero for none.
    pub signup_credit: Money,
    /// A portal session ends after this long without a page view…
    pub session_idle: Duration,
    /// …and at the latest this long after sign-in.
    pub session_absolute: Duration,
    /// Failed sign-ins allowed per email within `login_window` before it is locked.
    pub login_failures_per_email: u32,
    /// Failed sign-ins allowed per client address within `login_window`.
    pub login_failures_per_ip: u32,
    pub login_window: Duration,
    pub login_lockout: Duration,
}

impl Settings {
    pub fn local(listen: SocketAddr, data_dir: PathBuf) -> Settings {
        Settings {
            listen,
            data_dir,
            database_url: None,
            master_key: None,
            max_body_bytes: 8 * 1024 * 1024,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_first_byte_timeout: Duration::from_secs(120),
            upstream_idle_timeout: Duration::from_secs(120),
            stream_ping_every: Duration::from_secs(15),
            metering_flush: Duration::from_millis(50),
            metering_batch: 256,
            lease_chunk: Money(1_000_000),
            settle_every: Duration::from_secs(2),
            tail_poll: Duration::from_millis(250),
            lease_reclaim_after: Duration::from_secs(60),
            public_url: None,
            currency: "USD".into(),
            signup_credit: Money::ZERO,
            session_idle: Duration::from_secs(12 * 3600),
            session_absolute: Duration::from_secs(7 * 24 * 3600),
            login_failures_per_email: 5,
            login_failures_per_ip: 50,
            login_window: Duration::from_secs(15 * 60),
            login_lockout: Duration::from_secs(15 * 60),
        }
    }

    /// The store URL: PostgreSQL when configured, else `<data_dir>/modelrouter.db`.
    pub fn store_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => self
                .data_dir
                .join("modelrouter.db")
                .to_string_lossy()
                .into_owned(),
        }
    }
}

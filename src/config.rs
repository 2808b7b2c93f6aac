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
    /// How often the metering spool is fsynced: what a power loss can lose at most (zero:
    /// every record is fsynced before its answer ends).
    pub spool_fsync_every: Duration,
    /// Past this many bytes of records not yet in the store, new calls are refused (503).
    pub spool_max_backlog: u64,
    /// The longest a call waits for the store when its allowance must be topped up; then it
    /// is answered 503 with `Retry-After` rather than kept waiting.
    pub store_wait: Duration,
    /// Allowance a tenant's lease has not used for this long goes back to the account.
    pub lease_idle_return: Duration,
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
    /// How many wrong prepaid or receipt codes may be tried before further tries are refused.
    pub code_guesses: CodeGuessLimits,
    /// How long a one-time password (an operator's reset, `admin create`, a new agent's) works
    /// before it must be given again.
    pub one_time_password_ttl: Duration,
    /// Portal sign-ups allowed from one client address per `signup_window`; 0 for no limit.
    pub signups_per_address: u32,
    pub signup_window: Duration,
    /// How mail (email verification links) leaves: SMTP, or the local outbox.
    pub mail: MailSettings,
    pub payments: PaymentSettings,
    pub edge: EdgeSettings,
}

/// The HTTP edge: how long a client may take, how many connections are served at once, and
/// whose `X-Forwarded-*` headers are believed.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// A request's whole head (request line and headers) must arrive within this, counted from
    /// the connection's accept, or on a kept-alive connection from the request's first byte.
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// A request's body must arrive whole within this, counted from the end of its head (408).
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait, unaccepted, in the listen backlog.
    pub max_connections: usize,
    /// Addresses of the proxies in front of the gateway (IPs or CIDR blocks). Only connections
    /// from them may say who the client is (`X-Forwarded-For`) and how it reached the proxy
    /// (`X-Forwarded-Proto`, `X-Forwarded-Host`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 4096,
            trusted_proxies: Vec::new(),
        }
    }
}

impl EdgeSettings {
    /// Reads the `MODELROUTER_*` edge variables over the defaults.
    pub fn from_env() -> anyhow::Result<EdgeSettings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let seconds = |name: &str| -> anyhow::Result<Option<Duration>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            anyhow::anyhow!("{name} must be a positive number of seconds")
                        })
                })
                .transpose()
        };
        let mut settings = EdgeSettings::default();
        if let Some(timeout) = seconds("MODELROUTER_HEADER_READ_TIMEOUT_SECS")? {
            settings.header_read_timeout = timeout;
        }
        if let Some(timeout) = seconds("MODELROUTER_IDLE_TIMEOUT_SECS")? {
            settings.idle_timeout = timeout;
        }
        if let Some(timeout) = seconds("MODELROUTER_BODY_READ_TIMEOUT_SECS")? {
            settings.body_read_timeout = timeout;
        }
        if let Some(max) = var("MODELROUTER_MAX_CONNECTIONS") {
            settings.max_connections = max
                .trim()
                .parse()
                .ok()
                .filter(|max| (1..=tokio::sync::Semaphore::MAX_PERMITS).contains(max))
                .ok_or_else(|| {
                    anyhow::anyhow!("MODELROUTER_MAX_CONNECTIONS must be a positive integer")
                })?;
        }
        if let Some(proxies) = var("MODELROUTER_TRUSTED_PROXIES") {
            settings.trusted_proxies = parse_trusted_proxies(&proxies)?;
        }
        Ok(settings)
    }
}

/// Reads a comma- or space-separated list of IP addresses and CIDR blocks
/// (`10.0.0.0/8, 192.0.2.7, ::1`). A plain address is a block of one.
pub fn parse_trusted_proxies(text: &str) -> anyhow::Result<Vec<ipnet::IpNet>> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    anyhow::anyhow!(
                        "MODELROUTER_TRUSTED_PROXIES: `{item}` is neither an IP address nor a CIDR block"
                    )
                })
        })
        .collect()
}

/// Limits on guessing codes: prepaid codes redeemed in the portal (counted per tenant account
/// and per client address) and receipt verification codes checked on the public page (counted
/// per client address). After `per_account` or `per_address` wrong codes within `window`
/// (counted from the first), further tries are refused for `window`.
#[derive(Debug, Clone, Copy)]
pub struct CodeGuessLimits {
    pub per_account: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for CodeGuessLimits {
    fn default() -> Self {
        CodeGuessLimits {
            per_account: 10,
            per_address: 30,
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl CodeGuessLimits {
    /// Reads `MODELROUTER_CODE_FAILURES_PER_ACCOUNT`, `…_PER_ADDRESS` and
    /// `MODELROUTER_CODE_WINDOW_MINUTES` over the defaults.
    pub fn from_env() -> anyhow::Result<CodeGuessLimits> {
        let number = |name: &str| -> anyhow::Result<Option<u32>> {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    v.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| anyhow::anyhow!("{name} must be a positive whole number"))
                })
                .transpose()
        };
        let mut limits = CodeGuessLimits::default();
        if let Some(n) = number("MODELROUTER_CODE_FAILURES_PER_ACCOUNT")? {
            limits.per_account = n;
        }
        if let Some(n) = number("MODELROUTER_CODE_FAILURES_PER_ADDRESS")? {
            limits.per_address = n;
        }
        if let Some(minutes) = number("MODELROUTER_CODE_WINDOW_MINUTES")? {
            limits.window = Duration::from_secs(u64::from(minutes) * 60);
        }
        Ok(limits)
    }
}

/// How mail leaves the gateway. Without SMTP every mail is kept in the store's outbox instead.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp: Option<SmtpSettings>,
    /// The sender, `Name <address>` or an address.
    pub from: String,
    /// Shows each signed-in tenant its own mail from the outbox in the portal, so a demo (or a
    /// test) verifies an email with one click. Never with real users: anyone could then
    /// "verify" an address they do not own.
    pub outbox_in_portal: bool,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            smtp: None,
            from: "Model Router <noreply@localhost>".into(),
            outbox_in_portal: false,
        }
    }
}

/// An SMTP server to send mail through.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<crate::crypto::Secret>,
    pub tls: SmtpTls,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required (port 587, the default).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// None: only for a relay on the same host or network (a local Postfix, a test server).
    None,
}

/// How tenants top up: the limits of an order and which payment methods are offered.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// Smallest and largest amount of one order.
    pub min_order: Money,
    pub max_order: Money,
    /// An unpaid order expires after this long.
    pub order_ttl: Duration,
    /// Stripe Checkout, when configured.
    pub stripe: Option<crate::payments::stripe::StripeConfig>,
    /// Bank-transfer instructions shown to the tenant; the method is offered only with them.
    pub manual_instructions: Option<String>,
    /// The built-in pretend payment page, for demos and tests. Off unless enabled.
    pub sandbox: bool,
    /// How often each replica expires due orders and finishes interrupted credits.
    pub sweep_every: Duration,
}

impl MailSettings {
    /// Reads `MODELROUTER_SMTP_*`, `MODELROUTER_MAIL_FROM` and `MODELROUTER_MAIL_OUTBOX_IN_PORTAL`.
    pub fn from_env() -> anyhow::Result<MailSettings> {
        let mut mail = MailSettings::default();
        if let Some(from) = env_var("MODELROUTER_MAIL_FROM") {
            anyhow::ensure!(
                from.parse::<lettre::message::Mailbox>().is_ok(),
                "MODELROUTER_MAIL_FROM must be an address or `Name <address>`"
            );
            mail.from = from.trim().to_string();
        }
        mail.outbox_in_portal =
            env_var("MODELROUTER_MAIL_OUTBOX_IN_PORTAL").is_some_and(|v| v == "true" || v == "1");
        let Some(host) = env_var("MODELROUTER_SMTP_HOST") else {
            return Ok(mail);
        };
        let tls = match env_var("MODELROUTER_SMTP_TLS").as_deref().map(str::trim) {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(_) => anyhow::bail!("MODELROUTER_SMTP_TLS must be starttls, tls or none"),
        };
        let port = match env_var("MODELROUTER_SMTP_PORT") {
            Some(port) => port
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("MODELROUTER_SMTP_PORT must be a port number"))?,
            None if tls == SmtpTls::Tls => 465,
            None => 587,
        };
        let username = env_var("MODELROUTER_SMTP_USERNAME");
        let password = env_var("MODELROUTER_SMTP_PASSWORD").map(crate::crypto::Secret::new);
        anyhow::ensure!(
            username.is_some() == password.is_some(),
            "SMTP needs both MODELROUTER_SMTP_USERNAME and MODELROUTER_SMTP_PASSWORD, or neither"
        );
        mail.smtp = Some(SmtpSettings {
            host: host.trim().to_string(),
            port,
            username,
            password,
            tls,
        });
        Ok(mail)
    }
}

/// A set, non-blank environment variable.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            min_order: Money(1_000_000),
            max_order: Money(10_000_000_000),
            order_ttl: Duration::from_secs(3600),
            stripe: None,
            manual_instructions: None,
            sandbox: false,
            sweep_every: Duration::from_secs(30),
        }
    }
}

impl PaymentSettings {
    /// Reads the `MODELROUTER_*` payment variables over the defaults.
    pub fn from_env() -> anyhow::Result<PaymentSettings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let micros = |name: &str| -> anyhow::Result<Option<Money>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .map(Money)
                        .map_err(|_| anyhow::anyhow!("{name} must be an integer of micro-units"))
                })
                .transpose()
        };
        let mut settings = PaymentSettings::default();
        if let Some(min) = micros("MODELROUTER_RECHARGE_MIN")? {
            settings.min_order = min;
        }
        if let Some(max) = micros("MODELROUTER_RECHARGE_MAX")? {
            settings.max_order = max;
        }
        if let Some(minutes) = var("MODELROUTER_ORDER_TTL_MINUTES") {
            let minutes: u64 = minutes.trim().parse().map_err(|_| {
                anyhow::anyhow!("MODELROUTER_ORDER_TTL_MINUTES must be whole minutes")
            })?;
            settings.order_ttl = Duration::from_secs(minutes * 60);
        }
        match (
            var("MODELROUTER_STRIPE_SECRET_KEY"),
            var("MODELROUTER_STRIPE_WEBHOOK_SECRET"),
        ) {
            (Some(key), Some(webhook)) => {
                let mut stripe = crate::payments::stripe::StripeConfig::new(
                    crate::crypto::Secret::new(key),
                    crate::crypto::Secret::new(webhook),
                );
                if let Some(base) = var("MODELROUTER_STRIPE_API_BASE") {
                    stripe.api_base = base.trim_end_matches('/').to_string();
                }
                settings.stripe = Some(stripe);
            }
            (None, None) => {}
            _ => anyhow::bail!(
                "Stripe needs both MODELROUTER_STRIPE_SECRET_KEY and MODELROUTER_STRIPE_WEBHOOK_SECRET"
            ),
        }
        settings.manual_instructions = var("MODELROUTER_MANUAL_TRANSFER_INSTRUCTIONS");
        settings.sandbox =
            var("MODELROUTER_SANDBOX_PAYMENTS").is_some_and(|v| v == "true" || v == "1");
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.min_order.is_positive() && self.min_order <= self.max_order,
            "the recharge minimum must be positive and at most the maximum"
        );
        anyhow::ensure!(
            self.max_order <= Money::MAX_AMOUNT,
            "the recharge maximum must be at most {} micro-units (the largest single amount)",
            Money::MAX_AMOUNT.0
        );
        Ok(())
    }
}

impl Settings {
    /// Reads the `MODELROUTER_*` account variables (one-time passwords, sign-up limits, mail)
    /// over these settings.
    pub fn read_account_env(&mut self) -> anyhow::Result<()> {
        if let Some(hours) = env_var("MODELROUTER_ONE_TIME_PASSWORD_HOURS") {
            let hours: u64 = hours
                .trim()
                .parse()
                .ok()
                .filter(|h| *h > 0)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "MODELROUTER_ONE_TIME_PASSWORD_HOURS must be whole hours, at least 1"
                    )
                })?;
            self.one_time_password_ttl = Duration::from_secs(hours.saturating_mul(3600));
        }
        if let Some(limit) = env_var("MODELROUTER_SIGNUPS_PER_ADDRESS") {
            self.signups_per_address = limit.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "MODELROUTER_SIGNUPS_PER_ADDRESS must be a whole number (0: no limit)"
                )
            })?;
        }
        if let Some(minutes) = env_var("MODELROUTER_SIGNUP_WINDOW_MINUTES") {
            let minutes: u64 = minutes
                .trim()
                .parse()
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "MODELROUTER_SIGNUP_WINDOW_MINUTES must be whole minutes, at least 1"
                    )
                })?;
            self.signup_window = Duration::from_secs(minutes.saturating_mul(60));
        }
        self.mail = MailSettings::from_env()?;
        Ok(())
    }

    /// The metering and allowance settings operators may change (docs/operations.md).
    pub fn read_metering_env(&mut self) -> anyhow::Result<()> {
        let number = |name: &str, at_least: u64| -> anyhow::Result<Option<u64>> {
            env_var(name)
                .map(|text| {
                    text.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n >= at_least)
                        .ok_or_else(|| {
                            anyhow::anyhow!("{name} must be a whole number, at least {at_least}")
                        })
                })
                .transpose()
        };
        if let Some(ms) = number("MODELROUTER_SPOOL_FSYNC_MS", 0)? {
            self.spool_fsync_every = Duration::from_millis(ms);
        }
        if let Some(mb) = number("MODELROUTER_SPOOL_MAX_MB", 1)? {
            self.spool_max_backlog = mb.saturating_mul(1 << 20);
        }
        if let Some(ms) = number("MODELROUTER_STORE_WAIT_MS", 1)? {
            self.store_wait = Duration::from_millis(ms);
        }
        if let Some(secs) = number("MODELROUTER_LEASE_IDLE_SECS", 1)? {
            self.lease_idle_return = Duration::from_secs(secs);
        }
        if let Some(secs) = number("MODELROUTER_LEASE_RECLAIM_SECS", 1)? {
            self.lease_reclaim_after = Duration::from_secs(secs);
        }
        if let Some(ms) = number("MODELROUTER_SETTLE_MS", 10)? {
            self.settle_every = Duration::from_millis(ms);
        }
        Ok(())
    }

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
            spool_fsync_every: Duration::from_millis(100),
            spool_max_backlog: 1 << 30,
            store_wait: Duration::from_millis(800),
            lease_idle_return: Duration::from_secs(10),
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
            code_guesses: CodeGuessLimits::default(),
            one_time_password_ttl: Duration::from_secs(72 * 3600),
            signups_per_address: 5,
            signup_window: Duration::from_secs(3600),
            mail: MailSettings::default(),
            payments: PaymentSettings::default(),
            edge: EdgeSettings::default(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::parse_trusted_proxies;

    #[test]
    fn trusted_proxies_are_addresses_and_blocks_and_a_typo_is_named() {
        let nets = parse_trusted_proxies("10.0.0.0/8, 192.0.2.7 ::1,").unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]);
        let error = parse_trusted_proxies("10.0.0.0/8, 10.0.0.300").unwrap_err();
        assert!(error.to_string().contains("`10.0.0.300`"), "{error}");
    }
}

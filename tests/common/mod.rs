//! Test harness: a fresh store per test (a SQLite file in a temp dir, and — when
//! `MODELROUTER_TEST_DATABASE_URL` is set — a fresh PostgreSQL database), the mock upstream on
//! port 0, and gateway replicas on port 0.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use modelrouter::config::Settings;
use modelrouter::server::{Core, Running};
use modelrouter_projections::sql::{self, Projection};
use modelrouter_projections::Db;
use serde_json::{json, Value};
use sqlx::Connection;

pub mod private_pg;
pub mod replica;
pub mod visitor;

pub const KEY_AUTO: &str = "sk-mr-test-auto-0000000000000000";
pub const KEY_FIXED: &str = "sk-mr-test-fixed-000000000000000";
pub const KEY_SET: &str = "sk-mr-test-set-00000000000000000";
pub const KEY_BROKE: &str = "sk-mr-test-broke-000000000000000";
pub const KEY_OTHER: &str = "sk-mr-test-other-000000000000000";
pub const UPSTREAM_CREDENTIAL: &str = "sk-upstream-credential-0001";

/// Where a test's events live.
pub struct Store {
    pub name: &'static str,
    pub url: Option<String>,
    pub dir: tempfile::TempDir,
}

impl Store {
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::local(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            self.dir.path().to_path_buf(),
        );
        settings.database_url = self.url.clone();
        // One master key for every replica of the test, as production requires.
        settings.master_key = Some("11".repeat(32));
        // Mail stays in the outbox, shown in the portal, as in the demo: a test verifies an
        // email through the portal (`Visitor::verify_email`).
        settings.mail.outbox_in_portal = true;
        // Tests sign many tenants up from one loopback address; tests/signup_abuse.rs checks
        // the limit per address with a limit of its own.
        settings.signups_per_address = 0;
        settings
    }

    pub async fn core(&self) -> Core {
        Core::open(&self.settings()).await.unwrap()
    }
}

/// Runs the `modelrouter` binary on the test's store, as an operator would (the same master key
/// as the test's replicas); returns (exit code, stdout, stderr).
pub async fn cli(store: &Store, args: &[&str]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_modelrouter"));
    command
        .arg("--data-dir")
        .arg(store.dir.path())
        .env_remove("MODELROUTER_DATABASE_URL")
        .env("MODELROUTER_MASTER_KEY", "11".repeat(32))
        .env("MODELROUTER_LOG", "warn");
    if let Some(url) = &store.url {
        command.arg("--database-url").arg(url);
    }
    let output = command.args(args).output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The stores every flow test runs against: SQLite always, PostgreSQL when configured.
pub async fn stores() -> Vec<Store> {
    let mut stores = vec![Store {
        name: "sqlite",
        url: None,
        dir: tempfile::tempdir().unwrap(),
    }];
    if let Ok(base) = std::env::var("MODELROUTER_TEST_DATABASE_URL") {
        if !base.is_empty() {
            stores.push(Store {
                name: "postgres",
                url: Some(fresh_postgres_database(&base).await),
                dir: tempfile::tempdir().unwrap(),
            });
        }
    }
    stores
}

async fn fresh_postgres_database(base: &str) -> String {
    let name = format!("mr_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("MODELROUTER_TEST_DATABASE_URL must reach PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    match base.rfind('/') {
        Some(slash) if base[..slash].contains("://") && slash > base.find("://").unwrap() + 2 => {
            let query = base[slash..]
                .find('?')
                .map(|q| &base[slash + q..])
                .unwrap_or("");
            format!("{}/{name}{query}", &base[..slash])
        }
        _ => format!("{base}/{name}"),
    }
}

/// A running mock upstream.
pub struct Mock {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn mock() -> Mock {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = modelrouter::mock::MockConfig {
        api_key: Some(UPSTREAM_CREDENTIAL.into()),
    };
    tokio::spawn(modelrouter::mock::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Mock { addr, stop }
}

impl Mock {
    pub async fn requests(&self) -> Vec<Value> {
        reqwest::get(format!("http://{}/_mock/requests", self.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    pub fn stop(self) {
        let _ = self.stop.send(());
    }
}

/// The catalog and tenants most flow tests use. Prices: test-gpt 2/8 per 1M micro-units... in
/// micro-units per 1M tokens, so 1 input token costs 2 micro-units and 1 output token 8.
pub fn catalog(mock: SocketAddr, broke_balance: i64) -> String {
    format!(
        r#"
[[providers]]
id = "mock-openai"
protocol = "openai"
base_url = "http://{mock}/v1"
region = "local"
api_key = "{UPSTREAM_CREDENTIAL}"

[[models]]
name = "test-gpt"
display_name = "Test GPT"
input_price = 2_000_000
output_price = 8_000_000
cached_input_price = 500_000

[[models]]
name = "test-mini"
display_name = "Test Mini"
input_price = 1_000_000
output_price = 1_000_000
cached_input_price = 1_000_000

[[models]]
name = "test-unrouted"
display_name = "Not routed"
input_price = 1
output_price = 1
cached_input_price = 1

[[routes]]
model = "test-gpt"
deployments = [ {{ provider = "mock-openai", upstream_model = "upstream-gpt", weight = 100, priority = 0 }} ]

[[routes]]
model = "test-mini"
deployments = [ {{ provider = "mock-openai", upstream_model = "upstream-mini", weight = 100, priority = 0 }} ]

[[tenants]]
email = "acme@example.com"
name = "Acme"
password = "correct horse battery staple"
balance = 100_000_000
keys = [
  {{ name = "auto", key = "{KEY_AUTO}", scope = "auto" }},
  {{ name = "fixed", key = "{KEY_FIXED}", scope = {{ fixed = "test-mini" }} }},
  {{ name = "set", key = "{KEY_SET}", scope = {{ models = ["test-gpt"] }} }},
]

[[tenants]]
email = "broke@example.com"
name = "Broke"
password = "correct horse battery staple"
balance = {broke_balance}
keys = [ {{ name = "k", key = "{KEY_BROKE}", scope = "auto" }} ]
"#
    )
}

pub async fn import_text(core: &Core, text: &str) -> modelrouter::import::ImportReport {
    let file = modelrouter::import::parse(text).unwrap();
    modelrouter::import::apply(core, &file, &modelrouter_domain::metadata::Actor::Cli)
        .await
        .unwrap()
}

/// A store seeded with [`catalog`], a mock, and one replica serving.
pub struct Env {
    pub store: Store,
    pub mock: Mock,
    pub server: Running,
    pub http: reqwest::Client,
}

pub async fn env_with(store: Store, broke_balance: i64, tweak: impl Fn(&mut Settings)) -> Env {
    let mock = mock().await;
    let core = store.core().await;
    import_text(&core, &catalog(mock.addr, broke_balance)).await;
    drop(core);
    let mut settings = store.settings();
    tweak(&mut settings);
    let server = Running::start(settings).await.unwrap();
    Env {
        store,
        mock,
        server,
        http: reqwest::Client::new(),
    }
}

pub async fn env(store: Store) -> Env {
    env_with(store, 0, |_| {}).await
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Stops the replica (draining metering and settling allowances), brings the SQL
    /// projections up to date, and returns the store for inspection.
    pub async fn finish(self) -> (Store, Db) {
        self.server.stop().await.unwrap();
        self.mock.stop();
        let core = self.store.core().await;
        for projection in Projection::ALL {
            sql::catch_up(&core.db, projection, 1000).await.unwrap();
        }
        (self.store, core.db)
    }
}

pub fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// Polls `check` every 20 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tenant id of an imported tenant, by email.
pub async fn tenant_id(db: &Db, email: &str) -> String {
    modelrouter::store::email_owner(db, email, modelrouter::store::LoginKind::Tenant)
        .await
        .unwrap()
        .unwrap()
}

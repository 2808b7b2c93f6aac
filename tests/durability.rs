//! Every answered call is recorded and every cent adds up, through the faults an operator
//! meets: a replica killed under load, the store gone for a minute, allowance stranded across
//! replicas, a long transaction elsewhere on the server. Real processes (`modelrouter serve`),
//! real stores; the clients count what they received and the test compares it with the store.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::private_pg::PrivatePostgres;
use common::replica::Replica;
use common::*;
use modelrouter_projections::sql::{self, balances, Projection};
use modelrouter_projections::{on_db, Db};
use serde_json::{json, Value};

const KEY: &str = "sk-mr-durability-0000000000000000";

/// One provider on the mock, `dear-gpt` at 1,000 µ per output token and nothing for input (so
/// a call's hold is exactly `max_tokens` × 1,000 µ), and one tenant with `balance`.
fn catalog(mock: std::net::SocketAddr, balance: i64) -> String {
    format!(
        r#"
[[providers]]
id = "mock"
protocol = "openai"
base_url = "http://{mock}/v1"
region = "local"
api_key = "{UPSTREAM_CREDENTIAL}"

[[models]]
name = "dear-gpt"
display_name = "Dear GPT"
input_price = 0
output_price = 1_000_000_000
cached_input_price = 0

[[routes]]
model = "dear-gpt"
deployments = [ {{ provider = "mock", upstream_model = "upstream-gpt", weight = 100, priority = 0 }} ]

[[tenants]]
email = "payer@example.com"
name = "Payer"
password = "correct horse battery staple"
balance = {balance}
keys = [ {{ name = "k", key = "{KEY}", scope = "auto" }} ]
"#
    )
}

/// What the clients of a load run received.
#[derive(Default)]
struct Received {
    /// Request ids of the calls answered completely with 200 (a stream: through `[DONE]`).
    answered: Vec<String>,
    /// Status → how many.
    statuses: BTreeMap<u16, usize>,
    /// The slowest answer that was not a 200, and the slowest of all.
    slowest_refusal: Duration,
    slowest: Duration,
    /// Refusals (503) that came without `Retry-After`.
    refusals_without_retry_after: usize,
}

/// Clients calling the replicas in turn, streams and whole answers alternating, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    received: Arc<Mutex<Received>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(urls: Vec<String>, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Received::default()));
        let urls = Arc::new(Mutex::new(urls));
        let clients = (0..clients)
            .map(|client| {
                let (stop, answered, received, urls) = (
                    stop.clone(),
                    answered.clone(),
                    received.clone(),
                    urls.clone(),
                );
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .unwrap();
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let url = {
                            let urls = urls.lock().unwrap();
                            urls[(client + n) % urls.len()].clone()
                        };
                        let stream = n.is_multiple_of(2);
                        let started = Instant::now();
                        let (status, id, complete, retry_after) = call(&http, &url, stream).await;
                        let took = started.elapsed();
                        let mut received = received.lock().unwrap();
                        *received.statuses.entry(status).or_default() += 1;
                        received.slowest = received.slowest.max(took);
                        if status == 200 && complete {
                            received.answered.push(id.unwrap());
                            answered.fetch_add(1, Ordering::Relaxed);
                        } else if status != 0 {
                            received.slowest_refusal = received.slowest_refusal.max(took);
                            if status == 503 && !retry_after {
                                received.refusals_without_retry_after += 1;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            answered,
            received,
            clients,
        }
    }

    /// Waits until `more` further calls were answered.
    async fn answered_more(&self, more: usize, within: Duration) {
        let target = self.answered.load(Ordering::Relaxed) + more;
        let reached = eventually(within, || async {
            self.answered.load(Ordering::Relaxed) >= target
        })
        .await;
        assert!(reached, "the load stalled below {target} answered calls");
    }

    async fn stop(self) -> Received {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await.unwrap();
        }
        Arc::try_unwrap(self.received)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// One call: (status — 0 when no answer came —, request id, complete, has Retry-After).
async fn call(
    http: &reqwest::Client,
    base: &str,
    stream: bool,
) -> (u16, Option<String>, bool, bool) {
    let body = json!({
        "model": "dear-gpt",
        "max_tokens": 20,
        "stream": stream,
        "messages": [{"role": "user", "content": "count me"}],
    });
    let Ok(response) = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
    else {
        return (0, None, false, false);
    };
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let retry_after = response.headers().contains_key("retry-after");
    let Ok(text) = response.text().await else {
        return (status, id, false, retry_after);
    };
    let complete = match stream {
        true => text.trim_end().ends_with("data: [DONE]"),
        false => serde_json::from_str::<Value>(&text).is_ok_and(|v| v["choices"][0].is_object()),
    };
    (status, id, complete, retry_after)
}

/// How many InferenceCall events the store holds for each request id.
async fn recorded(db: &Db) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT aggregate_id, count(*) FROM events WHERE aggregate_type = 'InferenceCall'
              GROUP BY aggregate_id",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    });
    rows.into_iter().collect()
}

/// The tenant's calls and their cost as the log records them (through the usage projection)
/// and as the Account settled them (the balances projection), with what leases still hold.
async fn money(db: &Db, tenant: &str) -> (i64, i64, i64, i64, i64) {
    for projection in Projection::ALL {
        sql::catch_up(db, projection, 1000).await.unwrap();
    }
    let (calls, cost): (i64, Option<i64>) = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT count(*), CAST(sum(cost) AS BIGINT) FROM usage_calls
              WHERE tenant_id = $1 AND cost > 0",
        )
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap()
    });
    let row = balances::balance_of(db, tenant).await.unwrap().unwrap();
    (
        calls,
        cost.unwrap_or(0),
        row.calls,
        row.settled,
        row.outstanding,
    )
}

/// Every call a client received whole has exactly one InferenceCall event.
fn every_answer_recorded_once(name: &str, received: &Received, recorded: &BTreeMap<String, i64>) {
    let missing: Vec<&String> = received
        .answered
        .iter()
        .filter(|id| recorded.get(*id) != Some(&1))
        .collect();
    assert!(
        missing.is_empty(),
        "{name}: {} of {} answered calls have no single InferenceCall event, e.g. {:?}",
        missing.len(),
        received.answered.len(),
        &missing[..missing.len().min(5)]
    );
}

async fn ledger_verifies(store: &Store) {
    let (code, out, err) = cli(store, &["ledger", "verify", "--all"]).await;
    assert_eq!(code, 0, "{}: ledger verify: {out}{err}", store.name);
}

#[tokio::test]
async fn a_replica_killed_under_load_loses_no_answered_call() {
    for store in stores().await {
        let mock = mock().await;
        let core = store.core().await;
        import_text(&core, &catalog(mock.addr, 100_000_000_000)).await;
        let tenant = tenant_id(&core.db, "payer@example.com").await;
        // Nobody else reclaims the dead replica's leases: its successor must do it.
        let env = [
            ("MODELROUTER_SETTLE_MS", "200".to_string()),
            ("MODELROUTER_LEASE_RECLAIM_SECS", "3600".to_string()),
        ];
        let dir = store.dir.path().to_path_buf();
        let doomed = Replica::start(&store, &dir, &env).await;
        let survivor = Replica::start(&store, &dir, &env).await;
        let load = Load::start(vec![doomed.url(""), survivor.url("")], 16);
        load.answered_more(800, Duration::from_secs(60)).await;
        doomed.kill().await;
        load.answered_more(200, Duration::from_secs(60)).await;
        let received = load.stop().await;

        // A replica started where the dead one ran takes its spool over, stores what it left
        // and settles its leases.
        let successor = Replica::start(&store, &dir, &env).await;
        let caught_up = eventually(Duration::from_secs(30), || async {
            let (calls, cost, settled_calls, settled, _) = money(&core.db, &tenant).await;
            calls == settled_calls && cost == settled
        })
        .await;
        let (calls, cost, settled_calls, settled, _) = money(&core.db, &tenant).await;
        assert!(
            caught_up,
            "{}: recorded {calls} calls / {cost} µ but settled {settled_calls} / {settled}\n{}",
            store.name,
            successor.logs()
        );
        successor.stop().await;
        survivor.stop().await;

        let recorded = recorded(&core.db).await;
        every_answer_recorded_once(store.name, &received, &recorded);
        let (calls, cost, settled_calls, settled, outstanding) = money(&core.db, &tenant).await;
        assert_eq!((calls, cost), (settled_calls, settled), "{}", store.name);
        assert_eq!(outstanding, 0, "{}: every lease is closed", store.name);
        ledger_verifies(&store).await;
        println!(
            "{}: kill -9 under load: {} answered 200, {} recorded ({} more than answered: in \
             flight at the kill), 0 lost; {} settled = {} µ",
            store.name,
            received.answered.len(),
            recorded.len(),
            recorded.len().saturating_sub(received.answered.len()),
            settled_calls,
            settled
        );
        mock.stop();
    }
}

#[tokio::test]
async fn a_minute_without_the_store_loses_nothing_and_stalls_no_one() {
    let Some(server) = PrivatePostgres::start().await else {
        println!("skipped: no PostgreSQL server binaries on this machine");
        return;
    };
    let store = Store {
        name: "private-postgres",
        url: Some(server.database("outage").await),
        dir: tempfile::tempdir().unwrap(),
    };
    let outage = Duration::from_secs(
        std::env::var("MODELROUTER_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let mock = mock().await;
    let core = store.core().await;
    import_text(&core, &catalog(mock.addr, 100_000_000_000)).await;
    let tenant = tenant_id(&core.db, "payer@example.com").await;
    let env = [("MODELROUTER_SETTLE_MS", "200".to_string())];
    let replica = Replica::start(&store, store.dir.path(), &env).await;
    let load = Load::start(vec![replica.url("")], 8);
    load.answered_more(300, Duration::from_secs(60)).await;

    server.stop().await;
    let down_at = Instant::now();
    // Served from the lease while it lasts, then refused at once: nothing waits for the store.
    let refused_quickly = eventually(outage, || async {
        load.received
            .lock()
            .unwrap()
            .statuses
            .get(&503)
            .copied()
            .unwrap_or(0)
            > 20
    })
    .await;
    tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
    let during = {
        let received = load.received.lock().unwrap();
        (received.slowest, received.statuses.clone())
    };
    server.start_again().await;
    // Back by itself, without a restart.
    let answered_at = load.answered.load(Ordering::Relaxed);
    load.answered_more(300, Duration::from_secs(30)).await;
    let received = load.stop().await;
    replica.stop().await;

    assert!(
        refused_quickly,
        "no call was refused during the outage: {:?}",
        during.1
    );
    assert!(
        during.0 < Duration::from_millis(1500),
        "a call waited {:?} during the outage",
        during.0
    );
    assert_eq!(received.refusals_without_retry_after, 0);
    assert!(load_resumed(answered_at, &received));
    let recorded = recorded(&core.db).await;
    every_answer_recorded_once(store.name, &received, &recorded);
    let (calls, cost, settled_calls, settled, outstanding) = money(&core.db, &tenant).await;
    assert_eq!((calls, cost), (settled_calls, settled));
    assert_eq!(outstanding, 0);
    ledger_verifies(&store).await;
    println!(
        "store outage of {outage:?} under 8 clients: {} answered 200, all {} recorded, 0 lost; \
         statuses {:?}; slowest answer {:?} (during the outage {:?})",
        received.answered.len(),
        recorded.len(),
        received.statuses,
        received.slowest,
        during.0
    );
    mock.stop();
}

fn load_resumed(answered_before: usize, received: &Received) -> bool {
    received.answered.len() >= answered_before + 300
}

#[tokio::test]
async fn a_call_is_refused_for_balance_only_when_the_whole_balance_cannot_cover_it() {
    for store in stores().await {
        let mock = mock().await;
        let core = store.core().await;
        // Ten holds' worth (100,000 µ each: 100 tokens at 1,000 µ); a call costs far less.
        let balance = 1_000_000;
        import_text(&core, &catalog(mock.addr, balance)).await;
        let tenant = tenant_id(&core.db, "payer@example.com").await;
        // Idle leases are not returned during the test: only a recall can move allowance.
        let env = [
            ("MODELROUTER_LEASE_IDLE_SECS", "3600".to_string()),
            (
                "MODELROUTER_LOG",
                "info,modelrouter::allowance=debug,sqlx=warn".to_string(),
            ),
        ];
        let dir = store.dir.path().to_path_buf();
        let replicas = [
            Replica::start(&store, &dir, &env).await,
            Replica::start(&store, &dir, &env).await,
        ];
        let http = reqwest::Client::new();
        let hold = 100_000;
        let mut served = 0;
        let mut slowest = Duration::ZERO;
        let refused = loop {
            let replica = &replicas[served % 2];
            let started = Instant::now();
            let response = http
                .post(replica.url("/v1/chat/completions"))
                .bearer_auth(KEY)
                .json(&json!({"model": "dear-gpt", "max_tokens": 100, "messages": user("hi")}))
                .send()
                .await
                .unwrap();
            slowest = slowest.max(started.elapsed());
            match response.status().as_u16() {
                200 => served += 1,
                402 => break served,
                other => panic!(
                    "{}: unexpected {other}: {}",
                    store.name,
                    response.text().await.unwrap()
                ),
            }
            assert!(served < 1000, "{}: never refused", store.name);
        };
        let [a, b] = replicas;
        let logs = format!("{}\n---\n{}", a.stop().await, b.stop().await);
        let (_, cost, _, settled, outstanding) = money(&core.db, &tenant).await;
        assert_eq!(cost, settled);
        assert_eq!(outstanding, 0);
        let left = balance - settled;
        assert!(
            left < hold,
            "{}: refused with {left} µ left, enough for a hold of {hold} µ ({refused} served)\n{logs}",
            store.name
        );
        assert!(
            slowest < Duration::from_secs(3),
            "{}: a call took {slowest:?}",
            store.name
        );
        println!(
            "{}: two replicas, alternating calls: {refused} served, refused with {left} µ left \
             (< one hold of {hold} µ); slowest call {slowest:?}",
            store.name
        );
        mock.stop();
    }
}

#[tokio::test]
async fn allowance_a_replica_does_not_use_flows_back_to_the_account() {
    for store in stores().await {
        let mock = mock().await;
        let core = store.core().await;
        import_text(&core, &catalog(mock.addr, 10_000_000)).await;
        let tenant = tenant_id(&core.db, "payer@example.com").await;
        let env = [("MODELROUTER_LEASE_IDLE_SECS", "1".to_string())];
        let replica = Replica::start(&store, store.dir.path(), &env).await;
        let response = reqwest::Client::new()
            .post(replica.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": "dear-gpt", "max_tokens": 100, "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let held = money(&core.db, &tenant).await.4;
        assert!(held > 0, "{}: the replica leased allowance", store.name);
        let returned = eventually(Duration::from_secs(10), || async {
            money(&core.db, &tenant).await.4 == 0
        })
        .await;
        assert!(
            returned,
            "{}: the idle lease kept its allowance",
            store.name
        );
        replica.stop().await;
        mock.stop();
    }
}

#[tokio::test]
async fn a_long_transaction_in_another_database_neither_delays_readiness_nor_new_keys() {
    let Ok(base) = std::env::var("MODELROUTER_TEST_DATABASE_URL") else {
        return; // PostgreSQL only: SQLite has no other transactions to wait for.
    };
    if base.is_empty() {
        return;
    }
    let store = stores().await.pop().unwrap();
    // Someone else's transaction, in another database of the same server, stays open.
    let mut elsewhere = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut elsewhere).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut elsewhere)
        .await
        .unwrap();

    let mock = mock().await;
    let core = store.core().await;
    import_text(&core, &catalog(mock.addr, 10_000_000)).await;
    let started = Instant::now();
    let replica = Replica::start(&store, store.dir.path(), &[]).await;
    let ready_after = started.elapsed();
    // Ready means it knows every key imported before it started.
    let http = reqwest::Client::new();
    let ask = |key: &'static str| {
        let http = http.clone();
        let url = replica.url("/v1/chat/completions");
        async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"model": "dear-gpt", "max_tokens": 5, "messages": user("hi")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        ask(KEY).await,
        200,
        "a key imported before start was refused"
    );

    // A key created while the transaction is still open works on the running replica within
    // the tail's poll.
    const NEW_KEY: &str = "sk-mr-durability-new-00000000000000";
    let text = catalog(mock.addr, 10_000_000).replace(
        &format!(r#"{{ name = "k", key = "{KEY}", scope = "auto" }}"#),
        &format!(
            r#"{{ name = "k", key = "{KEY}", scope = "auto" }}, {{ name = "new", key = "{NEW_KEY}", scope = "auto" }}"#
        ),
    );
    import_text(&core, &text).await;
    let created = Instant::now();
    let usable = eventually(Duration::from_secs(2), || ask(NEW_KEY).then_some_200()).await;
    let usable_after = created.elapsed();
    assert!(
        usable,
        "a new key was not usable within 2 s while the transaction stayed open"
    );
    sqlx::query("ROLLBACK")
        .execute(&mut elsewhere)
        .await
        .unwrap();
    replica.stop().await;
    println!(
        "long transaction in another database: ready after {ready_after:?}, a new key usable \
         after {usable_after:?}"
    );
    mock.stop();
}

/// `ask(key).then_some_200()`: whether the call was answered 200.
trait Answered {
    fn then_some_200(self) -> impl std::future::Future<Output = bool>;
}

impl<F: std::future::Future<Output = u16>> Answered for F {
    async fn then_some_200(self) -> bool {
        self.await == 200
    }
}

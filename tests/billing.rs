//! Charging through real HTTP on every configured store: calls are charged at the price version
//! in effect when they start (price changes never re-price past calls), a client that leaves
//! before any output pays nothing, and the leases of a replica that died are settled from its
//! metered calls by another replica.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use modelrouter_projections::sql::{self, balances, usage, Projection};
use serde_json::json;

fn reprice(input: i64, output: i64, effective_at: Option<&str>) -> String {
    let effective = effective_at
        .map(|at| format!("price_effective_at = \"{at}\""))
        .unwrap_or_default();
    format!(
        r#"
[[models]]
name = "test-gpt"
display_name = "Test GPT"
input_price = {input}
output_price = {output}
cached_input_price = 500_000
{effective}
"#
    )
}

#[tokio::test]
async fn calls_are_charged_at_the_price_version_in_effect_when_they_start() {
    for store in stores().await {
        let env = env(store).await;
        let body = json!({"model": "test-gpt", "messages": user("[mock:words=20] price me")});
        assert_eq!(env.chat(KEY_AUTO, body.clone()).await.status(), 200);

        // A change announced for tomorrow leaves today's calls at version 1…
        let core = env.store.core().await;
        let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
        import_text(&core, &reprice(4_000_000, 16_000_000, Some(&tomorrow))).await;
        assert_eq!(env.chat(KEY_AUTO, body.clone()).await.status(), 200);
        // …while one effective now (version 3) doubles the price of the calls after it. The
        // replica learns of it through the log: call until a call is charged at version 3.
        import_text(&core, &reprice(4_000_000, 16_000_000, None)).await;
        let newest_version = || async {
            sql::catch_up(&core.db, Projection::Usage, 1000)
                .await
                .unwrap();
            let mut calls = usage::calls(&core.db, None, 100).await.unwrap();
            calls.sort_by(|a, b| a.started_at.cmp(&b.started_at));
            calls.last().map(|c| c.price_version)
        };
        let repriced = eventually(Duration::from_secs(5), || async {
            assert_eq!(env.chat(KEY_AUTO, body.clone()).await.status(), 200);
            eventually(Duration::from_secs(2), || async {
                newest_version().await.is_some_and(|v| v != 0)
            })
            .await;
            newest_version().await == Some(3)
        })
        .await;
        assert!(repriced, "the new price never reached the replica");
        drop(core);

        let (_store, db) = env.finish().await;
        let mut calls = usage::calls(&db, None, 100).await.unwrap();
        calls.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        let versions: Vec<i64> = calls.iter().map(|c| c.price_version).collect();
        assert_eq!(versions[..2], [1, 1], "{calls:?}");
        assert_eq!(versions.last(), Some(&3));
        assert!(versions.iter().all(|v| *v == 1 || *v == 3), "{versions:?}");
        // The same request costs the same at one version and twice that at the doubled one;
        // the earlier calls keep what they were charged.
        let last = calls.last().unwrap();
        assert!(calls[0].cost > 0);
        assert_eq!(calls[0].cost, calls[1].cost);
        assert_eq!(last.cost, 2 * calls[0].cost);
    }
}

/// Starts the real binary as a second process on the store, as an operator would.
async fn spawn_replica(store: &Store) -> (tokio::process::Child, String) {
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let settings = store.settings();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_modelrouter"));
    command
        .arg("--data-dir")
        .arg(store.dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("MODELROUTER_MASTER_KEY", settings.master_key.unwrap())
        .env_remove("MODELROUTER_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = &store.url {
        command.env("MODELROUTER_DATABASE_URL", url);
    }
    let child = command.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let ready = eventually(Duration::from_secs(20), || async {
        reqwest::get(format!("{base}/health/ready"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "the replica did not become ready");
    (child, base)
}

#[tokio::test]
async fn the_leases_of_a_replica_that_died_are_settled_and_released_by_another() {
    for store in stores().await {
        let mock = mock().await;
        let core = store.core().await;
        import_text(&core, &catalog(mock.addr, 0)).await;
        let acme = tenant_id(&core.db, "acme@example.com").await;

        let (mut doomed, base) = spawn_replica(&store).await;
        let http = reqwest::Client::new();
        for i in 0..5 {
            let response = http
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(KEY_AUTO)
                .json(&json!({"model": "test-gpt", "messages": user(&format!("call {i}"))}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        // Its calls are metered (the appender flushes within 50 ms)…
        let metered = eventually(Duration::from_secs(10), || async {
            sql::catch_up(&core.db, Projection::Usage, 1000)
                .await
                .unwrap();
            usage::calls(&core.db, Some(&acme), 100)
                .await
                .unwrap()
                .len()
                == 5
        })
        .await;
        assert!(metered, "{}: the calls were never metered", store.name);
        // …and then it dies without settling or releasing anything.
        doomed.kill().await.unwrap();
        sql::catch_up(&core.db, Projection::Balances, 1000)
            .await
            .unwrap();
        let held = balances::balance_of(&core.db, &acme)
            .await
            .unwrap()
            .unwrap();
        assert!(held.outstanding > 0, "the dead replica held a lease");

        // A surviving replica notices the silence and closes the lease from the log.
        let mut settings = store.settings();
        settings.lease_reclaim_after = Duration::from_secs(1);
        let survivor = modelrouter::server::Running::start(settings).await.unwrap();
        let reclaimed = eventually(Duration::from_secs(15), || async {
            sql::catch_up(&core.db, Projection::Balances, 1000)
                .await
                .unwrap();
            let row = balances::balance_of(&core.db, &acme)
                .await
                .unwrap()
                .unwrap();
            row.outstanding == 0 && row.calls == 5
        })
        .await;
        assert!(
            reclaimed,
            "{}: the dead replica's lease was never reclaimed",
            store.name
        );
        survivor.stop().await.unwrap();

        // Every call charged exactly once: balance + charges = credits.
        sql::catch_up(&core.db, Projection::Balances, 1000)
            .await
            .unwrap();
        let row = balances::balance_of(&core.db, &acme)
            .await
            .unwrap()
            .unwrap();
        let charged: i64 = usage::calls(&core.db, Some(&acme), 100)
            .await
            .unwrap()
            .iter()
            .map(|c| c.cost)
            .sum();
        assert!(charged > 0);
        assert_eq!(row.balance + charged, row.credited, "{}", store.name);
        assert_eq!(row.settled, charged);
        mock.stop();
    }
}

#[tokio::test]
async fn a_client_that_leaves_before_any_output_is_not_charged() {
    for store in stores().await {
        let env = env(store).await;
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        for stream in [false, true] {
            let gone = impatient
                .post(env.url("/v1/chat/completions"))
                .bearer_auth(KEY_AUTO)
                .json(&json!({"model": "test-gpt", "stream": stream,
                    "messages": user("[mock:delay_ms=2000] too slow for this client")}))
                .send()
                .await;
            assert!(gone.is_err(), "the client gave up before the first byte");
        }
        let body = json!({"model": "test-gpt", "messages": user("a patient call")});
        assert_eq!(env.chat(KEY_AUTO, body).await.status(), 200);
        let (_store, db) = env.finish().await;
        let acme = tenant_id(&db, "acme@example.com").await;
        let calls = usage::calls(&db, Some(&acme), 10).await.unwrap();
        let charged: i64 = calls.iter().map(|c| c.cost).sum();
        let patient = calls.iter().find(|c| c.status == 200).unwrap();
        assert_eq!(
            charged, patient.cost,
            "only the call that answered is charged: {calls:?}"
        );
        let row = balances::balance_of(&db, &acme).await.unwrap().unwrap();
        assert_eq!(row.settled, patient.cost);
    }
}

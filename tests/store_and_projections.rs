//! The storage story on every configured store: import idempotency and the import contract,
//! changes reaching a serving replica through the log, projection rebuilds equal to live
//! projections, the tail's order under concurrent writers, and balance enforcement under load.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use modelrouter::server::Running;
use modelrouter_domain::account::{AccountCommand, CreditKind, CreditSource};
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::tenant::TenantCommand;
use modelrouter_domain::Money;
use modelrouter_projections::sql::{self, balances, usage, Projection};
use modelrouter_projections::{Db, TailPosition};
use serde_json::{json, Value};

#[tokio::test]
async fn the_shared_import_example_is_accepted_and_a_second_import_changes_nothing() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/import-example.toml"
    ))
    .unwrap();
    // The fixture is a copy of the contract file; keep them identical where the contract is present.
    if let Ok(contract) = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/import-example.toml"
    )) {
        assert_eq!(
            example, contract,
            "tests/fixtures/import-example.toml is out of date"
        );
    }
    for store in stores().await {
        let core = store.core().await;
        let first = import_text(&core, &example).await;
        assert!(first.events > 10, "{}: {}", store.name, first.events);
        let second = import_text(&core, &example).await;
        assert_eq!(
            second.events, 0,
            "{}: importing twice must change nothing",
            store.name
        );

        let view = core.live.view();
        assert_eq!(view.models["acc-claude"].details.display_name, "ACC Claude");
        assert_eq!(view.providers.len(), 4);
        // Route strategies and deadlines, embedding models and tenant policies are recorded.
        let route = &view.routes["acc-gpt"];
        assert_eq!(route.retry.max_attempts, 3);
        assert_eq!(route.retry.timeout_ms, Some(60_000));
        assert_eq!(
            view.models["acc-embed"].details.kind,
            modelrouter_domain::catalog::ModelKind::Embedding
        );
        let acme = view
            .tenants
            .values()
            .find(|t| t.email == "acme@example.com")
            .unwrap();
        assert_eq!(acme.policy.regions, ["us-east", "eu-central", "cn-beijing"]);
        assert_eq!(acme.policy.requests_per_minute, Some(600));
        assert_eq!(acme.policy.max_tokens, Some(8192));
        let sealed = view.providers["openai-main"].credential.clone().unwrap();
        assert!(
            !sealed.contains("sk-upstream-openai-0001"),
            "credentials are stored encrypted"
        );
        assert_eq!(
            core.master_key.open(&sealed).unwrap().expose(),
            "sk-upstream-openai-0001"
        );
        let tenant = tenant_id(&core.db, "acme@example.com").await;
        assert_eq!(
            view.keys.values().filter(|k| k.tenant_id == tenant).count(),
            2
        );
        drop(view);

        // A changed field updates only that entry.
        let changed = example.replace(
            "display_name = \"ACC Qwen\"",
            "display_name = \"ACC Qwen Plus\"",
        );
        let third = import_text(&core, &changed).await;
        assert_eq!(third.events, 1, "{}", store.name);
        assert_eq!(
            core.live.view().models["acc-qwen"].details.display_name,
            "ACC Qwen Plus"
        );

        // Credentials never appear in the event log in plaintext.
        let events = core
            .db
            .read_events(TailPosition::default(), 10_000)
            .await
            .unwrap();
        assert!(events
            .iter()
            .all(|e| !e.payload.to_string().contains("sk-upstream-")));
        assert!(events.iter().all(|e| e.metadata["actor"] == "cli"));
    }
}

#[tokio::test]
async fn an_import_while_serving_reaches_the_replica_within_a_second() {
    for store in stores().await {
        let env = env(store).await;
        let core = env.store.core().await;
        let addition = r#"
[[models]]
name = "late-model"
display_name = "Late Model"
input_price = 1
output_price = 1
cached_input_price = 1
[[routes]]
model = "late-model"
deployments = [ { provider = "mock-openai", upstream_model = "upstream-late", weight = 1, priority = 0 } ]
"#;
        import_text(&core, addition).await;
        let http = env.http.clone();
        let url = env.url("/v1/models");
        let seen = eventually(Duration::from_secs(1), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let body: Value = http
                    .get(url)
                    .bearer_auth(KEY_AUTO)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["id"] == "late-model")
            }
        })
        .await;
        assert!(
            seen,
            "{}: the imported model did not reach the serving replica within 1s",
            env.store.name
        );

        // Revoking a key by command reaches it the same way.
        let key_id = core.live.view().keys[&modelrouter::crypto::hash_api_key(KEY_SET)]
            .key_id
            .clone();
        core.commands
            .keys
            .execute(
                &key_id,
                modelrouter_domain::api_key::ApiKeyCommand::Revoke,
                &Metadata::new(&Actor::Cli),
            )
            .await
            .unwrap();
        let http = env.http.clone();
        let url = env.url("/v1/chat/completions");
        let revoked = eventually(Duration::from_secs(1), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http
                    .post(url)
                    .bearer_auth(KEY_SET)
                    .json(&json!({"model": "test-gpt", "messages": user("x")}))
                    .send()
                    .await
                    .unwrap();
                r.status() == 401
            }
        })
        .await;
        assert!(
            revoked,
            "{}: revocation did not reach the replica within 1s",
            env.store.name
        );
        env.finish().await;
    }
}

#[tokio::test]
async fn rebuilt_projections_equal_the_live_ones() {
    for store in stores().await {
        let env = env_with(store, 0, |s| {
            s.settle_every = Duration::from_millis(50);
            s.signup_credit = modelrouter_domain::Money(10_000_000);
        })
        .await;
        // An agent and a tenant it referred, whose calls earn it commission.
        {
            use modelrouter_domain::agent::AgentCommand;
            let core = env.store.core().await;
            let register = AgentCommand::Register {
                email: "agent@example.com".into(),
                name: "Agent".into(),
                password_hash: modelrouter::crypto::hash_password("agent password 1").unwrap(),
                commission_bps: 1250,
                referral_code: "AGENT-1".into(),
                temporary: false,
                expires_at: None,
            };
            core.commands
                .agents
                .execute("agent-1", register, &Metadata::new(&Actor::Cli))
                .await
                .unwrap();
        }
        let referred = common::visitor::Visitor::new(&env.url(""));
        // The agent was registered by command, beside the replica: its referral code reaches the
        // replica's view within a tail poll.
        let mut signup = None;
        for _ in 0..100 {
            let response = referred
                .http
                .post(referred.url("/api/portal/signup"))
                .json(&json!({"email": "referred@example.com", "password": common::visitor::PASSWORD, "referral_code": "agent-1"}))
                .send()
                .await
                .unwrap();
            if response.status() != 422 {
                signup = Some(response);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let signup = signup.expect("the referral code never reached the replica");
        assert_eq!(signup.status(), 201);
        let csrf = signup.json::<Value>().await.unwrap()["csrf_token"]
            .as_str()
            .unwrap()
            .to_string();
        let referred = common::visitor::Visitor { csrf, ..referred };
        referred.verify_email().await;
        let (referred_key, _) = referred.create_key("k", json!({"kind": "auto"})).await;
        for i in 0..3 {
            let response = env
                .chat(
                    &referred_key,
                    json!({"model": "test-gpt", "messages": user(&format!("referred {i}"))}),
                )
                .await;
            assert_eq!(response.status(), 200);
        }
        for i in 0..12 {
            let stream = i % 2 == 0;
            let response = env.chat(KEY_AUTO, json!({"model": if i % 3 == 0 { "test-mini" } else { "test-gpt" }, "stream": stream, "messages": user(&format!("call number {i}"))})).await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }
        // A paid top-up order and a redeemed prepaid code, for the recharge records.
        {
            use modelrouter_domain::prepaid::{code_id, PrepaidCommand};
            use modelrouter_domain::recharge::{PaymentMethod, RechargeCommand};
            use modelrouter_domain::Money;
            let core = env.store.core().await;
            let acme = tenant_id(&core.db, "acme@example.com").await;
            let meta = Metadata::new(&Actor::Cli);
            let now = chrono::Utc::now();
            let order = [
                RechargeCommand::Place {
                    tenant_id: acme.clone(),
                    amount: Money(5_000_000),
                    currency: "USD".into(),
                    method: PaymentMethod::Sandbox,
                    placed_at: now,
                    expires_at: now + chrono::Duration::hours(1),
                },
                RechargeCommand::ConfirmPayment {
                    amount: Money(5_000_000),
                    currency: "USD".into(),
                    provider_ref: "sandbox:1".into(),
                    provider_event: "sandbox:e1".into(),
                    paid_at: now,
                    confirmed_by: "sandbox".into(),
                },
            ];
            for command in order {
                core.commands
                    .recharges
                    .execute("R-1", command, &meta)
                    .await
                    .unwrap();
            }
            let code = code_id("REBUILD-ME");
            let issue = PrepaidCommand::Issue {
                amount: Money(1_000_000),
                currency: "USD".into(),
                expires_at: None,
                note: String::new(),
                issued_at: now,
                prefix: None,
            };
            core.commands
                .prepaid
                .execute(&code, issue, &meta)
                .await
                .unwrap();
            let redeem = PrepaidCommand::Redeem {
                tenant_id: acme,
                now,
            };
            core.commands
                .prepaid
                .execute(&code, redeem, &meta)
                .await
                .unwrap();
        }
        let (store, db) = env.finish().await;
        for projection in Projection::ALL {
            let live = sql::dump(&db, projection).await.unwrap();
            assert!(!live.is_empty(), "{} {}", store.name, projection.name());
            let events = sql::rebuild(&db, projection).await.unwrap();
            assert!(events > 0);
            let rebuilt = sql::dump(&db, projection).await.unwrap();
            assert_eq!(
                live,
                rebuilt,
                "{}: {} differs after rebuild",
                store.name,
                projection.name()
            );
        }
        assert_eq!(usage::calls(&db, None, 100).await.unwrap().len(), 12 + 3);
    }
}

#[tokio::test]
async fn the_tail_reads_every_event_once_in_a_stable_order_under_concurrent_writers() {
    for store in stores().await {
        let core = std::sync::Arc::new(store.core().await);
        let mut writers = Vec::new();
        for writer in 0..4 {
            let core = core.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..25 {
                    let id = format!("tail-{writer}-{i}");
                    let email = format!("{id}@example.com");
                    let register = TenantCommand::Register {
                        email,
                        name: id.clone(),
                        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                        referred_by: None,
                        verification_required: false,
                    };
                    core.commands
                        .tenants
                        .execute(&id, register, &Metadata::new(&Actor::Cli))
                        .await
                        .unwrap();
                }
            }));
        }
        // Tail while they write: the positions read must never go backwards or repeat.
        let mut seen = HashSet::new();
        let mut at = TailPosition::default();
        let mut order_ok = true;
        loop {
            let done = writers.iter().all(|w| w.is_finished());
            let batch = core.db.read_events(at, 7).await.unwrap();
            for event in &batch {
                order_ok &= event.tail_position() > at;
                at = event.tail_position();
                assert!(
                    seen.insert(event.aggregate_id.clone()),
                    "{}: read twice",
                    store.name
                );
            }
            if done && batch.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        for writer in writers {
            writer.await.unwrap();
        }
        // Drain anything committed after the last empty read.
        for event in core.db.read_events(at, 10_000).await.unwrap() {
            assert!(seen.insert(event.aggregate_id.clone()));
        }
        assert!(order_ok, "{}: the tail order went backwards", store.name);
        assert_eq!(
            seen.len(),
            100,
            "{}: every event read exactly once",
            store.name
        );
    }
}

/// A page read right after its own write must show it, even while an older transaction is
/// still open — on PostgreSQL the tail cannot read past that transaction until it ends.
#[tokio::test]
async fn a_projection_read_after_a_write_shows_it_while_an_older_transaction_is_open() {
    for store in stores().await {
        let core = store.core().await;
        let Db::Postgres(pool) = &core.db else {
            continue; // SQLite has one writer at a time: nothing older can be open.
        };
        let mut older = pool.begin().await.unwrap();
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut *older)
            .await
            .unwrap();
        let credit = AccountCommand::Credit {
            amount: Money(7_000_000),
            source: CreditSource {
                kind: CreditKind::RechargeOrder,
                reference: "order-behind-an-open-transaction".into(),
            },
        };
        core.commands
            .accounts
            .execute("tenant-own-write", credit, &Metadata::new(&Actor::Cli))
            .await
            .unwrap();

        let db = core.db.clone();
        let mut reader = tokio::spawn(async move {
            sql::catch_up(&db, Projection::Balances, 1000)
                .await
                .unwrap();
            balances::balance_of(&db, "tenant-own-write").await.unwrap()
        });
        // The read waits for the older transaction instead of answering without the write.
        let early = tokio::time::timeout(Duration::from_millis(200), &mut reader).await;
        assert!(
            early.is_err(),
            "answered before the older transaction ended: {early:?}"
        );
        older.commit().await.unwrap();
        let row = reader
            .await
            .unwrap()
            .expect("the credit is in the balances");
        assert_eq!(row.balance, 7_000_000);
    }
}

#[tokio::test]
async fn ready_reports_the_store_and_zero_lag_and_live_always_answers() {
    for store in stores().await {
        let env = env(store).await;
        let ready = env.http.get(env.url("/health/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["store"], env.store.name);
        assert_eq!(body["lag"], 0);
        assert_eq!(
            env.http
                .get(env.url("/health/live"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        env.finish().await;
    }
}

/// A tenant whose balance covers exactly `N` calls, `20 × N` concurrent calls through two
/// replicas sharing the store: the balance never goes below zero, no more than `N` calls are
/// served, and balance + charges = credits to the micro-unit.
#[tokio::test]
async fn concurrent_calls_on_two_replicas_never_overspend() {
    const N: i64 = 5;
    // "Hello there" with max_tokens 5 on test-gpt costs exactly 50 micro-units (see flows).
    const COST: i64 = 50;
    for store in stores().await {
        let mock = mock().await;
        let core = store.core().await;
        import_text(&core, &catalog(mock.addr, N * COST)).await;
        let mut settings = store.settings();
        settings.lease_chunk = modelrouter_domain::Money(COST * 2);
        settings.settle_every = Duration::from_millis(20);
        let a = Running::start(settings.clone()).await.unwrap();
        let b = Running::start(settings).await.unwrap();
        let http = reqwest::Client::new();
        let mut calls = Vec::new();
        for i in 0..(20 * N) {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let http = http.clone();
            calls.push(tokio::spawn(async move {
                let body =
                    json!({"model": "test-gpt", "max_tokens": 5, "messages": user("Hello there")});
                http.post(format!("http://{addr}/v1/chat/completions"))
                    .bearer_auth(KEY_BROKE)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for call in calls {
            statuses.push(call.await.unwrap());
        }
        a.stop().await.unwrap();
        b.stop().await.unwrap();
        let served = statuses.iter().filter(|s| **s == 200).count() as i64;
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 402),
            "{statuses:?}"
        );
        assert!(
            (1..=N).contains(&served),
            "{}: served {served} of a balance for {N}",
            store.name
        );

        for projection in Projection::ALL {
            sql::catch_up(&core.db, projection, 1000).await.unwrap();
        }
        let tenant = tenant_id(&core.db, "broke@example.com").await;
        let balance = balances::balance_of(&core.db, &tenant)
            .await
            .unwrap()
            .unwrap();
        let charges: i64 = usage::calls(&core.db, Some(&tenant), 1000)
            .await
            .unwrap()
            .iter()
            .map(|c| c.cost)
            .sum();
        assert!(
            balance.balance >= 0,
            "{}: balance went to {}",
            store.name,
            balance.balance
        );
        assert_eq!(charges, served * COST);
        assert_eq!(
            balance.balance + charges,
            balance.credited,
            "{}: balance + charges = credits",
            store.name
        );
        assert_eq!(balance.settled, charges);
        assert_eq!(
            balance.outstanding, 0,
            "both replicas released their leases"
        );
        mock.stop();
    }
}

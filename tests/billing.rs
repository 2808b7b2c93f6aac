//! Money through real HTTP on every configured store: calls are charged at the price version in
//! effect when they start, and price changes never re-price past calls.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::visitor::Visitor;
use common::*;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_projections::sql::{self, balances, usage, Projection};
use serde_json::{json, Value};

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

fn with_payments(settings: &mut modelrouter::config::Settings) {
    settings.payments.sandbox = true;
}

async fn balance_of_tenant(visitor: &Visitor) -> i64 {
    let (_, dashboard) = visitor.json("/api/portal/dashboard").await;
    dashboard["balance"].as_i64().unwrap()
}

#[tokio::test]
async fn a_sandbox_top_up_is_credited_once_and_recorded_with_its_history() {
    for store in stores().await {
        let env = env_with(store, 0, with_payments).await;
        let alice = Visitor::sign_up(&env.url(""), "alice@example.com").await;
        assert_eq!(balance_of_tenant(&alice).await, 0);

        // Out of range and unknown methods are refused with the field.
        for (amount, method, field) in [(1, "sandbox", "amount"), (25_000_000, "stripe", "method")]
        {
            let (status, body) = alice
                .write(
                    "POST",
                    "/api/portal/recharge/orders",
                    json!({"amount": amount, "method": method}),
                )
                .await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(body["error"]["field"], field);
        }

        let (status, placed) = alice
            .write(
                "POST",
                "/api/portal/recharge/orders",
                json!({"amount": 25_000_000, "method": "sandbox"}),
            )
            .await;
        assert_eq!(status, 201, "{placed}");
        let order_id = placed["order_id"].as_str().unwrap().to_string();
        let pay_url = placed["pay_url"].as_str().unwrap().to_string();
        let (_, order) = alice
            .json(&format!("/api/portal/recharge/orders/{order_id}"))
            .await;
        assert_eq!(order["order"]["state"], "pending");

        // Paying twice (a double click, a reload) credits once.
        for _ in 0..2 {
            let response = alice
                .form(&pay_url, &[("csrf", &alice.csrf), ("outcome", "pay")])
                .await;
            assert_eq!(response.status(), 303);
        }
        let (_, order) = alice
            .json(&format!("/api/portal/recharge/orders/{order_id}"))
            .await;
        assert_eq!(order["order"]["state"], "paid", "{order}");
        assert_eq!(order["order"]["paid_amount"], 25_000_000);
        let kinds: Vec<&str> = order["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["placed", "paid", "credited"], "{order}");
        assert_eq!(balance_of_tenant(&alice).await, 25_000_000);

        // The statement books the credit this month; CSV and JSON agree.
        let (_, statement) = alice.json("/api/portal/statements?period=monthly").await;
        let month = &statement[0];
        assert_eq!(month["credits"], 25_000_000, "{statement}");
        assert_eq!(month["charges"], 0);
        assert_eq!(month["closing_balance"], 25_000_000);
        let (_, daily) = alice.json("/api/portal/statements?period=daily").await;
        assert_eq!(daily[0]["period"].as_str().unwrap().len(), 10);
        let csv = alice
            .get("/portal/statements.csv?period=monthly")
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(csv.lines().count(), 2, "{csv}");
        assert!(csv.lines().nth(1).unwrap().contains(",25000000,"), "{csv}");
        let (status, _) = alice.json("/api/portal/statements?period=yearly").await;
        assert_eq!(status, 422);

        // The receipt: a page with a verification code, a PDF, and a public check of the code.
        let page = alice
            .get(&format!("/portal/recharge/orders/{order_id}/receipt"))
            .await
            .text()
            .await
            .unwrap();
        let code = page
            .split("id=\"receipt-code\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap()
            .to_string();
        assert!(page.contains("25.00 USD"), "{page}");
        let pdf = alice
            .get(&format!("/portal/recharge/orders/{order_id}/receipt.pdf"))
            .await
            .bytes()
            .await
            .unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let check = |code: String| {
            let url = env.url(&format!("/receipts/verify?order={order_id}&code={code}"));
            async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
        };
        assert!(check(code.to_lowercase())
            .await
            .contains("Genuine: a payment of 25.00 USD"));
        let mut forged = code.clone();
        forged.replace_range(0..1, if code.starts_with('A') { "B" } else { "A" });
        assert!(check(forged).await.contains("Not genuine"));

        // Another tenant can neither see nor pay Alice's order.
        let bob = Visitor::sign_up(&env.url(""), "bob@example.com").await;
        let (status, _) = bob
            .json(&format!("/api/portal/recharge/orders/{order_id}"))
            .await;
        assert_eq!(status, 404);
        let receipt = bob
            .get(&format!("/portal/recharge/orders/{order_id}/receipt.pdf"))
            .await;
        assert_eq!(receipt.status(), 404);
        let response = bob
            .form(&pay_url, &[("csrf", &bob.csrf), ("outcome", "pay")])
            .await;
        assert_eq!(response.status(), 404);

        // A declined sandbox payment fails the order and credits nothing.
        let (_, placed) = alice
            .write(
                "POST",
                "/api/portal/recharge/orders",
                json!({"amount": 5_000_000, "method": "sandbox"}),
            )
            .await;
        let pay_url = placed["pay_url"].as_str().unwrap();
        alice
            .form(pay_url, &[("csrf", &alice.csrf), ("outcome", "decline")])
            .await;
        let (_, orders) = alice.json("/api/portal/recharge/orders").await;
        let states: Vec<&str> = orders
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            states.iter().filter(|s| **s == "failed").count(),
            1,
            "{orders}"
        );
        assert_eq!(balance_of_tenant(&alice).await, 25_000_000);
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn a_prepaid_code_credits_once_whoever_tries() {
    use modelrouter_domain::prepaid::{code_id, PrepaidCommand};
    for store in stores().await {
        let env = env_with(store, 0, with_payments).await;
        let core = env.store.core().await;
        let issue = PrepaidCommand::Issue {
            amount: modelrouter_domain::Money(7_000_000),
            currency: "USD".into(),
            expires_at: None,
            note: "conference".into(),
            issued_at: chrono::Utc::now(),
        };
        core.commands
            .prepaid
            .execute(
                &code_id("GIFT-7777-ABCD"),
                issue,
                &Metadata::new(&Actor::Cli),
            )
            .await
            .unwrap();
        let alice = Visitor::sign_up(&env.url(""), "alice@example.com").await;
        let bob = Visitor::sign_up(&env.url(""), "bob@example.com").await;
        let (status, body) = alice
            .write(
                "POST",
                "/api/portal/recharge/redeem",
                json!({"code": "gift 7777 abcd"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["amount"], 7_000_000);
        for visitor in [&alice, &bob] {
            let (status, body) = visitor
                .write(
                    "POST",
                    "/api/portal/recharge/redeem",
                    json!({"code": "GIFT-7777-ABCD"}),
                )
                .await;
            assert_eq!(status, 422);
            assert_eq!(
                body["error"]["message"],
                "This code has already been redeemed."
            );
        }
        let (status, body) = bob
            .write(
                "POST",
                "/api/portal/recharge/redeem",
                json!({"code": "NOPE-0000"}),
            )
            .await;
        assert_eq!(status, 422);
        assert_eq!(body["error"]["message"], "This code is not valid.");
        assert_eq!(balance_of_tenant(&alice).await, 7_000_000);
        assert_eq!(balance_of_tenant(&bob).await, 0);
        let _store = env.finish().await;
    }
}

async fn place(alice: &Visitor, stripe: &str, amount: i64) -> (String, String) {
    let (status, placed) = alice
        .write(
            "POST",
            "/api/portal/recharge/orders",
            json!({"amount": amount, "method": "stripe"}),
        )
        .await;
    assert_eq!(status, 201, "{placed}");
    let pay_url = placed["pay_url"].as_str().unwrap().to_string();
    assert!(pay_url.starts_with(stripe), "{pay_url}");
    let session = pay_url.rsplit('/').next().unwrap().to_string();
    (placed["order_id"].as_str().unwrap().to_string(), session)
}

async fn credited(alice: &Visitor, expected: i64) -> bool {
    eventually(Duration::from_secs(5), || async {
        balance_of_tenant(alice).await == expected
    })
    .await
}

async fn post_webhook(base: &str, header: &str, body: String) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/webhooks/stripe"))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn stripe_payments_are_credited_once_and_only_from_verified_webhooks() {
    use modelrouter::crypto::Secret;
    use modelrouter::mock::stripe::{FakeStripe, FakeStripeConfig};
    use modelrouter::payments::stripe::{signature_header, StripeConfig};
    for store in stores().await {
        let fake = FakeStripe::start(FakeStripeConfig {
            secret_key: Secret::new("sk_test_fake"),
            webhook_secret: Secret::new("whsec_fake"),
            webhook_url: None,
        })
        .await
        .unwrap();
        let stripe_url = fake.url();
        let stripe = move |settings: &mut modelrouter::config::Settings| {
            settings.payments.stripe = Some(StripeConfig {
                api_base: stripe_url.clone(),
                secret_key: Secret::new("sk_test_fake"),
                webhook_secret: Secret::new("whsec_fake"),
                tolerance: Duration::from_secs(300),
            });
        };
        let env = env_with(store, 0, &stripe).await;
        let base = env.url("");
        // A second replica on the same store where the store allows one (PostgreSQL).
        let second = if env.store.url.is_some() {
            let mut settings = env.store.settings();
            stripe(&mut settings);
            Some(modelrouter::server::Running::start(settings).await.unwrap())
        } else {
            None
        };
        fake.set_webhook_url(Some(format!("{base}/webhooks/stripe")));
        let alice = Visitor::sign_up(&base, "alice@example.com").await;
        // Paid on Stripe's page: the signed webhook credits the order.
        let (order, session) = place(&alice, &fake.url(), 20_000_000).await;
        let paid = fake.pay(&session).await.unwrap();
        assert_eq!(paid.status, Some(200));
        assert!(credited(&alice, 20_000_000).await);
        let (_, view) = alice
            .json(&format!("/api/portal/recharge/orders/{order}"))
            .await;
        assert_eq!(view["order"]["state"], "paid");
        assert_eq!(view["order"]["provider_ref"], session.as_str());

        // The same event again (Stripe retries, a "Resend"), replayed late, forged, or an
        // out-of-order "expired" after the payment: never credited twice.
        assert_eq!(fake.resend(&paid.event).await.status, Some(200));
        let (header, body) =
            fake.signed_event_at(&paid.event, chrono::Utc::now() - chrono::Duration::hours(1));
        assert_eq!(
            post_webhook(&base, &header, body).await,
            400,
            "a stale signature"
        );
        let body = paid.event.to_string();
        let forged = signature_header(
            "whsec_someone_else",
            chrono::Utc::now().timestamp(),
            body.as_bytes(),
        );
        assert_eq!(
            post_webhook(&base, &forged, body).await,
            400,
            "a forged signature"
        );
        let mut expired = paid.event.clone();
        expired["id"] = json!("evt_late_expiry");
        expired["type"] = json!("checkout.session.expired");
        let (header, body) = fake.signed_event(&expired);
        assert_eq!(post_webhook(&base, &header, body).await, 200);
        let (_, view) = alice
            .json(&format!("/api/portal/recharge/orders/{order}"))
            .await;
        assert_eq!(view["order"]["state"], "paid");
        assert!(credited(&alice, 20_000_000).await);

        // A payment of another amount is refused and flagged, not credited.
        let (short, session) = place(&alice, &fake.url(), 10_000_000).await;
        assert_eq!(
            fake.pay_amount(&session, 500).await.unwrap().status,
            Some(200)
        );
        let (_, view) = alice
            .json(&format!("/api/portal/recharge/orders/{short}"))
            .await;
        assert_eq!(view["order"]["state"], "pending", "{view}");
        assert_eq!(view["order"]["mismatches"], 1);

        // Two replicas receiving the same event at the same moment credit it once.
        fake.set_webhook_url(None);
        let (_, session) = place(&alice, &fake.url(), 3_000_000).await;
        let event = fake.pay(&session).await.unwrap().event;
        let bases: Vec<String> = std::iter::once(base.clone())
            .chain(second.iter().map(|s| format!("http://{}", s.addr)))
            .collect();
        let deliveries = bases.iter().cycle().take(4).map(|b| {
            let (header, body) = fake.signed_event(&event);
            async move { post_webhook(b, &header, body).await }
        });
        let statuses = futures::future::join_all(deliveries).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert!(credited(&alice, 23_000_000).await);
        assert_eq!(balance_of_tenant(&alice).await, 23_000_000);

        if let Some(second) = second {
            second.stop().await.unwrap();
        }
        let _store = env.finish().await;
    }
}

/// Runs an operator command on a test's store: the binary on PostgreSQL, as an operator would;
/// on SQLite the same library calls in this process. (A second process writing the SQLite file
/// of a serving replica has, rarely, waited past the busy timeout — see docs/configuration.md;
/// the browser journey still runs the binary beside a SQLite replica.)
async fn operate(store: &Store, args: &[&str]) -> (bool, String, String) {
    if store.url.is_some() {
        return cli(store, args);
    }
    use modelrouter::billing::operator;
    use modelrouter_domain::Money;
    let core = store.core().await;
    let arg = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .map(|i| args[i + 1].to_string())
            .unwrap_or_default()
    };
    let result: anyhow::Result<String> = async {
        match (args[0], args[1]) {
            ("admin", "create") => {
                let email = arg("--email");
                let id = uuid::Uuid::new_v4().to_string();
                let login = modelrouter::store::LoginKind::Operator;
                anyhow::ensure!(
                    modelrouter::store::reserve_email(&core.db, &email, login, &id).await?
                );
                let register = modelrouter_domain::operator::OperatorCommand::Register {
                    email,
                    password_hash: modelrouter::crypto::hash_password("operator-password-1")?,
                    role: modelrouter_domain::operator::OperatorRole::Admin,
                };
                core.commands
                    .operators
                    .execute(&id, register, &Metadata::new(&Actor::Cli))
                    .await?;
                Ok(String::new())
            }
            ("orders", "confirm") => {
                let amount = Money(arg("--amount").parse()?);
                let reference = arg("--reference");
                let outcome = operator::confirm_transfer(
                    &core,
                    args[2],
                    amount,
                    &reference,
                    &arg("--operator"),
                )
                .await?;
                anyhow::ensure!(
                    outcome == modelrouter::billing::orders::Confirmed::Paid,
                    "does not match the order; refused and flagged"
                );
                Ok(String::new())
            }
            ("vouchers", "issue") => {
                let codes = operator::issue_codes(
                    &core,
                    Money(arg("--amount").parse()?),
                    "USD",
                    arg("--count").parse()?,
                    None,
                    &arg("--note"),
                    &arg("--operator"),
                )
                .await?;
                Ok(format!("{} code(s)\n{}", codes.len(), codes.join("\n")))
            }
            ("ledger", "adjust") => {
                let tenant = operator::tenant(&core, &arg("--tenant")).await?;
                operator::adjust(
                    &core,
                    &tenant,
                    Money(arg("--amount").parse()?),
                    &arg("--reason"),
                    &arg("--operator"),
                )
                .await?;
                Ok(String::new())
            }
            ("ledger", "replay") => {
                let tenant = operator::tenant(&core, &arg("--tenant")).await?;
                let check = modelrouter::ledger::check(&core.db, &tenant).await?;
                Ok(json!({"statement": check.statement}).to_string())
            }
            other => anyhow::bail!("not an operator command of this test: {other:?}"),
        }
    }
    .await;
    match result {
        Ok(out) => (true, out, String::new()),
        Err(error) => (false, String::new(), error.to_string()),
    }
}

/// Runs the binary on a test's store, as an operator would.
fn cli(store: &Store, args: &[&str]) -> (bool, String, String) {
    let settings = store.settings();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_modelrouter"));
    command
        .arg("--data-dir")
        .arg(store.dir.path())
        .args(args)
        .env("MODELROUTER_MASTER_KEY", settings.master_key.unwrap())
        .env_remove("MODELROUTER_DATABASE_URL");
    if let Some(url) = &store.url {
        command.env("MODELROUTER_DATABASE_URL", url);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn operators_confirm_transfers_issue_codes_and_adjust_balances_as_themselves() {
    for store in stores().await {
        let env = env_with(store, 0, |settings| {
            settings.payments.manual_instructions = Some("IBAN XX00 0000 0000".into());
        })
        .await;
        let alice = Visitor::sign_up(&env.url(""), "alice@example.com").await;
        let (ok, _, err) = operate(
            &env.store,
            &["admin", "create", "--email", "ops@example.com"],
        )
        .await;
        assert!(ok, "{err}");

        let order = |amount: i64| {
            let alice = &alice;
            async move {
                let (status, placed) = alice
                    .write(
                        "POST",
                        "/api/portal/recharge/orders",
                        json!({"amount": amount, "method": "manual"}),
                    )
                    .await;
                assert_eq!(status, 201, "{placed}");
                assert!(placed["pay_url"].is_null());
                placed["order_id"].as_str().unwrap().to_string()
            }
        };
        // The transfer arrived in full: paid and credited, by the operator.
        let paid = order(40_000_000).await;
        let (ok, out, err) = operate(
            &env.store,
            &[
                "orders",
                "confirm",
                &paid,
                "--amount",
                "40000000",
                "--reference",
                "BANK-123",
                "--operator",
                "ops@example.com",
            ],
        )
        .await;
        assert!(ok, "{out}{err}");
        assert!(credited(&alice, 40_000_000).await);
        // Less arrived than ordered: refused, flagged, nothing credited.
        let short = order(10_000_000).await;
        let (ok, _, err) = operate(
            &env.store,
            &[
                "orders",
                "confirm",
                &short,
                "--amount",
                "9000000",
                "--operator",
                "ops@example.com",
            ],
        )
        .await;
        assert!(!ok && err.contains("refused and flagged"), "{err}");
        let (_, view) = alice
            .json(&format!("/api/portal/recharge/orders/{short}"))
            .await;
        assert_eq!(view["order"]["state"], "pending");
        assert_eq!(view["order"]["mismatches"], 1);
        // Only operators may confirm.
        let (ok, _, err) = operate(
            &env.store,
            &[
                "orders",
                "confirm",
                &short,
                "--amount",
                "10000000",
                "--operator",
                "alice@example.com",
            ],
        )
        .await;
        assert!(!ok && err.contains("is not an operator"), "{err}");

        // Codes are printed once and redeem once.
        let (ok, out, err) = operate(
            &env.store,
            &[
                "vouchers",
                "issue",
                "--amount",
                "2000000",
                "--count",
                "2",
                "--note",
                "partner",
                "--operator",
                "ops@example.com",
            ],
        )
        .await;
        assert!(ok, "{err}");
        let codes: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(codes.len(), 2, "{out}");
        let (status, body) = alice
            .write(
                "POST",
                "/api/portal/recharge/redeem",
                json!({"code": codes[0]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(credited(&alice, 42_000_000).await);

        // An adjustment carries its reason and the operator as the actor.
        let (ok, _, err) = operate(
            &env.store,
            &[
                "ledger",
                "adjust",
                "--tenant",
                "alice@example.com",
                "--amount",
                "-500000",
                "--reason",
                "duplicate transfer fee",
                "--operator",
                "ops@example.com",
            ],
        )
        .await;
        assert!(ok, "{err}");
        assert!(credited(&alice, 41_500_000).await);
        let (ok, out, err) = operate(
            &env.store,
            &[
                "ledger",
                "replay",
                "--tenant",
                "alice@example.com",
                "--json",
            ],
        )
        .await;
        assert!(ok, "{err}");
        let statement: Value = serde_json::from_str(&out).unwrap();
        let adjustment = statement["statement"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["kind"]["type"] == "adjustment")
            .unwrap()
            .clone();
        assert!(
            adjustment["actor"]
                .as_str()
                .unwrap()
                .starts_with("operator:"),
            "{adjustment}"
        );
        assert_eq!(adjustment["amount"], -500_000);
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn unpaid_orders_expire_on_their_own() {
    for store in stores().await {
        let env = env_with(store, 0, |settings| {
            settings.payments.sandbox = true;
            settings.payments.order_ttl = Duration::from_secs(1);
            settings.payments.sweep_every = Duration::from_millis(200);
        })
        .await;
        let alice = Visitor::sign_up(&env.url(""), "alice@example.com").await;
        let (status, placed) = alice
            .write(
                "POST",
                "/api/portal/recharge/orders",
                json!({"amount": 5_000_000, "method": "sandbox"}),
            )
            .await;
        assert_eq!(status, 201);
        let order_id = placed["order_id"].as_str().unwrap().to_string();
        let expired = eventually(Duration::from_secs(10), || async {
            let (_, view) = alice
                .json(&format!("/api/portal/recharge/orders/{order_id}"))
                .await;
            view["order"]["state"] == "expired"
        })
        .await;
        assert!(expired, "{}: the order never expired", env.store.name);
        let (_, view) = alice
            .json(&format!("/api/portal/recharge/orders/{order_id}"))
            .await;
        let kinds: Vec<&str> = view["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["placed", "expired"]);
        assert_eq!(balance_of_tenant(&alice).await, 0);
        let _store = env.finish().await;
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

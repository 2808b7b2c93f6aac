//! Top-ups through real HTTP on every configured store: sandbox orders with their history,
//! receipt and statement; prepaid codes; Stripe webhooks (replayed, stale, forged, out of order,
//! mismatched, raced across replicas); orders that expire.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::visitor::Visitor;
use common::*;
use modelrouter_domain::metadata::{Actor, Metadata};
use serde_json::json;

fn with_payments(settings: &mut modelrouter::config::Settings) {
    settings.payments.sandbox = true;
}

#[tokio::test]
async fn a_sandbox_top_up_is_credited_once_and_recorded_with_its_history() {
    for store in stores().await {
        let env = env_with(store, 0, with_payments).await;
        let alice = Visitor::sign_up(&env.url(""), "alice@example.com").await;
        assert_eq!(alice.balance().await, 0);

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
        assert_eq!(alice.balance().await, 25_000_000);

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
        let declined = alice
            .form(pay_url, &[("csrf", &alice.csrf), ("outcome", "decline")])
            .await;
        assert_eq!(declined.status(), 303);
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
        assert_eq!(alice.balance().await, 25_000_000);
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
            prefix: None,
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
        assert_eq!(alice.balance().await, 7_000_000);
        assert_eq!(bob.balance().await, 0);
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
        assert!(alice.balance_becomes(20_000_000).await);
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
        assert!(alice.balance_becomes(20_000_000).await);

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
        assert!(alice.balance_becomes(23_000_000).await);
        assert_eq!(alice.balance().await, 23_000_000);

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
        assert_eq!(alice.balance().await, 0);
        let _store = env.finish().await;
    }
}

/// A correctly signed event is not enough to pay an order: it must be about the order's own
/// Checkout session. Stripe lets other integrations on the same account (a Payment Link, say)
/// set any `client_reference_id`, so an event naming an order by that field alone could pay
/// another customer's order, or a bank-transfer order that Stripe never saw.
#[tokio::test]
async fn a_signed_event_pays_only_the_order_whose_checkout_session_it_names() {
    use modelrouter::crypto::Secret;
    use modelrouter::mock::stripe::{FakeStripe, FakeStripeConfig};
    use modelrouter::payments::stripe::StripeConfig;
    for store in stores().await {
        let fake = FakeStripe::start(FakeStripeConfig {
            secret_key: Secret::new("sk_test_fake"),
            webhook_secret: Secret::new("whsec_fake"),
            webhook_url: None,
        })
        .await
        .unwrap();
        let stripe_url = fake.url();
        let env = env_with(store, 0, move |settings| {
            settings.payments.stripe = Some(StripeConfig {
                api_base: stripe_url.clone(),
                secret_key: Secret::new("sk_test_fake"),
                webhook_secret: Secret::new("whsec_fake"),
                tolerance: Duration::from_secs(300),
            });
            settings.payments.manual_instructions = Some("IBAN XX00 0000 0000".into());
        })
        .await;
        let base = env.url("");
        let alice = Visitor::sign_up(&base, "alice@example.com").await;
        let bob = Visitor::sign_up(&base, "bob@example.com").await;
        let (_alices, alices_session) = place(&alice, &fake.url(), 5_000_000).await;
        let (bobs_card, _) = place(&bob, &fake.url(), 5_000_000).await;
        let (status, placed) = bob
            .write(
                "POST",
                "/api/portal/recharge/orders",
                json!({"amount": 5_000_000, "method": "manual"}),
            )
            .await;
        assert_eq!(status, 201, "{placed}");
        let bobs_transfer = placed["order_id"].as_str().unwrap().to_string();

        // Alice's session is paid; the event is re-addressed to Bob's orders and signed.
        let paid = fake.pay(&alices_session).await.unwrap().event;
        for (n, victim) in [&bobs_card, &bobs_transfer].into_iter().enumerate() {
            let mut event = paid.clone();
            event["id"] = json!(format!("evt_readdressed_{n}"));
            event["data"]["object"]["client_reference_id"] = json!(victim);
            event["data"]["object"]["metadata"]["order_id"] = json!(victim);
            let (header, body) = fake.signed_event(&event);
            assert_eq!(post_webhook(&base, &header, body).await, 200);
            let (_, view) = bob
                .json(&format!("/api/portal/recharge/orders/{victim}"))
                .await;
            assert_eq!(view["order"]["state"], "pending", "{view}");
            assert_eq!(view["order"]["mismatches"], 0, "{view}");
        }
        // An expiry of another session does not end Bob's card order either.
        let mut expired = paid.clone();
        expired["id"] = json!("evt_readdressed_expiry");
        expired["type"] = json!("checkout.session.expired");
        expired["data"]["object"]["client_reference_id"] = json!(bobs_card);
        let (header, body) = fake.signed_event(&expired);
        assert_eq!(post_webhook(&base, &header, body).await, 200);
        let (_, view) = bob
            .json(&format!("/api/portal/recharge/orders/{bobs_card}"))
            .await;
        assert_eq!(view["order"]["state"], "pending", "{view}");
        assert_eq!(bob.balance().await, 0);

        // The genuine event still pays Alice's order.
        let (header, body) = fake.signed_event(&paid);
        assert_eq!(post_webhook(&base, &header, body).await, 200);
        assert!(alice.balance_becomes(5_000_000).await);
        assert_eq!(bob.balance().await, 0);
        let _store = env.finish().await;
    }
}

/// Prepaid codes and receipt codes cannot be guessed at machine speed: after a few wrong codes
/// from one tenant account or one address, further tries are refused with 429 (even a right
/// code) until the window has passed; other accounts and addresses are not affected by one
/// account's count.
#[tokio::test]
async fn guessing_prepaid_and_receipt_codes_is_refused_after_a_few_wrong_codes() {
    use modelrouter_domain::prepaid::{code_id, PrepaidCommand};
    for store in stores().await {
        let env = env_with(store, 0, |settings| {
            settings.payments.sandbox = true;
            settings.code_guesses = modelrouter::config::CodeGuessLimits {
                per_account: 3,
                per_address: 5,
                window: Duration::from_secs(15 * 60),
            };
        })
        .await;
        let core = env.store.core().await;
        for code in ["GIFT-AAAA-0001", "GIFT-BBBB-0002", "GIFT-CCCC-0003"] {
            let issue = PrepaidCommand::Issue {
                amount: modelrouter_domain::Money(1_000_000),
                currency: "USD".into(),
                expires_at: None,
                note: "throttle".into(),
                issued_at: chrono::Utc::now(),
                prefix: None,
            };
            core.commands
                .prepaid
                .execute(&code_id(code), issue, &Metadata::new(&Actor::Cli))
                .await
                .unwrap();
        }
        let alice = Visitor::sign_up(&env.url(""), "alice@example.com").await;
        for guess in ["GUESS-0001", "GUESS-0002", "GUESS-0003"] {
            let (status, body) = redeem(&alice, guess).await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(body["error"]["message"], "This code is not valid.");
        }
        // Alice's account has used its tries: even a right code is refused, and not redeemed.
        let (status, body) = redeem(&alice, "GIFT-AAAA-0001").await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "too_many_codes", "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many wrong codes."));
        // The page form says so on the recharge page.
        let page = alice
            .form(
                "/portal/recharge/redeem",
                &[("csrf", &alice.csrf), ("code", "GIFT-AAAA-0001")],
            )
            .await;
        assert_eq!(page.status(), 429);
        assert!(page.headers().contains_key("retry-after"));
        assert!(page.text().await.unwrap().contains("Too many wrong codes."));
        assert_eq!(alice.balance().await, 0);

        // Bob, from the same address, still redeems: the address has had 3 wrong codes of 5.
        let bob = Visitor::sign_up(&env.url(""), "bob@example.com").await;
        let (status, body) = redeem(&bob, "GIFT-AAAA-0001").await;
        assert_eq!(status, 200, "{body}");
        // Two more wrong codes from this address, and nobody here may try any more.
        for guess in ["GUESS-0004", "GUESS-0005"] {
            assert_eq!(redeem(&bob, guess).await.0, 422);
        }
        let carol = Visitor::sign_up(&env.url(""), "carol@example.com").await;
        let (status, body) = redeem(&carol, "GIFT-BBBB-0002").await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(carol.balance().await, 0);

        // Receipt codes: a paid order, then wrong codes from this address.
        let (_, placed) = carol
            .write(
                "POST",
                "/api/portal/recharge/orders",
                json!({"amount": 5_000_000, "method": "sandbox"}),
            )
            .await;
        let order_id = placed["order_id"].as_str().unwrap().to_string();
        let pay_url = placed["pay_url"].as_str().unwrap().to_string();
        let paid = carol
            .form(&pay_url, &[("csrf", &carol.csrf), ("outcome", "pay")])
            .await;
        assert_eq!(paid.status(), 303);
        let page = carol
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
        let check = |code: &str| {
            let url = env.url(&format!(
                "/api/portal/receipts/verify?order={order_id}&code={code}"
            ));
            async move {
                let response = reqwest::get(url).await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<serde_json::Value>().await.unwrap())
            }
        };
        let (status, body) = check(&code).await;
        assert_eq!(
            (status, body["genuine"].clone()),
            (200, json!(true)),
            "{body}"
        );
        assert_eq!(body["amount"], 5_000_000);
        for n in 0..5 {
            let (status, body) = check(&format!("WRONGCODE{n:07}")).await;
            assert_eq!(
                (status, body["genuine"].clone()),
                (200, json!(false)),
                "{body}"
            );
        }
        let (status, body) = check(&code).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "too_many_codes", "{body}");
        let page = reqwest::get(env.url(&format!("/receipts/verify?order={order_id}&code={code}")))
            .await
            .unwrap();
        assert_eq!(page.status(), 429);
        assert!(page.text().await.unwrap().contains("Too many wrong codes."));
        let _store = env.finish().await;
    }
}

async fn redeem(visitor: &Visitor, code: &str) -> (reqwest::StatusCode, serde_json::Value) {
    visitor
        .write(
            "POST",
            "/api/portal/recharge/redeem",
            json!({ "code": code }),
        )
        .await
}

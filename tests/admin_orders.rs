//! Orders and prepaid codes in the operations console: bank transfers confirmed once, refunds
//! that debit once (also when submitted twice at the same moment), never more than was paid nor
//! what was spent, and codes issued, redeemed and revoked — on every store.
#![allow(clippy::unwrap_used)]

mod common;

use common::visitor::Visitor;
use common::*;
use modelrouter::ledger;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn console_env(store: Store) -> Env {
    env_with(store, 0, |settings| {
        settings.payments.manual_instructions = Some("IBAN XX00 0000 0000".into());
        settings.payments.sandbox = true;
    })
    .await
}

async fn place(tenant: &Visitor, amount: i64, method: &str) -> String {
    let (status, placed) = tenant
        .write(
            "POST",
            "/api/portal/recharge/orders",
            json!({"amount": amount, "method": method}),
        )
        .await;
    assert_eq!(status, 201, "{placed}");
    placed["order_id"].as_str().unwrap().to_string()
}

/// The value of the hidden input `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let from = html
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {html}"))
        + marker.len();
    html[from..].split('"').next().unwrap().to_string()
}

async fn confirm(operator: &Visitor, order: &str, amount: i64) -> (StatusCode, Value) {
    operator
        .write(
            "POST",
            &format!("/api/admin/orders/{order}/confirm"),
            json!({"amount": amount, "reference": "BANK-1"}),
        )
        .await
}

#[tokio::test]
async fn a_transfer_confirmed_in_the_console_credits_once() {
    for store in stores().await {
        let name = store.name;
        let env = console_env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "finance@example.com").await;
        let alice = Visitor::sign_up(&base, "alice@example.com").await;
        let order = place(&alice, 25_000_000, "manual").await;

        // Listed with the filters, and not yet paid.
        let (_, list) = operator
            .json("/api/admin/orders?state=pending&method=manual&tenant=alice@example.com")
            .await;
        assert_eq!(list["total"], 1, "{name}: {list}");
        assert_eq!(list["orders"][0]["order_id"], order.as_str());
        let (_, list) = operator
            .json("/api/admin/orders?tenant=nobody@example.com")
            .await;
        assert_eq!(list["total"], 0);

        // Less arrived: refused and flagged by the form, nothing credited.
        let response = operator
            .form(
                &format!("/admin/orders/{order}/confirm"),
                &[
                    ("csrf", &operator.csrf),
                    ("amount", "20"),
                    ("reference", "B-1"),
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "{name}");
        assert_eq!(
            response.headers()["location"],
            format!("/admin/orders/{order}?notice=mismatch").as_str()
        );
        assert_eq!(alice.balance().await, 0, "{name}");

        // The full amount: paid and credited; confirming again credits nothing more.
        let (status, outcome) = confirm(&operator, &order, 25_000_000).await;
        assert_eq!(
            (status, &outcome["outcome"]),
            (StatusCode::OK, &json!("paid")),
            "{name}"
        );
        let (status, outcome) = confirm(&operator, &order, 25_000_000).await;
        assert_eq!(
            (status, &outcome["outcome"]),
            (StatusCode::OK, &json!("paid")),
            "{name}"
        );
        assert_eq!(alice.balance().await, 25_000_000, "{name}");
        let page = operator
            .get(&format!("/admin/orders/{order}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(">paid</span>"), "{name}");
        assert!(page.contains("operator:finance@example.com"), "{name}");

        // Orders a provider confirms are not the console's to confirm.
        let sandbox = place(&alice, 5_000_000, "sandbox").await;
        let (status, body) = confirm(&operator, &sandbox, 5_000_000).await;
        assert_eq!(status, 422, "{name}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a bank transfer"));
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn a_refund_debits_once_never_more_than_paid_and_never_what_was_spent() {
    for store in stores().await {
        let name = store.name;
        let env = console_env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "finance@example.com").await;
        let bob = Visitor::sign_up(&base, "bob@example.com").await;
        let bob_id = tenant_id(&core.db, "bob@example.com").await;
        let order = place(&bob, 25_000_000, "manual").await;
        assert_eq!(confirm(&operator, &order, 25_000_000).await.0, 200);
        assert_eq!(bob.balance().await, 25_000_000);

        // The same form sent twice at the same moment refunds once.
        let page = operator
            .get(&format!("/admin/orders/{order}"))
            .await
            .text()
            .await
            .unwrap();
        let refund_id = hidden(&page, "refund_id");
        let path = format!("/admin/orders/{order}/refund");
        let fields = [
            ("csrf", operator.csrf.as_str()),
            ("refund_id", refund_id.as_str()),
            ("amount", "10"),
            ("reason", "customer asked"),
        ];
        let (first, second) =
            tokio::join!(operator.form(&path, &fields), operator.form(&path, &fields));
        assert_eq!(
            (first.status(), second.status()),
            (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER),
            "{name}"
        );
        let again = operator.form(&path, &fields).await;
        assert_eq!(again.status(), 303, "{name}");
        assert_eq!(bob.balance().await, 15_000_000, "{name}");
        let (_, detail) = operator.json(&format!("/api/admin/orders/{order}")).await;
        assert_eq!(detail["order"]["refunded"], 10_000_000, "{name}");
        assert_eq!(detail["refundable"], 15_000_000, "{name}");
        let refunds = detail["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["kind"] == "refunded")
            .count();
        assert_eq!(refunds, 1, "{name}");

        // Two different refunds of everything that is left, at the same moment: one of them.
        let api_path = format!("/api/admin/orders/{order}/refund");
        let refund = |id: &'static str, amount: i64| {
            operator.write(
                "POST",
                &api_path,
                json!({"amount": amount, "reason": "closing the account", "refund_id": id}),
            )
        };
        let (a, b) = tokio::join!(refund("r-a", 15_000_000), refund("r-b", 15_000_000));
        let mut statuses = [a.0.as_u16(), b.0.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 422], "{name}: {a:?} {b:?}");
        assert_eq!(bob.balance().await, 0, "{name}");
        // Nothing more than was paid.
        let (status, body) = refund("r-c", 1).await;
        assert_eq!(status, 422, "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("can still be refunded")
                || body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("paid order"),
            "{name}: {body}"
        );

        // Money already spent is not refunded. (An operator's debit stands in for calls here:
        // both leave the balance the same way.)
        let second = place(&bob, 10_000_000, "manual").await;
        assert_eq!(confirm(&operator, &second, 10_000_000).await.0, 200);
        let (status, _) = operator
            .write(
                "POST",
                &format!("/api/admin/tenants/{bob_id}/adjust"),
                json!({"amount": -8_000_000, "reason": "usage billed by hand"}),
            )
            .await;
        assert_eq!(status, 204);
        let response = operator
            .form(
                &format!("/admin/orders/{second}/refund"),
                &[
                    ("csrf", operator.csrf.as_str()),
                    ("refund_id", "spent-1"),
                    ("amount", "5"),
                    ("reason", "customer asked"),
                ],
            )
            .await;
        assert_eq!(response.status(), 422, "{name}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("Only 2.00 USD of the tenant&#39;s balance is unspent"),
            "{name}: {page}"
        );
        assert!(
            page.contains("value=\"spent-1\""),
            "{name}: the form keeps its refund id"
        );
        assert_eq!(bob.balance().await, 2_000_000, "{name}");

        // The ledger agrees, and the tenant sees the refunds in its statement and records.
        let check = ledger::check(&core.db, &bob_id).await.unwrap();
        assert!(check.is_clean(), "{name}: {:?}", check.differences);
        assert_eq!(check.statement.refunded.0, 25_000_000, "{name}");
        let (_, statements) = bob.json("/api/portal/statements").await;
        assert_eq!(statements[0]["refunds"], 25_000_000, "{name}: {statements}");
        assert_eq!(statements[0]["closing_balance"], 2_000_000, "{name}");
        let records = bob
            .get("/portal/recharge/records")
            .await
            .text()
            .await
            .unwrap();
        assert!(records.contains(">refunded</span>"), "{name}");
        drop(core);
        let (_store, db) = env.finish().await;
        for projection in modelrouter_projections::sql::Projection::ALL {
            let before = modelrouter_projections::sql::dump(&db, projection)
                .await
                .unwrap();
            modelrouter_projections::sql::rebuild(&db, projection)
                .await
                .unwrap();
            let after = modelrouter_projections::sql::dump(&db, projection)
                .await
                .unwrap();
            assert_eq!(
                before,
                after,
                "{name}: {} rebuilt differs",
                projection.name()
            );
        }
    }
}

#[tokio::test]
async fn codes_are_issued_once_redeemed_by_a_tenant_and_refused_once_revoked() {
    for store in stores().await {
        let name = store.name;
        let env = console_env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "ops@example.com").await;
        let carol = Visitor::sign_up(&base, "carol@example.com").await;

        let response = operator
            .form(
                "/admin/vouchers",
                &[
                    ("csrf", operator.csrf.as_str()),
                    ("amount", "5"),
                    ("count", "2"),
                    ("expires_on", ""),
                    ("note", "launch party"),
                ],
            )
            .await;
        assert_eq!(response.status(), 200, "{name}");
        let page = response.text().await.unwrap();
        let codes: Vec<String> = page
            .split("<li><code>")
            .skip(1)
            .map(|rest| rest.split('<').next().unwrap().to_string())
            .collect();
        assert_eq!(codes.len(), 2, "{name}: {page}");

        // The batch as CSV, from the codes the page posts back.
        let csv = operator
            .form(
                "/admin/vouchers/batch.csv",
                &[
                    ("csrf", operator.csrf.as_str()),
                    ("codes", &hidden(&page, "codes")),
                ],
            )
            .await
            .text()
            .await
            .unwrap();
        assert!(
            csv.starts_with("code,amount,currency,expires_at,note"),
            "{csv}"
        );
        for code in &codes {
            assert!(
                csv.contains(&format!("{code},5.000000,USD,,launch party")),
                "{name}: {csv}"
            );
        }
        let forged = operator
            .form(
                "/admin/vouchers/batch.csv",
                &[
                    ("csrf", operator.csrf.as_str()),
                    ("codes", "NOT-A-REAL-CODE"),
                ],
            )
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(forged.lines().count(), 1, "unknown codes are not echoed");

        // Lists show the first characters, never the code.
        let (_, list) = operator.json("/api/admin/vouchers?state=issued").await;
        assert_eq!(list["total"], 2, "{name}");
        let text = list.to_string();
        for code in &codes {
            assert!(!text.contains(code.as_str()));
            assert!(text.contains(&format!("\"prefix\":\"{}\"", &code[..4])));
        }

        // Carol redeems the first; the second is revoked and then refused.
        let (status, body) = carol
            .write(
                "POST",
                "/api/portal/recharge/redeem",
                json!({"code": codes[0]}),
            )
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(carol.balance().await, 5_000_000);
        let id = |code: &str| modelrouter_domain::prepaid::code_id(code);
        let response = operator
            .form(
                &format!("/admin/vouchers/{}/revoke", id(&codes[1])),
                &[("csrf", operator.csrf.as_str()), ("reason", "leaked")],
            )
            .await;
        assert_eq!(response.status(), 303, "{name}");
        let (status, body) = carol
            .write(
                "POST",
                "/api/portal/recharge/redeem",
                json!({"code": codes[1]}),
            )
            .await;
        assert_eq!(status, 422, "{name}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer valid"));
        assert_eq!(carol.balance().await, 5_000_000);
        // A redeemed code cannot be revoked.
        let (status, _) = operator
            .write(
                "POST",
                &format!("/api/admin/vouchers/{}/revoke", id(&codes[0])),
                json!({"reason": "oops"}),
            )
            .await;
        assert_eq!(status, 422, "{name}");
        let page = operator.get("/admin/vouchers").await.text().await.unwrap();
        assert!(page.contains("carol@example.com"), "{name}: redeemed by");
        assert!(page.contains(">disabled</span>"), "{name}");

        // The JSON issue returns the codes once; bad batches are refused.
        let (status, body) = operator
            .write(
                "POST",
                "/api/admin/vouchers",
                json!({"amount": 1_000_000, "count": 3, "note": "api"}),
            )
            .await;
        assert_eq!(status, 201, "{name}: {body}");
        assert_eq!(body["codes"].as_array().unwrap().len(), 3);
        let (status, body) = operator
            .write(
                "POST",
                "/api/admin/vouchers",
                json!({"amount": 1_000_000, "count": 0}),
            )
            .await;
        assert_eq!(
            (status.as_u16(), &body["error"]["field"]),
            (422, &json!("count"))
        );
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn a_card_payment_is_refunded_through_stripe_once_even_across_an_outage() {
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
        let env = env_with(store, 0, |settings| {
            settings.payments.stripe = Some(StripeConfig {
                api_base: stripe_url.clone(),
                secret_key: Secret::new("sk_test_fake"),
                webhook_secret: Secret::new("whsec_fake"),
                tolerance: std::time::Duration::from_secs(300),
            });
        })
        .await;
        let base = env.url("");
        let name = env.store.name;
        fake.set_webhook_url(Some(format!("{base}/webhooks/stripe")));
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "ops@example.com").await;
        let carol = Visitor::sign_up(&base, "carol@example.com").await;

        // Carol pays 20.00 by card.
        let order = place(&carol, 20_000_000, "stripe").await;
        let (_, view) = carol
            .json(&format!("/api/portal/recharge/orders/{order}"))
            .await;
        let session = view["order"]["pay_url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(fake.pay(&session).await.unwrap().status, Some(200));
        assert!(carol.balance_becomes(20_000_000).await, "{name}");

        // The operator refunds 7.50 of it; sent twice (a retry), Stripe refunds once.
        let path = format!("/api/admin/orders/{order}/refund");
        let body = json!({"amount": 7_500_000, "reason": "unused credit", "refund_id": "card-1"});
        for _ in 0..2 {
            let (status, answer) = operator.write("POST", &path, body.clone()).await;
            assert_eq!(status, StatusCode::OK, "{name}: {answer}");
            assert_eq!(answer["refunded"], 7_500_000);
        }
        let refunds = fake.refunds();
        assert_eq!(refunds.len(), 1, "{name}: {refunds:?}");
        assert_eq!(refunds[0]["amount"], 750, "{name}: minor units of USD");
        assert_eq!(refunds[0]["metadata"]["order_id"], order.as_str());
        assert!(carol.balance_becomes(12_500_000).await, "{name}");

        // More than is left is refused by the Account before Stripe is asked.
        let (status, answer) = operator
            .write(
                "POST",
                &path,
                json!({"amount": 15_000_000, "reason": "too much", "refund_id": "card-2"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {answer}");
        assert_eq!(fake.refunds().len(), 1, "{name}");

        // Stripe is down: the balance is debited, the refund is unfinished, and a refund under
        // another id is refused with the unfinished one's id rather than debiting again.
        fake.set_refunds_down(true);
        let page_path = format!("/admin/orders/{order}");
        let response = operator
            .form(
                &format!("{page_path}/refund"),
                &[
                    ("csrf", operator.csrf.as_str()),
                    ("refund_id", "card-3"),
                    ("amount", "2"),
                    ("reason", "goodwill"),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}"
        );
        let page = response.text().await.unwrap();
        assert!(
            page.contains("Stripe did not confirm the refund"),
            "{name}: {page}"
        );
        assert!(carol.balance_becomes(10_500_000).await, "{name}");
        let (status, answer) = operator
            .write(
                "POST",
                &path,
                json!({"amount": 1_000_000, "reason": "another", "refund_id": "card-4"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("card-3"),
            "{name}: {answer}"
        );
        let (_, detail) = operator.json(&format!("/api/admin/orders/{order}")).await;
        assert_eq!(
            detail["unfinished_refund"]["refund_id"], "card-3",
            "{detail}"
        );
        assert_eq!(detail["unfinished_refund"]["amount"], 2_000_000);

        // Once Stripe answers again, the order's page sends the same refund again and finishes it.
        fake.set_refunds_down(false);
        let page = operator.get(&page_path).await.text().await.unwrap();
        assert!(page.contains("id=\"unfinished-refund\""), "{name}: {page}");
        assert_eq!(hidden(&page, "refund_id"), "card-3");
        let response = operator
            .form(
                &format!("{page_path}/refund"),
                &[
                    ("csrf", operator.csrf.as_str()),
                    ("refund_id", "card-3"),
                    ("amount", "2.00"),
                    ("reason", "goodwill"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(fake.refunds().len(), 2, "{name}");
        let (_, detail) = operator.json(&format!("/api/admin/orders/{order}")).await;
        assert_eq!(detail["order"]["refunded"], 9_500_000, "{name}: {detail}");
        assert!(detail["unfinished_refund"].is_null(), "{name}: {detail}");
        assert_eq!(carol.balance().await, 10_500_000, "{name}: debited once");
        drop(core);
        env.finish().await;
    }
}

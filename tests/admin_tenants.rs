//! Tenants in the operations console: search, suspension (403 at once, sessions ended, other
//! replicas within a second), balance adjustments the ledger agrees with, password resets and
//! plans — through the pages and the JSON API, on every store.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::visitor::{Visitor, PASSWORD};
use common::*;
use modelrouter::ledger;
use modelrouter::server::Running;
use modelrouter_domain::aggregate_types::{ACCOUNT, TENANT};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ACME_PASSWORD: &str = "correct horse battery staple";

async fn operator_id(operator: &Visitor) -> String {
    let (_, session) = operator.json("/api/admin/session").await;
    session["operator_id"].as_str().unwrap().to_string()
}

/// The text between `start` and the next `end` in `html`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {html}"))
        + start.len();
    let to = html[from..].find(end).unwrap() + from;
    &html[from..to]
}

async fn signed_in(base: &str, email: &str, password: &str) -> Option<Visitor> {
    let mut visitor = Visitor::new(base);
    let response = visitor
        .http
        .post(visitor.url("/api/portal/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    if response.status() != StatusCode::OK {
        return None;
    }
    let body: Value = response.json().await.unwrap();
    visitor.csrf = body["csrf_token"].as_str().unwrap().to_string();
    Some(visitor)
}

fn chat_body() -> Value {
    json!({"model": "test-gpt", "messages": user("hello")})
}

#[tokio::test]
async fn suspension_refuses_calls_at_once_everywhere_and_reactivation_restores_them() {
    for store in stores().await {
        let name = store.name;
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "ops@example.com").await;
        let acme = tenant_id(&core.db, "acme@example.com").await;
        let other = Running::start(env.store.settings()).await.unwrap();
        let chat_on = |addr: std::net::SocketAddr| {
            let http = env.http.clone();
            async move {
                http.post(format!("http://{addr}/v1/chat/completions"))
                    .bearer_auth(KEY_AUTO)
                    .json(&chat_body())
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(
            env.chat(KEY_AUTO, chat_body()).await.status(),
            200,
            "{name}"
        );
        assert_eq!(chat_on(other.addr).await, 200, "{name}");
        let portal = signed_in(&base, "acme@example.com", ACME_PASSWORD)
            .await
            .unwrap();

        // A suspension needs a reason; the form says so and keeps the tenant active.
        let page = operator.get(&format!("/admin/tenants/{acme}")).await;
        assert_eq!(page.status(), 200);
        let response = operator
            .form(
                &format!("/admin/tenants/{acme}/suspend"),
                &[("csrf", &operator.csrf), ("reason", " ")],
            )
            .await;
        assert_eq!(response.status(), 422, "{name}");
        assert!(response.text().await.unwrap().contains("Give the reason"));
        assert_eq!(env.chat(KEY_AUTO, chat_body()).await.status(), 200);

        let response = operator
            .form(
                &format!("/admin/tenants/{acme}/suspend"),
                &[("csrf", &operator.csrf), ("reason", "unpaid invoices")],
            )
            .await;
        assert_eq!(response.status(), 303, "{name}");
        // This replica refuses the very next call; the portal session is over.
        let refused = env.chat(KEY_AUTO, chat_body()).await;
        assert_eq!(refused.status(), 403, "{name}");
        let (status, _) = portal.json("/api/portal/dashboard").await;
        assert_eq!(status, 401, "{name}");
        assert!(signed_in(&base, "acme@example.com", ACME_PASSWORD)
            .await
            .is_none());
        // The other replica within a second.
        let addr = other.addr;
        assert!(
            eventually(Duration::from_secs(1), || async {
                chat_on(addr).await == 403
            })
            .await,
            "{name}: the other replica still serves a suspended tenant"
        );
        let page = operator
            .get(&format!("/admin/tenants/{acme}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(">suspended</span>"), "{name}");
        // The event names the operator and the reason.
        let events = core.db.events_of(TENANT, &acme).await.unwrap();
        let suspended = events.last().unwrap();
        assert_eq!(suspended.payload["Suspended"]["reason"], "unpaid invoices");
        assert_eq!(
            suspended.metadata["actor"],
            format!("operator:{}", operator_id(&operator).await)
        );

        let (status, _) = operator
            .write(
                "POST",
                &format!("/api/admin/tenants/{acme}/reactivate"),
                json!({}),
            )
            .await;
        assert_eq!(status, 204, "{name}");
        assert_eq!(
            env.chat(KEY_AUTO, chat_body()).await.status(),
            200,
            "{name}"
        );
        assert!(
            eventually(Duration::from_secs(1), || async {
                chat_on(addr).await == 200
            })
            .await,
            "{name}"
        );
        assert!(signed_in(&base, "acme@example.com", ACME_PASSWORD)
            .await
            .is_some());
        other.stop().await.unwrap();
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn adjustments_change_the_balance_by_the_operator_with_a_reason_and_the_ledger_agrees() {
    for store in stores().await {
        let name = store.name;
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "finance@example.com").await;
        let acme = tenant_id(&core.db, "acme@example.com").await;
        let path = format!("/api/admin/tenants/{acme}");
        let balance = |operator: &Visitor| {
            let request = operator.http.get(operator.url(&path)).send();
            async move {
                let body: Value = request.await.unwrap().json().await.unwrap();
                body["balance"]["balance"].as_i64().unwrap()
            }
        };
        assert_eq!(balance(&operator).await, 100_000_000, "{name}");

        let response = operator
            .form(
                &format!("/admin/tenants/{acme}/adjust"),
                &[
                    ("csrf", &operator.csrf),
                    ("amount", "12.5"),
                    ("reason", "goodwill for the outage"),
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "{name}");
        assert_eq!(balance(&operator).await, 112_500_000, "{name}");
        let (status, _) = operator
            .write(
                "POST",
                &format!("/api/admin/tenants/{acme}/adjust"),
                json!({"amount": -2_500_000, "reason": "double credit corrected"}),
            )
            .await;
        assert_eq!(status, 204, "{name}");
        assert_eq!(balance(&operator).await, 110_000_000, "{name}");

        // A debit beyond the balance is refused and says what can be taken; the amount typed
        // stays in the form.
        let response = operator
            .form(
                &format!("/admin/tenants/{acme}/adjust"),
                &[
                    ("csrf", &operator.csrf),
                    ("amount", "-500"),
                    ("reason", "too much"),
                ],
            )
            .await;
        assert_eq!(response.status(), 422, "{name}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("Only 110.00 USD can be taken"),
            "{name}: {page}"
        );
        assert!(page.contains("value=\"-500\""), "{name}");
        let (status, body) = operator
            .write(
                "POST",
                &format!("/api/admin/tenants/{acme}/adjust"),
                json!({"amount": 1, "reason": ""}),
            )
            .await;
        assert_eq!(status, 422, "{name}");
        assert_eq!(body["error"]["field"], "reason");
        assert_eq!(balance(&operator).await, 110_000_000, "{name}");

        // The ledger's replay agrees, and its lines carry the operator and the reasons.
        let check = ledger::check(&core.db, &acme).await.unwrap();
        assert!(check.is_clean(), "{name}: {:?}", check.differences);
        assert_eq!(check.statement.adjusted.0, 10_000_000);
        let actor = format!("operator:{}", operator_id(&operator).await);
        let reasons: Vec<String> = check
            .statement
            .lines
            .iter()
            .filter_map(|line| match &line.kind {
                ledger::LineKind::Adjustment { reason, actor: by } => {
                    assert_eq!(by.as_deref(), Some(actor.as_str()));
                    Some(reason.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            reasons,
            ["goodwill for the outage", "double credit corrected"],
            "{name}"
        );
        let events = core.db.events_of(ACCOUNT, &acme).await.unwrap();
        assert!(events.last().unwrap().metadata["request_id"].is_string());
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn a_password_reset_lets_the_tenant_in_with_the_new_password_only() {
    for store in stores().await {
        let name = store.name;
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "support@example.com").await;
        let tenant = Visitor::sign_up(&base, "forgetful@example.com").await;
        let id = tenant_id(&core.db, "forgetful@example.com").await;

        let response = operator
            .form(
                &format!("/admin/tenants/{id}/password"),
                &[("csrf", &operator.csrf)],
            )
            .await;
        assert_eq!(response.status(), 200, "{name}");
        let page = response.text().await.unwrap();
        let password = between(&page, "<code id=\"new-password\">", "</code>").to_string();
        assert!(password.len() >= 20, "{name}: {password}");

        // The old session ended, the old password fails, the new one works.
        let (status, _) = tenant.json("/api/portal/dashboard").await;
        assert_eq!(status, 401, "{name}");
        assert!(signed_in(&base, "forgetful@example.com", PASSWORD)
            .await
            .is_none());
        let back = signed_in(&base, "forgetful@example.com", &password)
            .await
            .expect("the one-time password signs in");

        // Until the tenant chooses its own password, that is all the portal lets it do.
        let (status, body) = back.json("/api/portal/dashboard").await;
        assert_eq!(status, 403, "{name}: {body}");
        assert_eq!(body["error"]["code"], "password_change_required");
        let page = back.get("/portal/keys").await;
        assert_eq!(page.status(), 303, "{name}");
        assert_eq!(
            page.headers()["location"],
            "/portal/account?notice=choose_password#password"
        );
        let page = back
            .get("/portal/account?notice=choose_password")
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains("Choose your own password"), "{name}: {page}");
        for (new, expected) in [(password.as_str(), 422), ("a brand new passphrase", 204)] {
            let body = json!({"current_password": password, "new_password": new});
            let (status, body) = back.write("POST", "/api/portal/password", body).await;
            assert_eq!(status, expected, "{name}: {body}");
        }
        assert_eq!(back.json("/api/portal/dashboard").await.0, 200, "{name}");
        // The password is never on the tenant's page afterwards.
        let page = operator
            .get(&format!("/admin/tenants/{id}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(!page.contains(&password));

        // The JSON reset gives another password and ends that session too.
        let (status, body) = operator
            .write(
                "POST",
                &format!("/api/admin/tenants/{id}/password"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{name}");
        assert_ne!(body["password"].as_str().unwrap(), password);
        assert_eq!(back.json("/api/portal/dashboard").await.0, 401, "{name}");
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn tenants_are_found_by_email_name_or_id_and_filtered_by_status_and_plan() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let base = env.url("");
    let core = env.store.core().await;
    let operator = Visitor::operator(&base, &core, "ops@example.com").await;
    for email in [
        "zeta@corp.example",
        "yota@corp.example",
        "solo@home.example",
    ] {
        Visitor::sign_up(&base, email).await;
    }
    let zeta = tenant_id(&core.db, "zeta@corp.example").await;
    let emails = |list: &Value| -> Vec<String> {
        list["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["email"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, list) = operator.json("/api/admin/tenants?q=CORP.example").await;
    assert_eq!(status, 200);
    let mut found = emails(&list);
    found.sort();
    assert_eq!(found, ["yota@corp.example", "zeta@corp.example"]);
    assert_eq!(list["total"], 2);
    let (_, list) = operator.json(&format!("/api/admin/tenants?q={zeta}")).await;
    assert_eq!(emails(&list), ["zeta@corp.example"]);
    // By name: the imported tenant "Broke".
    let (_, list) = operator.json("/api/admin/tenants?q=brok").await;
    assert_eq!(emails(&list), ["broke@example.com"]);
    assert_eq!(list["tenants"][0]["balance"], 0);

    let (status, _) = operator
        .write(
            "POST",
            &format!("/api/admin/tenants/{zeta}/plan"),
            json!({"plan": "Enterprise"}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = operator
        .write(
            "POST",
            &format!("/api/admin/tenants/{zeta}/plan"),
            json!({"plan": "not a plan!"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = operator
        .write(
            "POST",
            &format!("/api/admin/tenants/{zeta}/suspend"),
            json!({"reason": "fraud check"}),
        )
        .await;
    assert_eq!(status, 204);
    let (_, list) = operator.json("/api/admin/tenants?status=suspended").await;
    assert_eq!(emails(&list), ["zeta@corp.example"]);
    let (_, list) = operator.json("/api/admin/tenants?plan=enterprise").await;
    assert_eq!(emails(&list), ["zeta@corp.example"]);
    let (_, list) = operator.json("/api/admin/tenants?agent=none&q=home").await;
    assert_eq!(emails(&list), ["solo@home.example"]);

    // The page lists the same, with balances, and the tenant's page shows its keys by prefix.
    let page = operator
        .get("/admin/tenants?q=example.com")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("acme@example.com") && page.contains("100.00"));
    assert!(!page.contains("zeta@corp.example"));
    let acme = tenant_id(&core.db, "acme@example.com").await;
    let page = operator
        .get(&format!("/admin/tenants/{acme}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&KEY_AUTO[..12]));
    assert!(!page.contains(KEY_AUTO));
    let (status, _) = operator.json("/api/admin/tenants/no-such-tenant").await;
    assert_eq!(status, 404);
    drop(core);
    env.finish().await;
}

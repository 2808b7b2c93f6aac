//! Agents from the outside: an operator creates agents, a tenant signs up through an agent's
//! code, the agent sees that tenant and earns commission once its calls settle, never sees
//! another agent's tenants, and agents, tenants and operators never open each other's pages.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::visitor::{Visitor, PASSWORD};
use common::*;
use modelrouter_domain::Money;
use modelrouter_projections::sql::{self, commissions::commission_on, Projection};
use reqwest::StatusCode;
use serde_json::{json, Value};

const CREDIT: i64 = 10_000_000;

/// Creates an agent through the console's API and signs it in to the agent portal.
async fn agent(operator: &Visitor, name: &str, email: &str, bps: u32) -> (Visitor, Value) {
    let (status, created) = operator
        .write(
            "POST",
            "/api/admin/agents",
            json!({"name": name, "email": email, "commission_bps": bps}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let mut visitor = Visitor::new(&operator.base);
    let response = visitor
        .http
        .post(visitor.url("/api/agent/login"))
        .json(&json!({"email": email, "password": created["password"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the one-time password signs in"
    );
    let session: Value = response.json().await.unwrap();
    visitor.csrf = session["csrf_token"].as_str().unwrap().to_string();
    // A one-time password opens nothing until the agent chooses its own.
    let (status, body) = visitor
        .write(
            "POST",
            "/api/agent/password",
            json!({"current_password": created["password"], "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    (visitor, created)
}

/// Signs a tenant up with a referral code.
async fn referred_tenant(base: &str, email: &str, code: &str) -> Visitor {
    let mut visitor = Visitor::new(base);
    let response = visitor
        .http
        .post(visitor.url("/api/portal/signup"))
        .json(&json!({"email": email, "password": PASSWORD, "name": email, "referral_code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    visitor.csrf = body["csrf_token"].as_str().unwrap().to_string();
    visitor.verify_email().await;
    visitor
}

/// What a tenant's calls cost once its usage report shows all `calls`, micro-units.
async fn spent(tenant: &Visitor, calls: i64) -> i64 {
    let totals = || async {
        let (_, usage) = tenant.json("/api/portal/usage").await;
        let totals = usage["totals_by_model"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let sum = |field: &str| -> i64 { totals.iter().map(|t| t[field].as_i64().unwrap()).sum() };
        (sum("requests"), sum("cost"))
    };
    let recorded = eventually(Duration::from_secs(5), || async {
        totals().await.0 == calls
    })
    .await;
    assert!(recorded, "the usage report shows every call");
    totals().await.1
}

#[tokio::test]
async fn an_agent_earns_commission_on_its_referred_tenants_only() {
    for store in stores().await {
        let env = env_with(store, 0, |s| s.signup_credit = Money(CREDIT)).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "ops@example.com").await;
        let (alice, created) =
            agent(&operator, "Alice Resellers", "alice@agents.example", 1000).await;
        let (bob, _) = agent(&operator, "Bob Partners", "bob@agents.example", 2000).await;
        let code = created["referral_code"].as_str().unwrap();

        // A tenant comes in through Alice's code; another signs up on its own.
        let referred = referred_tenant(&base, "referred@example.com", &code.to_lowercase()).await;
        let direct = Visitor::sign_up(&base, "direct@example.com").await;
        for (tenant, calls) in [(&referred, 3), (&direct, 2)] {
            let (key, _) = tenant.create_key("k", json!({"kind": "auto"})).await;
            for i in 0..calls {
                let response = env
                    .chat(
                        &key,
                        json!({"model": "test-gpt", "messages": user(&format!("hello {i}"))}),
                    )
                    .await;
                assert_eq!(response.status(), StatusCode::OK);
            }
        }

        // Once the referred tenant's calls settle, Alice sees its spend and her commission.
        let cost = spent(&referred, 3).await;
        assert!(cost > 0, "{}", env.store.name);
        assert!(
            referred.balance_becomes(CREDIT - cost).await,
            "{}: settled",
            env.store.name
        );
        let settled = eventually(Duration::from_secs(5), || async {
            let (_, tenants) = alice.json("/api/agent/tenants").await;
            tenants[0]["spend_total"].as_i64() == Some(cost)
        })
        .await;
        assert!(
            settled,
            "{}: the agent sees the settled spend",
            env.store.name
        );
        let (status, tenants) = alice.json("/api/agent/tenants").await;
        assert_eq!(status, StatusCode::OK);
        let tenants = tenants.as_array().unwrap();
        assert_eq!(tenants.len(), 1, "only the referred tenant: {tenants:?}");
        assert_eq!(tenants[0]["name"], "referred@example.com");
        assert!(tenants[0].get("email").is_none(), "agents never see emails");
        let commission = tenants[0]["commission_total"].as_i64().unwrap();
        // 10 %, rounded down at each settlement: at most a micro-unit short per settlement.
        let exact = commission_on(cost, 1000);
        assert!(
            commission <= exact && commission > exact - 10,
            "{commission} vs {exact}"
        );
        let (_, dashboard) = alice.json("/api/agent/dashboard").await;
        assert_eq!(dashboard["commission_this_month"], commission);
        assert_eq!(dashboard["unpaid"], commission);
        assert!(dashboard["referral_link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/r/{code}")));
        let month = modelrouter::agent::this_month();
        let (_, statement) = alice.json(&format!("/api/agent/commission/{month}")).await;
        assert_eq!(statement["commission"], commission);
        assert_eq!(statement["lines"].as_array().unwrap().len(), 1);

        // Bob sees none of it.
        let (_, bobs) = bob.json("/api/agent/tenants").await;
        assert_eq!(bobs, json!([]));
        let (_, bobs) = bob.json(&format!("/api/agent/commission/{month}")).await;
        assert_eq!(bobs["lines"], json!([]));
        assert_eq!(bobs["commission"], 0);

        // The operator sees Alice's tenant with its email, and can mark only a finished month paid.
        let agent_id = created["agent_id"].as_str().unwrap();
        let (_, detail) = operator
            .json(&format!("/api/admin/agents/{agent_id}"))
            .await;
        assert_eq!(detail["tenants"][0]["email"], "referred@example.com");
        let (status, body) = operator
            .write(
                "POST",
                &format!("/api/admin/agents/{agent_id}/payouts"),
                json!({"month": month, "amount": commission, "reference": "early"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], "month");
        drop(core);
        let (store, db) = env.finish().await;

        // The commission projection rebuilt from the log equals the one built as events came.
        let incremental = sql::dump(&db, Projection::Commissions).await.unwrap();
        sql::rebuild(&db, Projection::Commissions).await.unwrap();
        assert_eq!(
            sql::dump(&db, Projection::Commissions).await.unwrap(),
            incremental,
            "{}",
            store.name
        );
    }
}

#[tokio::test]
async fn a_finished_month_is_marked_paid_once_and_the_agent_sees_it() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let base = env.url("");
    let core = env.store.core().await;
    let operator = Visitor::operator(&base, &core, "ops@example.com").await;
    let (alice, created) = agent(&operator, "Alice", "alice@agents.example", 1500).await;
    let agent_id = created["agent_id"].as_str().unwrap();
    let path = format!("/api/admin/agents/{agent_id}/payouts");
    let payout = json!({"month": "2026-01", "amount": 1_250_000, "reference": "wire 17"});
    let (status, body) = operator.write("POST", &path, payout.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The same payout again (a double submit) records nothing new; another amount is refused.
    let (status, _) = operator.write("POST", &path, payout).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = operator
        .write(
            "POST",
            &path,
            json!({"month": "2026-01", "amount": 9, "reference": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let shown = eventually(Duration::from_secs(5), || async {
        let (_, months) = alice.json("/api/agent/commission").await;
        months[0]["paid_amount"] == json!(1_250_000)
    })
    .await;
    assert!(shown, "the agent sees the month paid");
    let (_, months) = alice.json("/api/agent/commission").await;
    assert_eq!(months[0]["paid_reference"], "wire 17");

    // The payout's event names the operator who recorded it.
    let events = core.db.events_of("Agent", agent_id).await.unwrap();
    let paid = events
        .iter()
        .find(|e| e.event_type == "CommissionPaid")
        .unwrap();
    assert!(paid.metadata["actor"]
        .as_str()
        .unwrap()
        .starts_with("operator:"));
    drop(core);
    env.finish().await;
}

#[tokio::test]
async fn referral_links_and_codes_attribute_sign_ups() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let base = env.url("");
    let core = env.store.core().await;
    let operator = Visitor::operator(&base, &core, "ops@example.com").await;
    let (_, created) = agent(&operator, "Link Agent", "link@agents.example", 500).await;
    let code = created["referral_code"].as_str().unwrap();

    // The link remembers the code and opens the sign-up form with the agent named.
    let visitor = Visitor::new(&base);
    let link = visitor.get(&format!("/r/{code}")).await;
    assert_eq!(link.status(), StatusCode::SEE_OTHER);
    assert!(link.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with(&format!("mr_ref={code}")));
    let form = visitor.get("/portal/signup").await.text().await.unwrap();
    assert!(form.contains("Referred by Link Agent"), "{form}");
    assert!(form.contains(&format!("value=\"{code}\"")));

    // An unknown code is refused on the field, and nothing is registered.
    let response = reqwest::Client::new()
        .post(env.url("/api/portal/signup"))
        .json(
            &json!({"email": "x@example.com", "password": PASSWORD, "referral_code": "NOPE-0000"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "referral_code");
    let again = Visitor::sign_up(&base, "x@example.com").await;
    let (status, _) = again.json("/api/portal/dashboard").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the email was not taken by the refused sign-up"
    );

    // A disabled agent's code refers no one.
    let agent_id = created["agent_id"].as_str().unwrap();
    let (status, _) = operator
        .write(
            "POST",
            &format!("/api/admin/agents/{agent_id}/disable"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let response = reqwest::Client::new()
        .post(env.url("/api/portal/signup"))
        .json(&json!({"email": "y@example.com", "password": PASSWORD, "referral_code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    drop(core);
    env.finish().await;
}

#[tokio::test]
async fn agents_tenants_and_operators_never_open_each_others_sites() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let base = env.url("");
    let core = env.store.core().await;
    let operator = Visitor::operator(&base, &core, "ops@example.com").await;
    let (agent, _) = agent(&operator, "Alice", "alice@agents.example", 1000).await;
    let tenant = Visitor::sign_up(&base, "tenant@example.com").await;

    for (who, visitor) in [("tenant", &tenant), ("operator", &operator)] {
        let (status, _) = visitor.json("/api/agent/dashboard").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{who} on /api/agent");
        let page = visitor.get("/agent/tenants").await;
        assert_eq!(page.status(), StatusCode::SEE_OTHER, "{who} on /agent");
        assert!(page.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/agent/login"));
    }
    for path in [
        "/api/admin/overview",
        "/api/admin/agents",
        "/api/portal/dashboard",
    ] {
        let (status, _) = agent.json(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "agent on {path}");
    }
    assert_eq!(agent.get("/agent").await.status(), StatusCode::OK);
    // A tenant cannot create agents, even with its own CSRF token.
    let (status, _) = tenant
        .write(
            "POST",
            "/api/admin/agents",
            json!({"name": "Mallory", "email": "m@example.com", "commission_bps": 10000}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(core);
    env.finish().await;
}

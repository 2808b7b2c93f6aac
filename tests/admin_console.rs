//! The operations console from the outside: operators sign in with their own sessions, which
//! open no tenant page, and tenants' sessions open no console page or API.
#![allow(clippy::unwrap_used)]

mod common;

use common::visitor::{Visitor, PASSWORD};
use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// The value of the `name` cookie a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("the response sets {name}"))
}

#[tokio::test]
async fn operators_and_tenants_never_open_each_others_pages() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let base = env.url("");
    let core = env.store.core().await;
    let operator = Visitor::operator(&base, &core, "ops@example.com").await;
    let tenant = Visitor::sign_up(&base, "tenant@example.com").await;

    // The operator sees the console and its JSON.
    let page = operator.get("/admin").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Overview"));
    let (status, overview) = operator.json("/api/admin/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert!(overview["tenants"].as_u64().unwrap() >= 1, "{overview}");

    // A tenant's session is sent to the console's sign-in, and its API answers 401.
    let page = tenant.get("/admin").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert!(page.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/admin/login"));
    let (status, body) = tenant.json("/api/admin/overview").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "signed_out");

    // An operator's session opens no tenant page.
    let page = operator.get("/portal").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let (status, _) = operator.json("/api/portal/dashboard").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A tenant's session token sent in the console's cookie is no operator session either.
    let plain = reqwest::Client::new();
    let login = plain
        .post(env.url("/api/portal/login"))
        .json(&json!({"email": "tenant@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let token = set_cookie(&login, "mr_session");
    let forged = plain
        .get(env.url("/api/admin/overview"))
        .header("cookie", format!("mr_admin_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // Signing out of the console ends that session only.
    let response = operator
        .http
        .post(operator.url("/api/admin/logout"))
        .header("x-csrf-token", &operator.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = operator.json("/api/admin/overview").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = tenant.json("/api/portal/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    drop(core);
    env.finish().await;
}

/// Every operator reads every page; finance changes money, support tenants' accounts, and only
/// admins the platform. A refused change is a 403 that says why, and changes nothing.
#[tokio::test]
async fn each_operator_role_changes_only_what_it_is_for() {
    use modelrouter_domain::operator::OperatorRole;
    let store = stores().await.remove(0);
    let env = env(store).await;
    let base = env.url("");
    let core = env.store.core().await;
    let finance =
        Visitor::operator_as(&base, &core, "fin@example.com", OperatorRole::Finance).await;
    let support =
        Visitor::operator_as(&base, &core, "help@example.com", OperatorRole::Support).await;
    let tenant = Visitor::sign_up(&base, "tenant@example.com").await;
    let id = tenant_id(&core.db, "tenant@example.com").await;

    for operator in [&finance, &support] {
        for page in [
            "/admin/providers",
            "/admin/orders",
            &format!("/admin/tenants/{id}"),
        ] {
            assert_eq!(operator.get(page).await.status(), StatusCode::OK, "{page}");
        }
        let (status, body) = operator
            .write(
                "POST",
                "/api/admin/providers",
                json!({"name": "x", "protocol": "openai", "base_url": "http://127.0.0.1:9"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "not_permitted");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Ask an admin"));
    }

    // Finance adjusts a balance; support may not, and the balance is as finance left it.
    let adjust = format!("/api/admin/tenants/{id}/adjust");
    let credit = json!({"amount": 5_000_000, "reason": "goodwill"});
    let (status, body) = support.write("POST", &adjust, credit.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = finance.write("POST", &adjust, credit).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(tenant.balance().await, 5_000_000);

    // Support suspends and reactivates; finance may not, by form or by JSON.
    let suspend = format!("/admin/tenants/{id}/suspend");
    let refused = finance
        .form(
            &suspend,
            &[("csrf", &finance.csrf), ("reason", "fraud check")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("finance role"));
    assert_eq!(tenant.json("/api/portal/dashboard").await.0, StatusCode::OK);
    let (status, body) = support
        .write(
            "POST",
            &format!("/api{suspend}"),
            json!({"reason": "fraud check"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The tenant's sessions ended with the suspension.
    assert_eq!(
        tenant.json("/api/portal/dashboard").await.0,
        StatusCode::UNAUTHORIZED
    );
    drop(core);
    env.finish().await;
}

#[tokio::test]
async fn console_sign_in_is_rate_limited_like_the_portal() {
    let store = stores().await.remove(0);
    let env = env_with(store, 0, |settings| settings.login_failures_per_email = 3).await;
    let base = env.url("");
    let core = env.store.core().await;
    Visitor::operator(&base, &core, "ops@example.com").await;
    let visitor = Visitor::new(&base);
    let attempt = |password: &'static str| {
        let visitor = &visitor;
        async move {
            visitor
                .http
                .post(visitor.url("/api/admin/login"))
                .json(&json!({"email": "ops@example.com", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        assert_eq!(
            attempt("wrong-password-1").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = attempt("wrong-password-1").await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key("retry-after"));
    // Locked: even the right password waits.
    assert_eq!(
        attempt(PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // A tenant's sign-in is counted apart from the operators'.
    Visitor::sign_up(&base, "tenant@example.com").await;
    let tenant = reqwest::Client::new()
        .post(env.url("/api/portal/login"))
        .json(&json!({"email": "tenant@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(tenant.status(), StatusCode::OK);
    drop(core);
    env.finish().await;
}

#[tokio::test]
async fn the_console_sign_in_page_signs_in_with_a_form() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let base = env.url("");
    let core = env.store.core().await;
    modelrouter::admin::create_operator(
        &core.commands,
        "form@example.com",
        modelrouter_domain::operator::OperatorRole::Admin,
        PASSWORD,
        &modelrouter_domain::metadata::Actor::Cli,
    )
    .await
    .unwrap();
    let visitor = Visitor::new(&base);
    let page = visitor.get("/admin?from=test").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers()["location"],
        "/admin/login?next=%2Fadmin%3Ffrom%3Dtest"
    );
    let form = visitor.get("/admin/login").await.text().await.unwrap();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let response = visitor
        .form(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("email", "form@example.com"),
                ("password", PASSWORD),
                ("next", "/admin"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/admin");
    assert_eq!(visitor.get("/admin").await.status(), StatusCode::OK);
    drop(core);
    env.finish().await;
}

#[tokio::test]
async fn the_audit_trail_finds_events_by_actor_aggregate_and_time_without_secrets() {
    for store in stores().await {
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "ops@example.com").await;
        let tenant = Visitor::sign_up(&base, "tenant@example.com").await;
        let (key, key_id) = tenant.create_key("ci", json!({"kind": "auto"})).await;
        let (status, agent) = operator
            .write(
                "POST",
                "/api/admin/agents",
                json!({"name": "Audit Agent", "email": "agent@example.com", "commission_bps": 700}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{agent}");

        // By the operator's email: the agent it created, with the operator named.
        let (status, page) = operator
            .json("/api/admin/audit?actor=ops%40example.com")
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let events = page["events"].as_array().unwrap();
        let registered = events
            .iter()
            .find(|e| e["aggregate_type"] == "Agent" && e["event_type"] == "Registered")
            .unwrap_or_else(|| panic!("{}: the agent's registration: {page}", env.store.name));
        assert!(registered["actor"]
            .as_str()
            .unwrap()
            .starts_with("operator:"));
        assert!(registered["actor_label"]
            .as_str()
            .unwrap()
            .contains("ops@example.com"));
        assert_eq!(
            registered["payload"]["Registered"]["password_hash"],
            "[redacted]"
        );
        assert!(
            events.iter().all(|e| e["aggregate_type"] != "Tenant"),
            "only the operator's events"
        );

        // By aggregate: the key's creation, its hash never shown.
        let (_, page) = operator
            .json(&format!(
                "/api/admin/audit?aggregate_type=ApiKey&aggregate_id={key_id}"
            ))
            .await;
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{page}");
        assert_eq!(events[0]["payload"]["Created"]["hash"], "[redacted]");
        assert!(events[0]["actor"].as_str().unwrap().starts_with("tenant:"));

        // The whole trail, as JSON and as the page, shows no secret.
        let hash = modelrouter::crypto::hash_api_key(&key);
        for path in ["/api/admin/audit", "/admin/audit"] {
            let body = operator.get(path).await.text().await.unwrap();
            assert!(!body.contains("$argon2id$"), "{path} shows a password hash");
            assert!(!body.contains(&hash), "{path} shows a key hash");
            assert!(!body.contains(&key), "{path} shows a key");
        }

        // By time: nothing before yesterday; a malformed day is refused.
        let (_, page) = operator.json("/api/admin/audit?until=2020-01-01").await;
        assert_eq!(page["events"], json!([]));
        let (status, body) = operator.json("/api/admin/audit?from=yesterday").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["field"], "from");

        // Paging walks back through older events, each page older than the last.
        let (_, first) = operator.json("/api/admin/audit").await;
        let last = first["events"].as_array().unwrap().last().unwrap()["position"]
            .as_i64()
            .unwrap();
        let (_, older) = operator
            .json(&format!("/api/admin/audit?before={last}"))
            .await;
        assert!(older["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["position"].as_i64().unwrap() < last));
        drop(core);
        env.finish().await;
    }
}

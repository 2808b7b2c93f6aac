//! One-time passwords — given by an operator or the CLI to tenants (a reset), agents (creation,
//! reset) and operators (`admin create`, `admin reset-password`) — on every configured store:
//! they must be replaced at the first sign-in before anything else opens, in every realm; past
//! their expiry they are refused with their own message; and a new one can be given.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::Utc;
use common::visitor::{Visitor, PASSWORD};
use common::*;
use modelrouter::server::Running;
use modelrouter_domain::metadata::Actor;
use modelrouter_domain::operator::OperatorRole;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Each realm: its sign-in call, a page and a call that a one-time password must not open,
/// its password change, and its account page.
struct Realm {
    name: &'static str,
    login: &'static str,
    page: &'static str,
    call: &'static str,
    password: &'static str,
    account: &'static str,
}

const TENANT: Realm = Realm {
    name: "tenant",
    login: "/api/portal/login",
    page: "/portal/keys",
    call: "/api/portal/dashboard",
    password: "/api/portal/password",
    account: "/portal/account",
};
const AGENT: Realm = Realm {
    name: "agent",
    login: "/api/agent/login",
    page: "/agent/tenants",
    call: "/api/agent/dashboard",
    password: "/api/agent/password",
    account: "/agent/account",
};
const OPERATOR: Realm = Realm {
    name: "operator",
    login: "/api/admin/login",
    page: "/admin/tenants",
    call: "/api/admin/overview",
    password: "/api/admin/password",
    account: "/admin/account",
};

/// Signs in to `realm`: the visitor with its CSRF token, or the failed answer.
async fn sign_in(
    base: &str,
    realm: &Realm,
    email: &str,
    password: &str,
) -> Result<Visitor, (StatusCode, Value)> {
    let mut visitor = Visitor::new(base);
    let response = visitor
        .http
        .post(visitor.url(realm.login))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != StatusCode::OK {
        return Err((status, body));
    }
    visitor.csrf = body["csrf_token"].as_str().unwrap().to_string();
    Ok(visitor)
}

/// Signed in with a one-time password: only the password change opens the rest, and the new
/// password must differ from the one-time one.
async fn must_choose_a_password(visitor: &Visitor, realm: &Realm, one_time: &str, store: &str) {
    let who = format!("{store} {}", realm.name);
    let (status, body) = visitor.json(realm.call).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{who}: {body}");
    assert_eq!(body["error"]["code"], "password_change_required", "{who}");
    let page = visitor.get(realm.page).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "{who}");
    let choose = format!("{}?notice=choose_password#password", realm.account);
    assert_eq!(page.headers()["location"], choose.as_str(), "{who}");
    let page = visitor
        .get(&format!("{}?notice=choose_password", realm.account))
        .await;
    assert_eq!(page.status(), StatusCode::OK, "{who}");
    let page = page.text().await.unwrap();
    assert!(page.contains("one-time password"), "{who}: {page}");
    assert!(page.contains("id=\"password\""), "{who}: the form is there");

    for (new, expected) in [(one_time, 422), ("a brand new passphrase 7", 204)] {
        let body = json!({"current_password": one_time, "new_password": new});
        let (status, body) = visitor.write("POST", realm.password, body).await;
        assert_eq!(status.as_u16(), expected, "{who}: {body}");
    }
    let (status, body) = visitor.json(realm.call).await;
    assert_eq!(status, StatusCode::OK, "{who}: {body}");
}

fn password_on_page(page: &str, id: &str) -> String {
    let start = format!("<code id=\"{id}\">");
    page.split(start.as_str())
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .unwrap()
        .to_string()
}

/// An operator's reset of a tenant's password, from the console; returns the password shown.
async fn reset_tenant(operator: &Visitor, tenant_id: &str) -> String {
    let response = operator
        .form(
            &format!("/admin/tenants/{tenant_id}/password"),
            &[("csrf", &operator.csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    password_on_page(&response.text().await.unwrap(), "new-password")
}

/// A new agent from the console; returns its one-time password.
async fn create_agent(operator: &Visitor, email: &str) -> String {
    let body = json!({"name": "Agent", "email": email, "commission_bps": 1000});
    let (status, created) = operator.write("POST", "/api/admin/agents", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["password"].as_str().unwrap().to_string()
}

/// An operator's reset of an agent's password, from the console.
async fn reset_agent(operator: &Visitor, email: &str) -> String {
    let (_, agents) = operator.json("/api/admin/agents").await;
    let agents = agents.as_array().cloned().unwrap_or_default();
    let agent = agents.iter().find(|a| a["email"] == email).unwrap();
    let id = agent["agent_id"].as_str().unwrap();
    let (status, body) = operator
        .write(
            "POST",
            &format!("/api/admin/agents/{id}/password"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["password"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_one_time_password_opens_only_the_password_change_in_every_realm() {
    for store in stores().await {
        let env = env(store).await;
        let name = env.store.name;
        let base = env.url("");
        let core = env.store.core().await;

        // An operator from `admin create`: a one-time password.
        let expires_at = Utc::now() + chrono::Duration::hours(72);
        let (_, one_time) = modelrouter::admin::create_operator_with_one_time_password(
            &core.commands,
            "ops@example.com",
            OperatorRole::Admin,
            expires_at,
            &Actor::Cli,
        )
        .await
        .unwrap();
        let operator = sign_in(&base, &OPERATOR, "ops@example.com", &one_time)
            .await
            .expect("the one-time password signs in");
        must_choose_a_password(&operator, &OPERATOR, &one_time, name).await;

        // An agent the operator creates.
        let one_time = create_agent(&operator, "agent@example.com").await;
        let agent = sign_in(&base, &AGENT, "agent@example.com", &one_time)
            .await
            .expect("the agent's one-time password signs in");
        must_choose_a_password(&agent, &AGENT, &one_time, name).await;

        // A tenant whose password the operator resets.
        Visitor::sign_up(&base, "tenant@example.com").await;
        let id = tenant_id(&core.db, "tenant@example.com").await;
        let one_time = reset_tenant(&operator, &id).await;
        let tenant = sign_in(&base, &TENANT, "tenant@example.com", &one_time)
            .await
            .expect("the tenant's one-time password signs in");
        must_choose_a_password(&tenant, &TENANT, &one_time, name).await;
        drop(core);
        env.finish().await;
    }
}

/// Signs in with an expired one-time password, by the API and by the form: the same clear
/// refusal, no session.
async fn refused_as_expired(base: &str, realm: &Realm, email: &str, password: &str, store: &str) {
    let who = format!("{store} {}", realm.name);
    let (status, body) = sign_in(base, realm, email, password)
        .await
        .err()
        .unwrap_or_else(|| panic!("{who}: an expired one-time password signed in"));
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{who}: {body}");
    assert_eq!(body["error"]["code"], "password_expired", "{who}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("one-time password has expired") && message.contains("new one"),
        "{who}: {message}"
    );

    let site = realm.account.trim_end_matches("/account");
    let visitor = Visitor::new(base);
    let login = format!("{site}/login");
    let html = visitor.get(&login).await.text().await.unwrap();
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let response = visitor
        .form(
            &login,
            &[("csrf", &token), ("email", email), ("password", password)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{who}");
    let page = response.text().await.unwrap();
    assert!(page.contains("one-time password has expired"), "{who}");
    let (status, _) = visitor.json(realm.call).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{who}: no session");
}

#[tokio::test]
async fn an_expired_one_time_password_is_refused_clearly_and_a_new_one_can_be_given() {
    for store in stores().await {
        let name = store.name;
        // This replica gives one-time passwords that are expired as soon as they are given.
        let env = env_with(store, 0, |s| s.one_time_password_ttl = Duration::ZERO).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "admin@example.com").await;

        let expired = Utc::now() - chrono::Duration::seconds(1);
        let (_, password) = modelrouter::admin::create_operator_with_one_time_password(
            &core.commands,
            "ops@example.com",
            OperatorRole::Support,
            expired,
            &Actor::Cli,
        )
        .await
        .unwrap();
        refused_as_expired(&base, &OPERATOR, "ops@example.com", &password, name).await;

        let password = create_agent(&operator, "agent@example.com").await;
        refused_as_expired(&base, &AGENT, "agent@example.com", &password, name).await;

        Visitor::sign_up(&base, "tenant@example.com").await;
        let id = tenant_id(&core.db, "tenant@example.com").await;
        let password = reset_tenant(&operator, &id).await;
        refused_as_expired(&base, &TENANT, "tenant@example.com", &password, name).await;
        drop(operator);

        // The same store served with the default lifetime (72 hours): each is given a new one,
        // which signs in — and must be changed.
        let Env {
            store,
            mock,
            server,
            ..
        } = env;
        server.stop().await.unwrap();
        // `modelrouter admin reset-password` (the CLI's call) while no replica serves, so the
        // one that starts next has it from the log.
        let expires_at = Utc::now() + chrono::Duration::hours(72);
        let password = modelrouter::admin::reset_operator_password(
            &core.commands,
            "ops@example.com",
            expires_at,
            &Actor::Cli,
        )
        .await
        .unwrap();
        let server = Running::start(store.settings()).await.unwrap();
        let base = format!("http://{}", server.addr);
        let operator = sign_in(&base, &OPERATOR, "admin@example.com", PASSWORD)
            .await
            .unwrap();
        let ops = sign_in(&base, &OPERATOR, "ops@example.com", &password)
            .await
            .expect("the operator's new one-time password signs in");
        must_choose_a_password(&ops, &OPERATOR, &password, name).await;

        let password = reset_agent(&operator, "agent@example.com").await;
        let agent = sign_in(&base, &AGENT, "agent@example.com", &password)
            .await
            .expect("the agent's new one-time password signs in");
        must_choose_a_password(&agent, &AGENT, &password, name).await;

        let password = reset_tenant(&operator, &id).await;
        let tenant = sign_in(&base, &TENANT, "tenant@example.com", &password)
            .await
            .expect("the tenant's new one-time password signs in");
        must_choose_a_password(&tenant, &TENANT, &password, name).await;

        drop(core);
        server.stop().await.unwrap();
        mock.stop();
    }
}

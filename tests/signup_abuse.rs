//! Sign-up abuse, on every configured store: sign-ups are limited per client address and time
//! window; the sign-up (trial) credit waits until the email is verified by the mailed link,
//! which credits it once however often (and however simultaneously) it is followed; links
//! expire; and a tenant can ask for the mail again, within a limit.
//!
//! The client address is the TCP peer (`X-Forwarded-For` is not trusted from clients), so the
//! tests connect from distinct loopback addresses (127.0.0.2, 127.0.0.3, …).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::visitor::{Visitor, PASSWORD};
use common::*;
use modelrouter_projections::Db;
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};

const CREDIT: i64 = 5_000_000;

/// A browser connecting from `ip` (a loopback address).
fn visitor_from(base: &str, ip: [u8; 4]) -> Visitor {
    let mut visitor = Visitor::new(base);
    visitor.http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap();
    visitor
}

async fn sign_up_json(
    visitor: &Visitor,
    email: &str,
    forwarded: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = visitor
        .http
        .post(visitor.url("/api/portal/signup"))
        .json(&json!({"email": email, "password": PASSWORD}));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

#[tokio::test]
async fn sign_ups_are_limited_per_client_address() {
    for store in stores().await {
        let env = env_with(store, 0, |s| {
            s.signups_per_address = 3;
            s.signup_window = Duration::from_secs(3600);
            s.signup_credit = modelrouter_domain::Money(CREDIT);
        })
        .await;
        let name = env.store.name;
        let base = env.url("");
        let abuser = visitor_from(&base, [127, 0, 0, 2]);
        for i in 0..3 {
            let (status, body, _) = sign_up_json(&abuser, &format!("a{i}@example.com"), None).await;
            assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        }
        // The fourth from the same address is refused, whatever it claims to be forwarded for.
        for forwarded in [None, Some("203.0.113.7"), Some("198.51.100.1, 127.0.0.9")] {
            let (status, body, retry_after) =
                sign_up_json(&abuser, "a3@example.com", forwarded).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{name}: {body}");
            assert_eq!(body["error"]["code"], "rate_limited");
            assert!(body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Too many accounts were created from your network"));
            let seconds: i64 = retry_after.unwrap().parse().unwrap();
            assert!(seconds > 0 && seconds <= 3600, "{seconds}");
        }
        // The form says so on the page, keeps what was typed, and registers nobody.
        let page = abuser.get("/portal/signup").await.text().await.unwrap();
        let token = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string();
        let response = abuser
            .form(
                "/portal/signup",
                &[
                    ("csrf", token.as_str()),
                    ("email", "a3@example.com"),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        let page = response.text().await.unwrap();
        assert!(page.contains("Too many accounts were created from your network"));
        assert!(page.contains("a3@example.com"), "the form keeps the email");

        // Another address is not affected, and may take the email the abuser was refused.
        let neighbour = visitor_from(&base, [127, 0, 0, 3]);
        let (status, body, _) = sign_up_json(&neighbour, "a3@example.com", None).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        env.finish().await;
    }
}

/// Sets every verification link's expiry `seconds_ago` (the clock moved on).
async fn expire_links(db: &Db, seconds_ago: i64) {
    let at = chrono::Utc::now().timestamp() - seconds_ago;
    let sql = "UPDATE email_verifications SET expires_at = $1";
    match db {
        Db::Sqlite(pool) => {
            sqlx::query(sql).bind(at).execute(pool).await.unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query(sql).bind(at).execute(pool).await.unwrap();
        }
    }
}

/// How many `Credited` events a tenant's Account has.
async fn credits(db: &Db, tenant_id: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM events
                WHERE aggregate_type = 'Account' AND aggregate_id = $1 AND event_type = 'Credited'";
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql)
            .bind(tenant_id)
            .fetch_one(pool)
            .await
            .unwrap(),
        Db::Postgres(pool) => sqlx::query_scalar(sql)
            .bind(tenant_id)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

/// The newest verification link in the tenant's outbox.
async fn newest_link(tenant: &Visitor) -> String {
    let (status, mail) = tenant.json("/api/portal/mail").await;
    assert_eq!(status, StatusCode::OK, "{mail}");
    assert_eq!(mail[0]["subject"], "Confirm your email for Model Router");
    let link = mail[0]["action_url"].as_str().unwrap().to_string();
    assert!(mail[0]["body"].as_str().unwrap().contains(&link));
    link
}

fn path_of(link: &str) -> String {
    let start = link.find("/portal/verify-email").unwrap();
    link[start..].to_string()
}

#[tokio::test]
async fn the_trial_credit_waits_for_the_verified_email_and_is_credited_once() {
    for store in stores().await {
        let env = env_with(store, 0, |s| {
            s.signup_credit = modelrouter_domain::Money(CREDIT);
        })
        .await;
        let name = env.store.name;
        let base = env.url("");
        let core = env.store.core().await;

        // Signed up, not verified: the account works, the credit waits.
        let alice = Visitor::sign_up_unverified(&base, "alice@example.com").await;
        assert_eq!(
            alice.balance().await,
            0,
            "{name}: no credit before verification"
        );
        let (_, session) = alice.json("/api/portal/session").await;
        assert_eq!(session["email_verified"], false);
        alice
            .create_key("works already", json!({"kind": "auto"}))
            .await;
        let dashboard = alice.get("/portal").await.text().await.unwrap();
        assert!(dashboard.contains("Confirm your email."), "{name}");
        assert!(
            dashboard.contains("Your trial credit of 5.00 USD"),
            "{name}"
        );
        let link = newest_link(&alice).await;
        assert!(link.starts_with(&base), "{link}");
        assert!(
            dashboard.contains(&format!("id=\"verify-link\" href=\"{link}\"")),
            "{name}: the demo's one-click link"
        );

        // Following the link verifies the email and credits once; following it again says so
        // and credits nothing more.
        let page = alice.get(&path_of(&link)).await;
        assert_eq!(page.status(), StatusCode::OK, "{name}");
        let page = page.text().await.unwrap();
        assert!(page.contains("alice@example.com is verified"), "{page}");
        assert!(page.contains("trial credit of 5.00 USD"));
        assert_eq!(alice.balance().await, CREDIT, "{name}");
        let again = alice.get(&path_of(&link)).await.text().await.unwrap();
        assert!(again.contains("was verified before"), "{again}");
        let (_, session) = alice.json("/api/portal/session").await;
        assert_eq!(session["email_verified"], true);
        let dashboard = alice.get("/portal").await.text().await.unwrap();
        assert!(!dashboard.contains("Confirm your email."));
        let id = tenant_id(&core.db, "alice@example.com").await;
        assert_eq!(credits(&core.db, &id).await, 1, "{name}");

        // Two links, followed many times at once from two browsers: one credit.
        let bob = Visitor::sign_up_unverified(&base, "bob@example.com").await;
        let (status, _) = bob
            .write("POST", "/api/portal/verify-email/resend", json!({}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, mail) = bob.json("/api/portal/mail").await;
        let tokens: Vec<String> = mail
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let link = m["action_url"].as_str().unwrap();
                link.split("token=").nth(1).unwrap().to_string()
            })
            .collect();
        assert_eq!(tokens.len(), 2);
        let stranger = Visitor::new(&base);
        let clicks = (0..12).map(|i| {
            let token = tokens[i % 2].clone();
            let (who, path) = (
                if i % 3 == 0 { &stranger } else { &bob },
                "/api/portal/verify-email",
            );
            async move {
                let response = who
                    .http
                    .post(who.url(path))
                    .json(&json!({ "token": token }))
                    .send()
                    .await
                    .unwrap();
                response.status()
            }
        });
        for status in futures::future::join_all(clicks).await {
            assert_eq!(status, StatusCode::OK, "{name}");
        }
        let id = tenant_id(&core.db, "bob@example.com").await;
        assert_eq!(credits(&core.db, &id).await, 1, "{name}: credited once");
        assert!(bob.balance_becomes(CREDIT).await, "{name}");
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn links_expire_and_the_mail_can_be_asked_for_again_within_a_limit() {
    for store in stores().await {
        let env = env_with(store, 0, |s| {
            s.signup_credit = modelrouter_domain::Money(CREDIT);
        })
        .await;
        let name = env.store.name;
        let base = env.url("");
        let core = env.store.core().await;
        let carol = Visitor::sign_up_unverified(&base, "carol@example.com").await;
        let expired = newest_link(&carol).await;
        expire_links(&core.db, 1).await;
        let page = carol.get(&path_of(&expired)).await;
        assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(page
            .text()
            .await
            .unwrap()
            .contains("This verification link has expired"));
        let response = carol
            .http
            .post(carol.url("/api/portal/verify-email"))
            .json(&json!({"token": "not-a-token"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(carol.balance().await, 0, "{name}");

        // The sign-up's mail and two more within the hour; the next is refused.
        let page = carol.get("/portal").await.text().await.unwrap();
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string();
        let response = carol
            .form("/portal/verify-email/resend", &[("csrf", csrf.as_str())])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
        let (status, _) = carol
            .write("POST", "/api/portal/verify-email/resend", json!({}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = carol
            .write("POST", "/api/portal/verify-email/resend", json!({}))
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{name}: {body}");
        assert_eq!(body["error"]["code"], "rate_limited");
        let (_, mail) = carol.json("/api/portal/mail").await;
        assert_eq!(mail.as_array().unwrap().len(), 3, "{name}");

        // A new link works.
        let fresh = newest_link(&carol).await;
        assert_ne!(fresh, expired, "the newest mail comes first");
        assert_eq!(carol.get(&path_of(&fresh)).await.status(), StatusCode::OK);
        assert_eq!(carol.balance().await, CREDIT, "{name}");
        let (status, body) = carol
            .write("POST", "/api/portal/verify-email/resend", json!({}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        drop(core);
        env.finish().await;
    }
}

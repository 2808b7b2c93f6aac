//! What the gateway believes about its clients: `X-Forwarded-For`, `-Host` and `-Proto` count
//! only from configured trusted proxies — in the portal's snippets, in Stripe's return URLs, in
//! the client address that events record and sign-in throttling counts — and
//! `Strict-Transport-Security` is sent exactly when the browser used HTTPS.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::visitor::Visitor;
use common::*;
use modelrouter::config::Settings;
use modelrouter::crypto::Secret;
use modelrouter::mock::stripe::{FakeStripe, FakeStripeConfig};
use modelrouter::payments::stripe::StripeConfig;
use modelrouter_projections::TailPosition;
use serde_json::{json, Value};

/// The headers a client, or a proxy, writes to say how the browser reached it.
const FORWARDED: [(&str, &str); 3] = [
    ("x-forwarded-host", "api.example.com"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-for", "203.0.113.9"),
];

fn trust_localhost(settings: &mut Settings) {
    settings.edge.trusted_proxies =
        modelrouter::config::parse_trusted_proxies("127.0.0.1").unwrap();
}

async fn fake_stripe() -> FakeStripe {
    FakeStripe::start(FakeStripeConfig {
        secret_key: Secret::new("sk_test_fake"),
        webhook_secret: Secret::new("whsec_fake"),
        webhook_url: None,
    })
    .await
    .unwrap()
}

fn with_stripe(settings: &mut Settings, stripe: &FakeStripe) {
    settings.payments.stripe = Some(StripeConfig {
        api_base: stripe.url(),
        secret_key: Secret::new("sk_test_fake"),
        webhook_secret: Secret::new("whsec_fake"),
        tolerance: Duration::from_secs(300),
    });
}

fn forwarded(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    FORWARDED.iter().fold(request, |request, (name, value)| {
        request.header(*name, *value)
    })
}

/// What a signed-in tenant sees, with the forwarding headers on every request: the base URL in
/// the models' snippets, the return URL Stripe was given for a card top-up, and whether the
/// answers carried HSTS.
struct Seen {
    snippet: String,
    stripe_return: String,
    hsts: Option<String>,
}

async fn seen_through_forwarding_headers(env: &Env, stripe: &FakeStripe, email: &str) -> Seen {
    let alice = Visitor::sign_up(&env.url(""), email).await;
    let models = forwarded(alice.http.get(alice.url("/api/portal/models")))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let hsts = models
        .headers()
        .get("strict-transport-security")
        .map(|v| v.to_str().unwrap().to_string());
    let models: Value = models.json().await.unwrap();
    let snippet = models[0]["snippets"]["curl"].as_str().unwrap().to_string();

    let placed = forwarded(alice.http.post(alice.url("/api/portal/recharge/orders")))
        .header("x-csrf-token", &alice.csrf)
        .json(&json!({"amount": 20_000_000, "method": "stripe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    let sessions = stripe.sessions();
    let stripe_return = sessions.last().unwrap()["success_url"]
        .as_str()
        .unwrap()
        .to_string();
    Seen {
        snippet,
        stripe_return,
        hsts,
    }
}

#[tokio::test]
async fn a_clients_own_forwarding_headers_reach_neither_snippets_nor_stripe_nor_hsts() {
    for store in stores().await {
        let stripe = fake_stripe().await;
        let env = env_with(store, 0, |s| with_stripe(s, &stripe)).await;
        let seen = seen_through_forwarding_headers(&env, &stripe, "alice@example.com").await;
        let own = format!("http://{}", env.server.addr);
        assert!(
            seen.snippet.contains(&format!("{own}/v1")),
            "{}",
            seen.snippet
        );
        assert!(
            !seen.snippet.contains("api.example.com"),
            "{}",
            seen.snippet
        );
        assert!(
            seen.stripe_return
                .starts_with(&format!("{own}/portal/recharge/orders/")),
            "{}",
            seen.stripe_return
        );
        assert_eq!(seen.hsts, None, "plain HTTP gets no HSTS");
        env.finish().await;
    }
}

#[tokio::test]
async fn a_trusted_proxys_forwarding_headers_are_believed() {
    for store in stores().await {
        let stripe = fake_stripe().await;
        let env = env_with(store, 0, |s| {
            with_stripe(s, &stripe);
            trust_localhost(s);
        })
        .await;
        let seen = seen_through_forwarding_headers(&env, &stripe, "alice@example.com").await;
        assert!(
            seen.snippet.contains("https://api.example.com/v1"),
            "{}",
            seen.snippet
        );
        assert!(
            seen.stripe_return
                .starts_with("https://api.example.com/portal/recharge/orders/"),
            "{}",
            seen.stripe_return
        );
        assert_eq!(seen.hsts.as_deref(), Some("max-age=31536000"));
        env.finish().await;
    }
}

#[tokio::test]
async fn an_https_public_url_gets_hsts_and_plain_http_does_not() {
    for store in stores().await {
        let env = env_with(store, 0, |s| {
            s.public_url = Some("https://api.example.com".into());
        })
        .await;
        let live = env.http.get(env.url("/health/live")).send().await.unwrap();
        assert_eq!(
            live.headers()["strict-transport-security"],
            "max-age=31536000"
        );
        env.finish().await;
    }
    for store in stores().await {
        let env = env_with(store, 0, |s| {
            s.public_url = Some("http://api.example.com".into());
        })
        .await;
        let live = env.http.get(env.url("/health/live")).send().await.unwrap();
        assert!(live.headers().get("strict-transport-security").is_none());
        env.finish().await;
    }
}

/// The client address recorded on the tenant's `Registered` event.
async fn registered_from(env: &Env, email: &str) -> Option<String> {
    let response = env
        .http
        .post(env.url("/api/portal/signup"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"email": email, "password": visitor::PASSWORD, "name": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let core = env.store.core().await;
    let tenant = tenant_id(&core.db, email).await;
    let events = core
        .db
        .read_events(TailPosition::default(), 10_000)
        .await
        .unwrap();
    let registered = events
        .iter()
        .find(|e| e.aggregate_id == tenant && e.event_type == "Registered")
        .unwrap();
    registered.metadata["client_ip"].as_str().map(String::from)
}

/// Five wrong passwords, each claiming another address, then a sixth from a seventh address.
async fn locked_after_spoofed_failures(env: &Env) -> bool {
    let attempt = |n: u32| {
        env.http
            .post(env.url("/api/portal/login"))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .json(&json!({"email": format!("nobody{n}@example.com"), "password": "wrong"}))
            .send()
    };
    for n in 1..=5 {
        let status = attempt(n).await.unwrap().status();
        assert!(status == 401 || status == 429, "{status}");
    }
    attempt(7).await.unwrap().status() == 429
}

#[tokio::test]
async fn x_forwarded_for_names_the_client_only_from_a_trusted_proxy() {
    let few_per_address = |s: &mut Settings| {
        s.login_failures_per_ip = 5;
        s.login_failures_per_email = 100;
    };
    for store in stores().await {
        let env = env_with(store, 0, few_per_address).await;
        assert_eq!(
            registered_from(&env, "direct@example.com").await.as_deref(),
            Some("127.0.0.1"),
            "a client's own X-Forwarded-For is not its address"
        );
        assert!(
            locked_after_spoofed_failures(&env).await,
            "claiming other addresses dodged the per-address lockout"
        );
        env.finish().await;
    }
    for store in stores().await {
        let env = env_with(store, 0, |s| {
            few_per_address(s);
            trust_localhost(s);
        })
        .await;
        assert_eq!(
            registered_from(&env, "proxied@example.com")
                .await
                .as_deref(),
            Some("203.0.113.9"),
            "behind a trusted proxy, the address it names is the client's"
        );
        assert!(
            !locked_after_spoofed_failures(&env).await,
            "clients behind one proxy are counted apart"
        );
        env.finish().await;
    }
}

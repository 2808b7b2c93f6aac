//! The Stripe client against the fake Stripe, both on port 0: creating sessions (with
//! idempotency, auth and validation errors in Stripe's words), paying on the hosted page or
//! through the handle, and the signed webhooks that come back, received by a tiny server here
//! and checked by `Stripe::verify_webhook`.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use chrono::{TimeDelta, Utc};
use modelrouter::crypto::Secret;
use modelrouter::mock::stripe::{FakeStripe, FakeStripeConfig};
use modelrouter::payments::stripe::{Stripe, StripeConfig};
use modelrouter::payments::{CheckoutRequest, PaymentError, PaymentNotice};
use modelrouter_domain::Money;
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};

const SECRET_KEY: &str = "sk_test_fake_4242";
const WEBHOOK_SECRET: &str = "whsec_fake_signing";

/// A webhook as the receiver got it: its `Stripe-Signature` header and raw body.
type Received = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

/// A webhook endpoint on port 0 that keeps what it receives and answers 200.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    async fn keep(State(received): State<Received>, headers: HeaderMap, body: Bytes) {
        let signature = headers
            .get("stripe-signature")
            .map(|value| value.to_str().unwrap().to_owned());
        received.lock().unwrap().push((signature, body));
    }
    let app = Router::new()
        .route("/webhooks/stripe", post(keep))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/stripe", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn fake(webhook_url: Option<String>) -> FakeStripe {
    FakeStripe::start(FakeStripeConfig {
        secret_key: Secret::new(SECRET_KEY),
        webhook_secret: Secret::new(WEBHOOK_SECRET),
        webhook_url,
    })
    .await
    .unwrap()
}

fn client(fake: &FakeStripe, secret_key: &str) -> Stripe {
    let mut config = StripeConfig::new(Secret::new(secret_key), Secret::new(WEBHOOK_SECRET));
    config.api_base = fake.url();
    Stripe::new(config, reqwest::Client::new())
}

fn order(order_id: &str) -> CheckoutRequest {
    CheckoutRequest {
        order_id: order_id.into(),
        tenant_id: "ten_acme".into(),
        customer_email: "ada@example.com".into(),
        amount: Money(25_000_000),
        currency: "USD".into(),
        description: "Model Router balance top-up".into(),
        success_url: "https://router.example.com/done?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://router.example.com/cancelled".into(),
        expires_at: Utc::now() + TimeDelta::hours(2),
    }
}

/// Verifies a received webhook with the real client and reads its notice.
fn verified_notice(stripe: &Stripe, (signature, body): &(Option<String>, Bytes)) -> PaymentNotice {
    let event = stripe
        .verify_webhook(signature.as_deref(), body, Utc::now())
        .unwrap();
    Stripe::notice(&event).unwrap().unwrap()
}

#[tokio::test]
async fn create_checkout_makes_an_open_session_priced_in_cents() {
    let fake = fake(None).await;
    let stripe = client(&fake, SECRET_KEY);
    let checkout = stripe.create_checkout(&order("ord_1")).await.unwrap();

    assert!(checkout.provider_ref.starts_with("cs_test_"));
    assert_eq!(
        checkout.redirect_url,
        format!("{}/pay/{}", fake.url(), checkout.provider_ref)
    );
    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(session["id"], checkout.provider_ref.as_str());
    assert_eq!(session["amount_total"], 2500);
    assert_eq!(session["currency"], "usd");
    assert_eq!(session["client_reference_id"], "ord_1");
    assert_eq!(
        session["metadata"],
        json!({ "order_id": "ord_1", "tenant_id": "ten_acme" })
    );
    assert_eq!(session["customer_email"], "ada@example.com");
    assert_eq!(session["payment_status"], "unpaid");
    assert_eq!(session["status"], "open");
    let expires_at = session["expires_at"].as_i64().unwrap();
    let two_hours = (Utc::now() + TimeDelta::hours(2)).timestamp();
    assert!((two_hours - 5..=two_hours).contains(&expires_at));
}

#[tokio::test]
async fn expiries_outside_stripes_range_are_clamped_so_stripe_accepts_them() {
    let fake = fake(None).await;
    let stripe = client(&fake, SECRET_KEY);
    let mut soon = order("ord_soon");
    soon.expires_at = Utc::now() + TimeDelta::minutes(5);
    let mut late = order("ord_late");
    late.expires_at = Utc::now() + TimeDelta::days(7);
    stripe.create_checkout(&soon).await.unwrap();
    stripe.create_checkout(&late).await.unwrap();

    let now = Utc::now().timestamp();
    let sessions = fake.sessions();
    let soon_expiry = sessions[0]["expires_at"].as_i64().unwrap();
    assert!((now + 30 * 60..=now + 33 * 60).contains(&soon_expiry));
    let late_expiry = sessions[1]["expires_at"].as_i64().unwrap();
    assert!((now + 86_400 - 60..=now + 86_400).contains(&late_expiry));
}

#[tokio::test]
async fn a_retried_create_returns_the_same_session() {
    let fake = fake(None).await;
    let stripe = client(&fake, SECRET_KEY);
    let request = order("ord_retry");
    let first = stripe.create_checkout(&request).await.unwrap();
    let again = stripe.create_checkout(&request).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(fake.sessions().len(), 1);

    // The same order id with other parameters is refused, as Stripe refuses it.
    let mut changed = request.clone();
    changed.amount = Money(30_000_000);
    match stripe.create_checkout(&changed).await {
        Err(PaymentError::Provider { status, message }) => {
            assert_eq!(status, 400);
            assert!(
                message.starts_with("Keys for idempotent requests"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.sessions().len(), 1);
}

#[tokio::test]
async fn a_wrong_secret_key_is_a_provider_error_with_stripes_message() {
    let fake = fake(None).await;
    let stripe = client(&fake, "sk_test_wrong_9999");
    match stripe.create_checkout(&order("ord_1")).await {
        Err(error @ PaymentError::Provider { status: 401, .. }) => {
            assert_eq!(
                error.to_string(),
                "payment provider refused the request (HTTP 401): \
                 Invalid API Key provided: sk_****9999"
            );
            assert!(!error.is_retryable());
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.sessions().is_empty());
}

#[tokio::test]
async fn an_unreachable_stripe_is_a_retryable_error() {
    let fake = fake(None).await;
    let mut config = client(&fake, SECRET_KEY).config().clone();
    drop(fake);
    config.api_base = "http://127.0.0.1:9".into();
    let stripe = Stripe::new(config, reqwest::Client::new());
    let error = stripe.create_checkout(&order("ord_1")).await.unwrap_err();
    assert!(matches!(error, PaymentError::Unreachable(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn bad_requests_get_stripe_style_errors_naming_the_parameter() {
    let fake = fake(None).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/checkout/sessions", fake.url());
    let valid = [
        ("mode", "payment"),
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[0][price_data][unit_amount]", "2500"),
        ("line_items[0][price_data][product_data][name]", "Top-up"),
        ("line_items[0][quantity]", "1"),
        ("success_url", "https://router.example.com/done"),
    ]
    .map(|(key, value)| (key.to_owned(), value.to_owned()));
    // The valid form with one parameter removed (`value: None`) or set.
    let change = |name: &str, value: Option<String>| {
        let mut form: Vec<_> = valid
            .iter()
            .filter(|(key, _)| key != name)
            .cloned()
            .collect();
        form.extend(value.map(|value| (name.to_owned(), value)));
        form
    };
    let too_soon = (Utc::now().timestamp() + 600).to_string();
    let cases = [
        (
            change("success_url", None),
            "success_url",
            "Missing required param: success_url.",
        ),
        (
            change("line_items[0][price_data][currency]", None),
            "line_items[0][price_data][currency]",
            "Missing required param",
        ),
        (
            change(
                "line_items[0][price_data][unit_amount]",
                Some("25.00".into()),
            ),
            "line_items[0][price_data][unit_amount]",
            "Invalid integer: 25.00",
        ),
        (
            change("mode", Some("subscription".into())),
            "mode",
            "supports mode=payment only",
        ),
        (
            change(
                "line_items[0][price_data][currency]",
                Some("usdollar".into()),
            ),
            "line_items[0][price_data][currency]",
            "Invalid currency",
        ),
        (
            change("expires_at", Some(too_soon)),
            "expires_at",
            "at least 30 minutes",
        ),
        (
            change("colour", Some("blue".into())),
            "colour",
            "Received unknown parameter: colour",
        ),
    ];
    for (form, param, message) in cases {
        let response = http
            .post(&url)
            .bearer_auth(SECRET_KEY)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{param}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], param);
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{text}");
    }
    assert!(fake.sessions().is_empty());
    let response = http
        .post(&url)
        .bearer_auth(SECRET_KEY)
        .form(&valid)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fake.sessions().len(), 1);

    let response = http.post(&url).form(&valid).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("You did not provide an API key."),
        "{message}"
    );
}

#[tokio::test]
async fn paying_delivers_a_signed_webhook_that_verify_webhook_accepts() {
    let (webhook_url, received) = receiver().await;
    let fake = fake(Some(webhook_url)).await;
    let stripe = client(&fake, SECRET_KEY);
    let checkout = stripe.create_checkout(&order("ord_paid")).await.unwrap();

    let delivery = fake.pay(&checkout.provider_ref).await.unwrap();
    assert_eq!(delivery.status, Some(200));
    assert_eq!(delivery.event["type"], "checkout.session.completed");

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    match verified_notice(&stripe, &received[0]) {
        PaymentNotice::Paid {
            order_id,
            provider_ref,
            provider_event,
            amount,
            currency,
            paid_at,
        } => {
            assert_eq!(order_id, "ord_paid");
            assert_eq!(provider_ref, checkout.provider_ref);
            assert_eq!(provider_event, delivery.event["id"].as_str().unwrap());
            assert!(provider_event.starts_with("evt_"));
            assert_eq!(amount, Money(25_000_000));
            assert_eq!(currency, "USD");
            assert!((Utc::now() - paid_at).num_seconds() < 5);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.sessions()[0]["payment_status"], "paid");
    assert_eq!(fake.sessions()[0]["status"], "complete");
    // A paid session cannot be paid again.
    assert!(fake.pay(&checkout.provider_ref).await.is_err());
}

#[tokio::test]
async fn the_hosted_page_pays_and_sends_the_browser_to_success_url() {
    let (webhook_url, received) = receiver().await;
    let fake = fake(Some(webhook_url)).await;
    let stripe = client(&fake, SECRET_KEY);
    let checkout = stripe.create_checkout(&order("ord_page")).await.unwrap();
    let browser = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();

    let page = browser.get(&checkout.redirect_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Model Router balance top-up"), "{html}");
    assert!(html.contains("Pay 25.00 USD"), "{html}");
    assert!(html.contains(&format!("action=\"/pay/{}\"", checkout.provider_ref)));
    assert!(html.contains("href=\"https://router.example.com/cancelled\""));

    let paid = browser.post(&checkout.redirect_url).send().await.unwrap();
    assert_eq!(paid.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        paid.headers()["location"],
        format!(
            "https://router.example.com/done?session_id={}",
            checkout.provider_ref
        )
        .as_str()
    );
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "delivered before the redirect"
    );

    let again = browser.post(&checkout.redirect_url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let closed = browser.get(&checkout.redirect_url).send().await.unwrap();
    assert!(closed.text().await.unwrap().contains("is complete"));
}

#[tokio::test]
async fn expiring_a_session_sends_checkout_session_expired() {
    let (webhook_url, received) = receiver().await;
    let fake = fake(Some(webhook_url)).await;
    let stripe = client(&fake, SECRET_KEY);
    let checkout = stripe.create_checkout(&order("ord_gone")).await.unwrap();

    fake.expire(&checkout.provider_ref).await.unwrap();
    let received = received.lock().unwrap().clone();
    match verified_notice(&stripe, &received[0]) {
        PaymentNotice::Expired {
            order_id,
            provider_ref,
            ..
        } => {
            assert_eq!(order_id, "ord_gone");
            assert_eq!(provider_ref, checkout.provider_ref);
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.pay(&checkout.provider_ref).await.is_err());
}

#[tokio::test]
async fn a_payment_of_another_amount_is_reported_as_paid() {
    let fake = fake(None).await;
    let stripe = client(&fake, SECRET_KEY);
    let checkout = stripe.create_checkout(&order("ord_short")).await.unwrap();
    let delivery = fake.pay_amount(&checkout.provider_ref, 1999).await.unwrap();
    assert_eq!(delivery.status, None, "no webhook URL: recorded, not sent");
    match Stripe::notice(&delivery.event).unwrap().unwrap() {
        PaymentNotice::Paid { amount, .. } => assert_eq!(amount, Money(19_990_000)),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.events(), vec![delivery.event]);
}

#[tokio::test]
async fn events_can_be_replayed_resent_or_forged() {
    let (webhook_url, received) = receiver().await;
    let fake = fake(None).await;
    let stripe = client(&fake, SECRET_KEY);
    let checkout = stripe.create_checkout(&order("ord_replay")).await.unwrap();
    fake.pay(&checkout.provider_ref).await.unwrap();
    let event = fake.events().remove(0);

    // Replayed now: a fresh signature over the same event verifies.
    let (header, body) = fake.signed_event(&event);
    let verified = stripe
        .verify_webhook(Some(&header), body.as_bytes(), Utc::now())
        .unwrap();
    assert_eq!(verified["id"], event["id"]);
    // Captured an hour ago and replayed: too old.
    let (header, body) = fake.signed_event_at(&event, Utc::now() - TimeDelta::hours(1));
    assert!(matches!(
        stripe.verify_webhook(Some(&header), body.as_bytes(), Utc::now()),
        Err(PaymentError::Signature(_))
    ));
    // Forged: a body changed after signing.
    let (header, body) = fake.signed_event(&event);
    let forged = body.replace("\"amount_total\":2500", "\"amount_total\":2500000");
    assert_ne!(forged, body);
    assert!(matches!(
        stripe.verify_webhook(Some(&header), forged.as_bytes(), Utc::now()),
        Err(PaymentError::Signature(_))
    ));

    // Resent twice to a receiver set after the fact: the same event arrives twice.
    fake.set_webhook_url(Some(webhook_url));
    for _ in 0..2 {
        assert_eq!(fake.resend(&event).await.status, Some(200));
    }
    let received = received.lock().unwrap().clone();
    let ids: Vec<String> = received
        .iter()
        .map(|delivery| match verified_notice(&stripe, delivery) {
            PaymentNotice::Paid { provider_event, .. } => provider_event,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![event["id"].as_str().unwrap().to_owned(); 2]);
}

#[tokio::test]
async fn an_unreachable_webhook_url_is_reported_not_fatal() {
    let fake = fake(Some("http://127.0.0.1:9/webhooks/stripe".into())).await;
    let stripe = client(&fake, SECRET_KEY);
    let checkout = stripe.create_checkout(&order("ord_1")).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(15), fake.pay(&checkout.provider_ref))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.status, None);
    assert_eq!(fake.sessions()[0]["payment_status"], "paid");
}

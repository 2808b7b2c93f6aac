//! The create request's form and its expiry clamp; the webhook tests are in `webhook/tests.rs`,
//! the calls against the fake Stripe in `tests/stripe_fake.rs`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failure with a backtrace

use chrono::{DateTime, TimeDelta, Utc};
use modelrouter_domain::Money;

use super::*;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

const NOW: i64 = 1_718_000_040; // on a whole minute

fn request() -> CheckoutRequest {
    CheckoutRequest {
        order_id: "ord_1".into(),
        tenant_id: "ten_acme".into(),
        customer_email: "ada@example.com".into(),
        amount: Money(25_000_000),
        currency: "USD".into(),
        description: "Model Router balance top-up".into(),
        success_url: "https://router.example.com/done?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://router.example.com/cancelled".into(),
        expires_at: at(NOW + 3600),
    }
}

fn value<'a>(form: &'a [(&str, String)], key: &str) -> Option<&'a str> {
    form.iter()
        .find(|(name, _)| *name == key)
        .map(|(_, value)| value.as_str())
}

#[test]
fn the_form_prices_one_line_item_in_minor_units_and_names_the_order() {
    let form = checkout_form(&request(), at(NOW)).unwrap();
    let expected = [
        ("mode", "payment"),
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[0][price_data][unit_amount]", "2500"),
        (
            "line_items[0][price_data][product_data][name]",
            "Model Router balance top-up",
        ),
        ("line_items[0][quantity]", "1"),
        (
            "success_url",
            "https://router.example.com/done?session_id={CHECKOUT_SESSION_ID}",
        ),
        ("cancel_url", "https://router.example.com/cancelled"),
        ("client_reference_id", "ord_1"),
        ("metadata[order_id]", "ord_1"),
        ("metadata[tenant_id]", "ten_acme"),
        ("customer_email", "ada@example.com"),
    ];
    for (key, want) in expected {
        assert_eq!(value(&form, key), Some(want), "{key}");
    }
    let expires_at = (NOW + 3600).to_string();
    assert_eq!(value(&form, "expires_at"), Some(expires_at.as_str()));
}

#[test]
fn amounts_that_stripe_cannot_charge_are_refused_before_any_call() {
    let mut req = request();
    req.amount = Money(1_234_567);
    assert!(matches!(
        checkout_form(&req, at(NOW)),
        Err(PaymentError::Amount(_))
    ));
    req.amount = Money::ZERO;
    assert!(matches!(
        checkout_form(&req, at(NOW)),
        Err(PaymentError::Amount(_))
    ));
    req.amount = Money(500_000_000);
    req.currency = "JPY".into();
    let form = checkout_form(&req, at(NOW)).unwrap();
    assert_eq!(
        value(&form, "line_items[0][price_data][unit_amount]"),
        Some("500")
    );
    assert_eq!(
        value(&form, "line_items[0][price_data][currency]"),
        Some("jpy")
    );
}

#[test]
fn an_empty_email_is_left_for_the_customer_to_enter() {
    let mut req = request();
    req.customer_email.clear();
    assert_eq!(
        value(&checkout_form(&req, at(NOW)).unwrap(), "customer_email"),
        None
    );
}

#[test]
fn expiry_inside_stripes_range_is_sent_as_is() {
    let now = at(NOW);
    for ahead in [TimeDelta::minutes(45), TimeDelta::hours(5)] {
        assert_eq!(
            expires_at_param(now + ahead, now),
            Some((now + ahead).timestamp())
        );
    }
}

#[test]
fn expiry_too_soon_is_raised_to_thirty_minutes_plus_margin_on_a_whole_minute() {
    assert_eq!(expires_at_param(at(NOW + 60), at(NOW)), Some(NOW + 31 * 60));
    assert_eq!(
        expires_at_param(at(NOW - 600), at(NOW)),
        Some(NOW + 31 * 60)
    );
    // Retries a few seconds apart send the same parameter, so Stripe's idempotency check
    // sees the same request.
    assert_eq!(
        expires_at_param(at(NOW + 60), at(NOW + 7)),
        expires_at_param(at(NOW + 60), at(NOW + 42))
    );
    assert_eq!(expires_at_param(at(NOW), at(NOW + 7)), Some(NOW + 32 * 60));
}

#[test]
fn expiry_beyond_a_day_is_left_to_stripes_24_hour_default() {
    assert_eq!(expires_at_param(at(NOW + 86_400 * 3), at(NOW)), None);
    assert_eq!(expires_at_param(at(NOW + 86_400), at(NOW)), None);
    assert_eq!(
        expires_at_param(at(NOW + 86_400 - 120), at(NOW)),
        Some(NOW + 86_400 - 120)
    );
}

#[test]
fn stripe_error_bodies_give_their_message() {
    let body = br#"{"error": {"message": "Invalid API Key provided: sk_test_****wxyz", "type": "invalid_request_error"}}"#;
    assert_eq!(
        error_message(body),
        "Invalid API Key provided: sk_test_****wxyz"
    );
    assert_eq!(error_message(b"Bad gateway"), "Bad gateway");
    assert_eq!(error_message(b""), "no error message");
}

#[test]
fn the_config_never_shows_its_secrets() {
    let config = StripeConfig::new(Secret::new("sk_test_visible"), Secret::new("whsec_visible"));
    let shown = format!("{config:?}");
    assert!(!shown.contains("visible"), "{shown}");
    assert!(shown.contains("*****"));
    assert_eq!(config.api_base, "https://api.stripe.com");
    assert_eq!(config.tolerance, Duration::from_secs(300));
}

#[test]
fn only_transport_failures_and_provider_overload_are_retryable() {
    assert!(PaymentError::Unreachable("timeout".into()).is_retryable());
    let provider = |status| PaymentError::Provider {
        status,
        message: String::new(),
    };
    assert!(provider(503).is_retryable());
    assert!(provider(429).is_retryable());
    assert!(!provider(400).is_retryable());
    assert!(!PaymentError::Amount(String::new()).is_retryable());
}

//! Signatures (valid, tampered, wrong secret, replayed, from the future, rolled secrets,
//! missing) and notices read from event fixtures in `tests/fixtures/stripe/`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failure with a backtrace

use chrono::{DateTime, Utc};
use modelrouter_domain::Money;
use serde_json::{json, Value};

use super::*;
use crate::crypto::Secret;
use crate::payments::stripe::StripeConfig;

const SECRET: &str = "whsec_test_secret";
const T: i64 = 1_718_000_420;
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stripe/");

fn stripe() -> Stripe {
    Stripe::new(
        StripeConfig::new(Secret::new("sk_test_unused"), Secret::new(SECRET)),
        reqwest::Client::new(),
    )
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}.json")).unwrap()
}

fn event(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn problem(result: Result<Value, PaymentError>) -> SignatureProblem {
    match result {
        Err(PaymentError::Signature(problem)) => problem,
        other => panic!("expected a signature error, got {other:?}"),
    }
}

#[test]
fn signatures_match_an_independent_hmac_sha256() {
    // Computed with `openssl dgst -sha256 -hmac whsec_test_secret` over `t.payload`.
    assert_eq!(
        signature_header(
            SECRET,
            1_700_000_000,
            br#"{"id":"evt_test","object":"event"}"#
        ),
        "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724"
    );
}

#[test]
fn a_correctly_signed_event_is_accepted_and_parsed() {
    let body = fixture("checkout.session.completed");
    let header = signature_header(SECRET, T, &body);
    let event = stripe()
        .verify_webhook(Some(&header), &body, at(T + 5))
        .unwrap();
    assert_eq!(event["id"], "evt_1PQx2bCompleted");
}

#[test]
fn a_tampered_payload_is_rejected() {
    let body = fixture("checkout.session.completed");
    let header = signature_header(SECRET, T, &body);
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"amount_total\": 2500", "\"amount_total\": 2500000");
    assert_ne!(tampered.as_bytes(), body.as_slice());
    assert_eq!(
        problem(stripe().verify_webhook(Some(&header), tampered.as_bytes(), at(T))),
        SignatureProblem::Mismatch
    );
}

#[test]
fn a_signature_under_another_secret_is_rejected() {
    let body = fixture("checkout.session.completed");
    let header = signature_header("whsec_someone_else", T, &body);
    assert_eq!(
        problem(stripe().verify_webhook(Some(&header), &body, at(T))),
        SignatureProblem::Mismatch
    );
}

#[test]
fn a_replay_older_than_the_tolerance_is_rejected() {
    let body = fixture("checkout.session.completed");
    let header = signature_header(SECRET, T, &body);
    assert!(stripe()
        .verify_webhook(Some(&header), &body, at(T + 300))
        .is_ok());
    assert_eq!(
        problem(stripe().verify_webhook(Some(&header), &body, at(T + 301))),
        SignatureProblem::Stale
    );
}

#[test]
fn a_timestamp_too_far_in_the_future_is_rejected() {
    let body = fixture("checkout.session.completed");
    let header = signature_header(SECRET, T + 301, &body);
    assert_eq!(
        problem(stripe().verify_webhook(Some(&header), &body, at(T))),
        SignatureProblem::Stale
    );
    let header = signature_header(SECRET, T + 300, &body);
    assert!(stripe().verify_webhook(Some(&header), &body, at(T)).is_ok());
}

#[test]
fn a_stale_forgery_is_reported_as_a_forgery() {
    let body = fixture("checkout.session.completed");
    let header = signature_header("whsec_someone_else", T - 3600, &body);
    assert_eq!(
        problem(stripe().verify_webhook(Some(&header), &body, at(T))),
        SignatureProblem::Mismatch
    );
}

#[test]
fn any_one_matching_v1_is_enough_while_secrets_roll() {
    let body = fixture("checkout.session.completed");
    let good = signature_header(SECRET, T, &body);
    let good_v1 = good.split_once(",v1=").unwrap().1;
    let old = signature_header("whsec_old_secret", T, &body);
    let old_v1 = old.split_once(",v1=").unwrap().1;
    let header = format!("t={T}, v1={old_v1}, v1=not-hex, v1={good_v1}, v0={old_v1}");
    assert!(stripe().verify_webhook(Some(&header), &body, at(T)).is_ok());
    let header = format!("t={T},v1={old_v1},v0={good_v1}");
    assert_eq!(
        problem(stripe().verify_webhook(Some(&header), &body, at(T))),
        SignatureProblem::Mismatch,
        "v0 is not a scheme we accept"
    );
}

#[test]
fn a_missing_or_unreadable_header_is_rejected() {
    let body = fixture("checkout.session.completed");
    let stripe = stripe();
    assert_eq!(
        problem(stripe.verify_webhook(None, &body, at(T))),
        SignatureProblem::Missing
    );
    let good = signature_header(SECRET, T, &body);
    let good_v1 = good.split_once(",v1=").unwrap().1;
    for header in [
        String::new(),
        "garbage".to_owned(),
        format!("v1={good_v1}"),
        format!("t=soon,v1={good_v1}"),
        format!("t={T},t={T},v1={good_v1}"),
        format!("t={T},v0={good_v1}"),
    ] {
        assert_eq!(
            problem(stripe.verify_webhook(Some(&header), &body, at(T))),
            SignatureProblem::Unreadable,
            "{header}"
        );
    }
}

#[test]
fn a_signed_body_that_is_not_json_is_malformed() {
    let header = signature_header(SECRET, T, b"not json");
    assert!(matches!(
        stripe().verify_webhook(Some(&header), b"not json", at(T)),
        Err(PaymentError::Malformed(_))
    ));
}

#[test]
fn a_paid_checkout_is_a_paid_notice_in_micro_units() {
    assert_eq!(
        Stripe::notice(&event("checkout.session.completed")).unwrap(),
        Some(PaymentNotice::Paid {
            order_id: "ord_01HZX3Q8N4".into(),
            provider_ref: "cs_test_a1b2c3d4e5f6g7h8i9j0".into(),
            provider_event: "evt_1PQx2bCompleted".into(),
            amount: Money(25_000_000),
            currency: "USD".into(),
            paid_at: at(1_718_000_420),
        })
    );
}

#[test]
fn a_checkout_completed_with_a_delayed_method_settles_nothing_yet() {
    assert_eq!(
        Stripe::notice(&event("checkout.session.completed.unpaid")).unwrap(),
        None
    );
    let mut free = event("checkout.session.completed");
    free["data"]["object"]["payment_status"] = json!("no_payment_required");
    assert_eq!(Stripe::notice(&free).unwrap(), None);
}

#[test]
fn a_delayed_payment_that_succeeds_is_paid() {
    let notice = Stripe::notice(&event("checkout.session.async_payment_succeeded")).unwrap();
    assert_eq!(
        notice,
        Some(PaymentNotice::Paid {
            order_id: "ord_01HZX3QDELAY".into(),
            provider_ref: "cs_test_delayed0000000000001".into(),
            provider_event: "evt_1PQx2dDelayedPaid".into(),
            amount: Money(25_000_000),
            currency: "USD".into(),
            paid_at: at(1_718_259_700),
        })
    );
}

#[test]
fn a_delayed_payment_that_fails_is_failed() {
    assert_eq!(
        Stripe::notice(&event("checkout.session.async_payment_failed")).unwrap(),
        Some(PaymentNotice::Failed {
            order_id: "ord_01HZX3QDELAY".into(),
            provider_ref: "cs_test_delayed0000000000001".into(),
            provider_event: "evt_1PQx2eDelayedFailed".into(),
            reason: "the delayed payment failed".into(),
        })
    );
}

#[test]
fn an_expired_checkout_names_its_order_through_metadata() {
    // The fixture has no client_reference_id, only metadata.order_id.
    assert_eq!(
        Stripe::notice(&event("checkout.session.expired")).unwrap(),
        Some(PaymentNotice::Expired {
            order_id: "ord_01HZX3QEXPIRE".into(),
            provider_ref: "cs_test_expired00000000000001".into(),
            provider_event: "evt_1PQx2fExpired".into(),
        })
    );
}

#[test]
fn other_events_say_nothing_about_orders() {
    assert_eq!(
        Stripe::notice(&event("payment_intent.succeeded")).unwrap(),
        None
    );
    let mut other = event("checkout.session.expired");
    other["type"] = json!("checkout.session.updated");
    assert_eq!(Stripe::notice(&other).unwrap(), None);
}

#[test]
fn zero_decimal_amounts_are_read_in_whole_units() {
    let mut paid = event("checkout.session.completed");
    paid["data"]["object"]["currency"] = json!("jpy");
    paid["data"]["object"]["amount_total"] = json!(3000);
    match Stripe::notice(&paid).unwrap() {
        Some(PaymentNotice::Paid {
            amount, currency, ..
        }) => {
            assert_eq!(amount, Money(3_000_000_000));
            assert_eq!(currency, "JPY");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_paid_event_missing_what_we_need_is_malformed() {
    let damage: [(&str, Value); 5] = [
        ("/data/object/amount_total", Value::Null),
        ("/data/object/amount_total", json!(-5)),
        ("/data/object/currency", Value::Null),
        ("/data/object/id", Value::Null),
        ("/created", json!("yesterday")),
    ];
    for (pointer, replacement) in damage {
        let mut paid = event("checkout.session.completed");
        *paid.pointer_mut(pointer).unwrap() = replacement;
        assert!(
            matches!(Stripe::notice(&paid), Err(PaymentError::Malformed(_))),
            "{pointer}"
        );
    }
    let mut orphan = event("checkout.session.completed");
    orphan["data"]["object"]["client_reference_id"] = Value::Null;
    orphan["data"]["object"]["metadata"] = json!({});
    assert!(matches!(
        Stripe::notice(&orphan),
        Err(PaymentError::Malformed(_))
    ));
    let mut not_a_session = event("checkout.session.completed");
    not_a_session["data"]["object"]["object"] = json!("payment_intent");
    assert!(matches!(
        Stripe::notice(&not_a_session),
        Err(PaymentError::Malformed(_))
    ));
}

#[test]
fn an_async_success_that_is_not_paid_is_malformed_not_credited() {
    let mut odd = event("checkout.session.async_payment_succeeded");
    odd["data"]["object"]["payment_status"] = json!("unpaid");
    assert!(matches!(
        Stripe::notice(&odd),
        Err(PaymentError::Malformed(_))
    ));
}

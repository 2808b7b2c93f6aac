//! Stripe's webhooks: the `Stripe-Signature` scheme, and the Checkout events we act on.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 under the endpoint's signing secret and
//! sends `Stripe-Signature: t=<unix seconds>,v1=<hex>`; while a secret is being rolled there is
//! one `v1` per secret, and test-mode events may add a `v0`, which we ignore. The signature
//! is checked on the raw bytes, before any JSON parsing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use super::{from_minor_units, Stripe};
use crate::payments::{PaymentError, PaymentNotice, SignatureProblem};

impl Stripe {
    /// Checks a webhook's `Stripe-Signature` header against its raw body and returns the event.
    /// Any matching `v1` signature is enough; the timestamp must be within the configured
    /// tolerance of `now` in either direction, so a captured request cannot be replayed later.
    pub fn verify_webhook(
        &self,
        signature_header: Option<&str>,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Value, PaymentError> {
        verify_signature(
            self.config.webhook_secret.expose(),
            self.config.tolerance,
            signature_header,
            payload,
            now,
        )?;
        serde_json::from_slice(payload)
            .map_err(|error| PaymentError::Malformed(format!("webhook body is not JSON: {error}")))
    }

    /// What a verified event says about an order, if anything: `Ok(None)` for events that do
    /// not settle an order (other types, or a checkout completed with a delayed payment method
    /// still pending — its `async_payment_*` event follows).
    pub fn notice(event: &Value) -> Result<Option<PaymentNotice>, PaymentError> {
        let kind = text(event, "/type")?;
        if !kind.starts_with("checkout.session.") {
            return Ok(None);
        }
        let provider_event = text(event, "/id")?.to_owned();
        let session = event
            .pointer("/data/object")
            .filter(|object| {
                object.get("object").and_then(Value::as_str) == Some("checkout.session")
            })
            .ok_or_else(|| malformed(format!("{kind} without a checkout.session object")))?;
        let provider_ref = text(session, "/id")?.to_owned();
        let payment_status = session.get("payment_status").and_then(Value::as_str);
        let notice = match kind {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                match payment_status {
                    Some("paid") => PaymentNotice::Paid {
                        order_id: order_id(session)?,
                        provider_ref,
                        provider_event,
                        amount: amount_total(session)?,
                        currency: text(session, "/currency")?.to_ascii_uppercase(),
                        paid_at: created(event)?,
                    },
                    // `unpaid`: a delayed method (bank debit) still settling. Also
                    // `no_payment_required`: nothing was paid, so there is nothing to credit.
                    Some("unpaid" | "no_payment_required")
                        if kind == "checkout.session.completed" =>
                    {
                        return Ok(None)
                    }
                    other => {
                        return Err(malformed(format!("{kind} with payment_status {other:?}")))
                    }
                }
            }
            "checkout.session.async_payment_failed" => PaymentNotice::Failed {
                order_id: order_id(session)?,
                provider_ref,
                provider_event,
                reason: "the delayed payment failed".to_owned(),
            },
            "checkout.session.expired" => PaymentNotice::Expired {
                order_id: order_id(session)?,
                provider_ref,
                provider_event,
            },
            _ => return Ok(None),
        };
        Ok(Some(notice))
    }
}

/// A `Stripe-Signature` header value for `payload` signed at `timestamp`: what Stripe sends,
/// and what the fake Stripe and tests use to sign events.
pub fn signature_header(webhook_secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let tag = mac(webhook_secret, timestamp, payload)
        .finalize()
        .into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

fn mac(secret: &str, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The parts of a `Stripe-Signature` header we use.
struct SignatureHeader<'a> {
    timestamp: i64,
    v1: Vec<&'a str>,
}

fn parse_header(header: &str) -> Option<SignatureHeader<'_>> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for (key, value) in header
        .split(',')
        .filter_map(|item| item.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
    {
        match key {
            // Two timestamps would make "which one was signed" ambiguous.
            "t" if timestamp.is_some() => return None,
            "t" => timestamp = Some(value.parse::<i64>().ok()?),
            "v1" => v1.push(value),
            _ => {}
        }
    }
    (!v1.is_empty()).then_some(SignatureHeader {
        timestamp: timestamp?,
        v1,
    })
}

fn verify_signature(
    secret: &str,
    tolerance: Duration,
    header: Option<&str>,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<(), PaymentError> {
    let header = header.ok_or(PaymentError::Signature(SignatureProblem::Missing))?;
    let header =
        parse_header(header).ok_or(PaymentError::Signature(SignatureProblem::Unreadable))?;
    let expected = mac(secret, header.timestamp, payload)
        .finalize()
        .into_bytes();
    // Every candidate is compared in constant time, and all of them are compared, so the
    // timing says nothing about how close a forgery came.
    let matched = header
        .v1
        .iter()
        .filter_map(|candidate| hex::decode(candidate).ok())
        .fold(Choice::from(0), |matched, candidate| {
            matched | expected.as_slice().ct_eq(&candidate)
        });
    if !bool::from(matched) {
        return Err(PaymentError::Signature(SignatureProblem::Mismatch));
    }
    if now.timestamp().abs_diff(header.timestamp) > tolerance.as_secs() {
        return Err(PaymentError::Signature(SignatureProblem::Stale));
    }
    Ok(())
}

fn malformed(message: String) -> PaymentError {
    PaymentError::Malformed(message)
}

/// A non-empty string at `pointer`.
fn text<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, PaymentError> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| malformed(format!("no text at {pointer}")))
}

/// Our order id: `client_reference_id`, or `metadata.order_id` when a session was made without
/// one (both are set by `create_checkout`).
fn order_id(session: &Value) -> Result<String, PaymentError> {
    text(session, "/client_reference_id")
        .or_else(|_| text(session, "/metadata/order_id"))
        .map(str::to_owned)
        .map_err(|_| malformed("session has no client_reference_id or metadata.order_id".into()))
}

fn amount_total(session: &Value) -> Result<modelrouter_domain::Money, PaymentError> {
    let minor = session
        .get("amount_total")
        .and_then(Value::as_i64)
        .filter(|minor| *minor >= 0)
        .ok_or_else(|| malformed("session has no non-negative integer amount_total".into()))?;
    from_minor_units(minor, text(session, "/currency")?)
}

fn created(event: &Value) -> Result<DateTime<Utc>, PaymentError> {
    event
        .get("created")
        .and_then(Value::as_i64)
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .ok_or_else(|| malformed("event has no created timestamp".into()))
}

#[cfg(test)]
mod tests;

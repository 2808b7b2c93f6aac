//! Stripe Checkout: a hosted payment page per order (`create_checkout`), and the signed
//! webhooks that say how it ended (`verify_webhook`, `notice`).
//!
//! Transport only: the form Stripe's API takes, its error shape, its signature scheme and its
//! event shapes. `amount` converts our micro-units to the currency's minor unit exactly;
//! `webhook` verifies and reads events. `crate::mock::stripe` is a fake of the same API.

mod amount;
mod refund;
mod webhook;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde_json::Value;

pub use amount::{from_minor_units, minor_unit_exponent, to_minor_units};
pub use refund::RefundOrder;
pub use webhook::signature_header;

use super::{Checkout, CheckoutRequest, PaymentError};
use crate::crypto::Secret;

pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// How far a webhook's signed timestamp may be from our clock (Stripe's libraries use 300 s).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// A create that has not answered by then is reported unreachable; retrying it is safe
/// because of the idempotency key.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// `https://api.stripe.com`, or the fake's address in tests and demos.
    pub api_base: String,
    /// The secret API key, `sk_live_...` or `sk_test_...`.
    pub secret_key: Secret,
    /// The webhook endpoint's signing secret, `whsec_...`.
    pub webhook_secret: Secret,
    pub tolerance: Duration,
}

impl StripeConfig {
    /// The real API with the default webhook tolerance.
    pub fn new(secret_key: Secret, webhook_secret: Secret) -> Self {
        StripeConfig {
            api_base: DEFAULT_API_BASE.to_owned(),
            secret_key,
            webhook_secret,
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

/// A Stripe account as a payment provider.
#[derive(Clone, Debug)]
pub struct Stripe {
    config: StripeConfig,
    http: reqwest::Client,
}

impl Stripe {
    /// `http` is the shared, pooled client (`upstream::http_client`).
    pub fn new(config: StripeConfig, http: reqwest::Client) -> Self {
        Stripe { config, http }
    }

    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// Creates a Checkout Session for one order and returns where to send the customer.
    ///
    /// The order id is the `Idempotency-Key`, so a retried create (after a timeout, say)
    /// returns the session the first attempt made instead of a second one.
    pub async fn create_checkout(&self, req: &CheckoutRequest) -> Result<Checkout, PaymentError> {
        let form = checkout_form(req, Utc::now())?;
        let url = format!(
            "{}/v1/checkout/sessions",
            self.config.api_base.trim_end_matches('/')
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(self.config.secret_key.expose())
            .header("Idempotency-Key", &req.order_id)
            .timeout(REQUEST_TIMEOUT)
            .form(&form)
            .send()
            .await
            .map_err(|error| PaymentError::Unreachable(error.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| PaymentError::Unreachable(error.to_string()))?;
        if !status.is_success() {
            return Err(PaymentError::Provider {
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        let session: Value = serde_json::from_slice(&body).map_err(|error| {
            PaymentError::Malformed(format!("checkout session is not JSON: {error}"))
        })?;
        let field = |name: &str| {
            session
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| PaymentError::Malformed(format!("checkout session has no {name}")))
        };
        Ok(Checkout {
            provider_ref: field("id")?,
            redirect_url: field("url")?,
        })
    }
}

/// The form body of `POST /v1/checkout/sessions`: one line item priced inline.
fn checkout_form(
    req: &CheckoutRequest,
    now: DateTime<Utc>,
) -> Result<Vec<(&'static str, String)>, PaymentError> {
    if !req.amount.is_positive() {
        return Err(PaymentError::Amount(format!(
            "a checkout must charge a positive amount, not {}",
            req.amount
        )));
    }
    let unit_amount = to_minor_units(req.amount, &req.currency)?;
    let mut form = vec![
        ("mode", "payment".to_owned()),
        (
            "line_items[0][price_data][currency]",
            req.currency.to_ascii_lowercase(),
        ),
        (
            "line_items[0][price_data][unit_amount]",
            unit_amount.to_string(),
        ),
        (
            "line_items[0][price_data][product_data][name]",
            req.description.clone(),
        ),
        ("line_items[0][quantity]", "1".to_owned()),
        ("success_url", req.success_url.clone()),
        ("cancel_url", req.cancel_url.clone()),
        ("client_reference_id", req.order_id.clone()),
        ("metadata[order_id]", req.order_id.clone()),
        ("metadata[tenant_id]", req.tenant_id.clone()),
    ];
    // Stripe refuses an empty email; without one the page asks the customer for it.
    if !req.customer_email.is_empty() {
        form.push(("customer_email", req.customer_email.clone()));
    }
    if let Some(expires_at) = expires_at_param(req.expires_at, now) {
        form.push(("expires_at", expires_at.to_string()));
    }
    Ok(form)
}

/// Stripe accepts an `expires_at` between 30 minutes and 24 hours after it receives the
/// request; a minute's margin covers the request's travel time and clock skew.
const EXPIRY_MARGIN: TimeDelta = TimeDelta::minutes(1);

/// The `expires_at` to send for an order that expires at `expires_at`, clamped into Stripe's
/// range. Past the range we send nothing: Stripe's default is the 24-hour maximum, and an
/// absent parameter stays the same when the create is retried, where a clamped "now + 24 h"
/// would differ and make Stripe refuse the idempotent retry. Below the range the clamped value
/// is rounded up to a whole minute so retries within that minute send the same parameters.
fn expires_at_param(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
    if expires_at >= now + TimeDelta::hours(24) - EXPIRY_MARGIN {
        return None;
    }
    let earliest = now + TimeDelta::minutes(30) + EXPIRY_MARGIN;
    let earliest = earliest.timestamp() + i64::from((60 - earliest.second()) % 60);
    Some(expires_at.timestamp().max(earliest))
}

/// Stripe's `{"error": {"message": ...}}`, or the start of whatever else came back.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| value.pointer("/error/message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            match text.trim() {
                "" => "no error message".to_owned(),
                text => text.chars().take(300).collect(),
            }
        })
}

#[cfg(test)]
mod tests;

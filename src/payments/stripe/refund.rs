//! Refunds of Checkout payments: the session's payment intent (`GET
//! /v1/checkout/sessions/{id}`), then `POST /v1/refunds` for part or all of it.
//!
//! The refund id the operator's form carries is the `Idempotency-Key`, so a refund sent again
//! (after a timeout, or because the order could not be updated afterwards) makes no second
//! refund at Stripe.

use modelrouter_domain::Money;
use serde_json::Value;

use super::{error_message, to_minor_units, Stripe, REQUEST_TIMEOUT};
use crate::payments::PaymentError;

/// One refund to ask Stripe for.
pub struct RefundOrder<'a> {
    /// The Checkout Session the order was paid through (the order's provider reference).
    pub session_id: &'a str,
    pub amount: Money,
    pub currency: &'a str,
    pub order_id: &'a str,
    pub refund_id: &'a str,
}

impl Stripe {
    /// Refunds part or all of a paid Checkout Session; returns Stripe's refund id.
    pub async fn refund(&self, refund: &RefundOrder<'_>) -> Result<String, PaymentError> {
        let session = self
            .get(&format!("/v1/checkout/sessions/{}", refund.session_id))
            .await?;
        let intent = session
            .get("payment_intent")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                PaymentError::Malformed("the checkout session has no payment intent".into())
            })?;
        let form = [
            ("payment_intent", intent.to_string()),
            (
                "amount",
                to_minor_units(refund.amount, refund.currency)?.to_string(),
            ),
            ("metadata[order_id]", refund.order_id.to_string()),
            ("metadata[refund_id]", refund.refund_id.to_string()),
        ];
        let url = format!("{}/v1/refunds", self.config.api_base.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .bearer_auth(self.config.secret_key.expose())
            .header("Idempotency-Key", format!("refund-{}", refund.refund_id))
            .timeout(REQUEST_TIMEOUT)
            .form(&form)
            .send()
            .await
            .map_err(|error| PaymentError::Unreachable(error.to_string()))?;
        let created = read(response).await?;
        created
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| PaymentError::Malformed("the refund has no id".into()))
    }

    async fn get(&self, path: &str) -> Result<Value, PaymentError> {
        let url = format!("{}{path}", self.config.api_base.trim_end_matches('/'));
        let response = self
            .http
            .get(url)
            .bearer_auth(self.config.secret_key.expose())
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|error| PaymentError::Unreachable(error.to_string()))?;
        read(response).await
    }
}

/// A successful answer's JSON body, or the provider's error.
async fn read(response: reqwest::Response) -> Result<Value, PaymentError> {
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
    serde_json::from_slice(&body)
        .map_err(|error| PaymentError::Malformed(format!("Stripe's answer is not JSON: {error}")))
}

//! Payment providers: how a tenant's top-up order becomes a hosted checkout page, and how the
//! provider's signed webhook becomes a [`PaymentNotice`] about that order.
//!
//! Architecture Invariant: a provider module holds transport and wire shapes only. It never
//! credits a balance, never touches the store and never decides whether a notice is new: the
//! caller matches a notice to its order (by `order_id` and `provider_ref`), compares amounts and
//! deduplicates by `provider_event`. Amounts are `Money` (integer micro-units), never floats.

pub mod stripe;

use chrono::{DateTime, Utc};
use modelrouter_domain::Money;

/// What the gateway asks a provider for: a hosted page where the customer pays one order.
#[derive(Clone, Debug)]
pub struct CheckoutRequest {
    pub order_id: String,
    pub tenant_id: String,
    pub customer_email: String,
    pub amount: Money,
    /// ISO 4217, e.g. `USD`.
    pub currency: String,
    pub description: String,
    pub success_url: String,
    pub cancel_url: String,
    pub expires_at: DateTime<Utc>,
}

/// A created checkout: where to send the customer, and the provider's name for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    /// The provider's id of the checkout, e.g. `cs_test_...`.
    pub provider_ref: String,
    pub redirect_url: String,
}

/// What a verified webhook says about an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentNotice {
    Paid {
        order_id: String,
        provider_ref: String,
        /// The provider's event id: the same payment may be announced more than once.
        provider_event: String,
        amount: Money,
        /// ISO 4217, upper case.
        currency: String,
        paid_at: DateTime<Utc>,
    },
    Failed {
        order_id: String,
        provider_ref: String,
        provider_event: String,
        reason: String,
    },
    Expired {
        order_id: String,
        provider_ref: String,
        provider_event: String,
    },
}

impl PaymentNotice {
    /// The order the notice names and the provider's checkout it is about.
    pub fn order_and_checkout(&self) -> (&str, &str) {
        match self {
            PaymentNotice::Paid {
                order_id,
                provider_ref,
                ..
            }
            | PaymentNotice::Failed {
                order_id,
                provider_ref,
                ..
            }
            | PaymentNotice::Expired {
                order_id,
                provider_ref,
                ..
            } => (order_id, provider_ref),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The webhook is not provably from the provider: treat it as forged, answer 400.
    #[error("webhook signature rejected: {0}")]
    Signature(SignatureProblem),
    /// The provider sent something we cannot read (a bug on one side, not the customer's).
    #[error("malformed payment provider data: {0}")]
    Malformed(String),
    /// The provider answered with an error.
    #[error("payment provider refused the request (HTTP {status}): {message}")]
    Provider { status: u16, message: String },
    /// The provider could not be reached or did not answer in time.
    #[error("payment provider unreachable: {0}")]
    Unreachable(String),
    /// The amount cannot be charged as asked, e.g. it has more decimals than the currency.
    #[error("amount cannot be charged: {0}")]
    Amount(String),
}

impl PaymentError {
    /// Whether trying the same request again may succeed (provider calls are idempotent).
    pub fn is_retryable(&self) -> bool {
        match self {
            PaymentError::Unreachable(_) => true,
            PaymentError::Provider { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Why a webhook signature was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header has no timestamp or no signature of a known scheme")]
    Unreadable,
    #[error("no signature matches the payload")]
    Mismatch,
    #[error("the signature timestamp is outside the tolerance (a replay or a skewed clock)")]
    Stale,
}

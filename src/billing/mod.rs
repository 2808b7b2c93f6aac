//! Money coming in: top-up orders through any payment method, payment webhooks, prepaid codes,
//! and the housekeeping that expires stale orders and finishes interrupted credits.
//!
//! Architecture invariant: a balance is credited only through the Account aggregate with the
//! order's or code's reference, so whatever path reaches it — the webhook, the sandbox page, an
//! operator, the reconciler — and however often, each payment is credited once.

pub mod operator;
pub mod orders;
pub mod refunds;
pub mod webhook;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

use crate::gateway::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/webhooks/stripe", post(webhook::stripe))
}

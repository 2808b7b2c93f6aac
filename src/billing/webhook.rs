//! `POST /webhooks/stripe`: Stripe's signed events about checkouts. The signature is checked on
//! the raw body before anything is read from it; a verified event becomes a confirmation,
//! failure or expiry of its order. Answers: 200 when handled or deliberately ignored (Stripe
//! stops retrying), 400 for a bad signature or unreadable event, 500 when the store failed (Stripe
//! retries later, and every step is idempotent).
//!
//! A signature proves only that Stripe sent the event, not that it is about the order it names:
//! other integrations on the same Stripe account (a Payment Link, say) may set any
//! `client_reference_id`. So an event settles an order only when the order is paid by card and
//! the event's Checkout session is the one created for that order (`CheckoutCreated`); the
//! amount and currency are then compared by the order itself (a difference is flagged, never
//! credited). A bank-transfer or sandbox order is never settled by a Stripe event.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::recharge::PaymentMethod;
use serde_json::json;

use super::orders::{self, Confirmation, Confirmed, TopUpError};
use crate::gateway::{AppState, RequestId};
use crate::payments::stripe::Stripe;
use crate::payments::PaymentNotice;

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

pub async fn stripe(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(stripe) = &state.stripe else {
        return answer(StatusCode::NOT_FOUND, "Stripe is not configured");
    };
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let event = match stripe.verify_webhook(signature, &body, Utc::now()) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "Stripe webhook refused");
            return answer(StatusCode::BAD_REQUEST, &error.to_string());
        }
    };
    let notice = match Stripe::notice(&event) {
        Ok(Some(notice)) => notice,
        Ok(None) => return answer(StatusCode::OK, "ignored"),
        Err(error) => {
            tracing::warn!(%error, "Stripe event unreadable");
            return answer(StatusCode::BAD_REQUEST, &error.to_string());
        }
    };
    match addresses_its_order(&state, &notice).await {
        Ok(true) => {}
        Ok(false) => {
            let (order_id, provider_ref) = notice.order_and_checkout();
            tracing::warn!(
                order_id,
                provider_ref,
                "Stripe event about a checkout session that is not its order's own; ignored"
            );
            return answer(StatusCode::OK, "not this order's checkout");
        }
        // An order that is not ours (another platform on the same Stripe account): nothing to
        // retry.
        Err(TopUpError::NotFound) => return answer(StatusCode::OK, "no such order"),
        Err(error) => {
            tracing::error!(%error, "Stripe webhook not handled; Stripe will retry");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, "try again later");
        }
    }
    let metadata = Metadata::new(&Actor::System).request_id(&request.id);
    let handled = match notice {
        PaymentNotice::Paid {
            order_id,
            provider_ref,
            provider_event,
            amount,
            currency,
            paid_at,
        } => {
            let confirmation = Confirmation {
                amount,
                currency,
                provider_ref,
                provider_event,
                paid_at,
                confirmed_by: "stripe".into(),
            };
            orders::confirm(&state.commands, &order_id, confirmation, &metadata)
                .await
                .map(|outcome| {
                    if outcome == Confirmed::Refused {
                        tracing::error!(order_id, "Stripe reported a payment that differs from the order; flagged, not credited");
                    }
                })
        }
        PaymentNotice::Failed {
            order_id,
            provider_event,
            reason,
            ..
        } => {
            orders::fail(
                &state.commands,
                &order_id,
                reason,
                Some(provider_event),
                &metadata,
            )
            .await
        }
        PaymentNotice::Expired {
            order_id,
            provider_event,
            ..
        } => {
            // The checkout can no longer be paid. The order expires if its own time has come,
            // and fails otherwise (Stripe's checkout may end before the order would).
            orders::expire(&state.commands, &order_id, Utc::now(), &metadata)
                .await
                .and(
                    orders::fail(
                        &state.commands,
                        &order_id,
                        "the checkout expired".into(),
                        Some(provider_event),
                        &metadata,
                    )
                    .await,
                )
        }
    };
    match handled {
        Ok(()) => answer(StatusCode::OK, "handled"),
        // An order that is not ours (another platform on the same Stripe account): nothing to
        // retry.
        Err(TopUpError::NotFound) => answer(StatusCode::OK, "no such order"),
        Err(error) => {
            tracing::error!(%error, "Stripe webhook not handled; Stripe will retry");
            answer(StatusCode::INTERNAL_SERVER_ERROR, "try again later")
        }
    }
}

/// Whether the notice is about its order's own Checkout session: the order was placed to be
/// paid by card and its recorded session is the one the event describes.
async fn addresses_its_order(state: &AppState, notice: &PaymentNotice) -> Result<bool, TopUpError> {
    let (order_id, provider_ref) = notice.order_and_checkout();
    let order = state.commands.recharges.load(order_id).await?;
    if !order.is_placed() {
        return Err(TopUpError::NotFound);
    }
    Ok(order.method() == Some(PaymentMethod::Stripe) && order.provider_ref() == Some(provider_ref))
}

//! The fake's refunds: reading a Checkout Session back (`GET /v1/checkout/sessions/{id}`) and
//! `POST /v1/refunds` against a paid session's payment intent — at most what was paid in all,
//! replayed (not repeated) under the same idempotency key, as Stripe does.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::Utc;
use serde_json::{json, Value};

use super::{authenticate, header_text, lock, new_id, ApiError, Shared};

pub(super) async fn retrieve_session(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(error) = authenticate(&shared, &headers) {
        return error.into_response();
    }
    let state = lock(&shared.state);
    match state
        .sessions
        .iter()
        .find(|entry| entry.session["id"] == id)
    {
        Some(entry) => Json(entry.session.clone()).into_response(),
        None => ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            message: format!("No such checkout.session: '{id}'"),
            param: Some("id".into()),
        }
        .into_response(),
    }
}

pub(super) async fn create_refund(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if let Err(error) = authenticate(&shared, &headers) {
        return error.into_response();
    }
    let Ok(Form(params)) = form else {
        return ApiError::invalid("Invalid request body: expected a form.", None).into_response();
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let key = header_text(&headers, "idempotency-key");
    let mut state = lock(&shared.state);
    if state.refunds_down {
        return ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "api_error",
            message: "An error occurred with our connection to Stripe.".into(),
            param: None,
        }
        .into_response();
    }
    if let Some(key) = &key {
        if let Some((_, refund)) = state.refund_replies.iter().find(|(k, _)| k == key) {
            let mut response = Json(refund.clone()).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return response;
        }
    }
    let Some(intent) = param("payment_intent") else {
        return ApiError::missing("payment_intent").into_response();
    };
    let Some(session) = state
        .sessions
        .iter()
        .map(|entry| &entry.session)
        .find(|session| session["payment_intent"] == intent.as_str())
        .cloned()
    else {
        return ApiError::invalid(
            format!("No such payment_intent: '{intent}'"),
            Some("payment_intent"),
        )
        .into_response();
    };
    let paid = session["amount_total"].as_i64().unwrap_or(0);
    let refunded: i64 = state
        .refunds
        .iter()
        .filter(|refund| refund["payment_intent"] == intent.as_str())
        .filter_map(|refund| refund["amount"].as_i64())
        .sum();
    let amount = match param("amount") {
        None => paid - refunded,
        Some(text) => match text.parse::<i64>() {
            Ok(amount) if amount > 0 => amount,
            _ => {
                return ApiError::invalid("Invalid positive integer", Some("amount"))
                    .into_response()
            }
        },
    };
    if refunded + amount > paid {
        return ApiError::invalid(
            format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({})",
                paid - refunded
            ),
            Some("amount"),
        )
        .into_response();
    }
    let metadata: serde_json::Map<String, Value> = params
        .iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((key.to_string(), Value::String(value.clone())))
        })
        .collect();
    let refund = json!({
        "id": new_id("re_"),
        "object": "refund",
        "amount": amount,
        "currency": session["currency"],
        "payment_intent": intent,
        "metadata": metadata,
        "status": "succeeded",
        "created": Utc::now().timestamp(),
    });
    state.refunds.push(refund.clone());
    if let Some(key) = key {
        state.refund_replies.push((key, refund.clone()));
    }
    Json(refund).into_response()
}

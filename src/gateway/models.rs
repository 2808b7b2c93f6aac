//! `GET /v1/models`: the models the key's scope reaches, with customer-facing display names.
//! Only models visible to the key's tenant are listed; a hidden one is "not found".

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use modelrouter_projections::live::ModelEntry;
use serde_json::{json, Value};

use super::auth::authenticate;
use super::{ApiError, AppState};

fn model_json(name: &str, model: &ModelEntry) -> Value {
    json!({
        "id": name,
        "object": "model",
        "created": model.created,
        "owned_by": "modelrouter",
        "display_name": model.details.display_name,
    })
}

/// Anthropic's model object (`GET /v1/models` with an `anthropic-version` header).
fn anthropic_model_json(name: &str, model: &ModelEntry) -> Value {
    let created = chrono::DateTime::from_timestamp(model.created, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "type": "model",
        "id": name,
        "display_name": model.details.display_name,
        "created_at": created,
    })
}

fn wants_anthropic(headers: &HeaderMap) -> bool {
    headers.contains_key("anthropic-version")
}

pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let anthropic = wants_anthropic(&headers);
    let view = state.live.view();
    let key = match authenticate(&view, &headers) {
        Ok(key) => key,
        Err(error) => return error_response(anthropic, &error),
    };
    let models = view
        .models_for(&key.tenant_id)
        .filter(|(name, _)| key.scope.allows(name));
    if anthropic {
        let data: Vec<Value> = models.map(|(n, m)| anthropic_model_json(n, m)).collect();
        let first = data.first().map(|m| m["id"].clone()).unwrap_or(Value::Null);
        let last = data.last().map(|m| m["id"].clone()).unwrap_or(Value::Null);
        return Json(json!({"data": data, "has_more": false, "first_id": first, "last_id": last}))
            .into_response();
    }
    let data: Vec<Value> = models.map(|(n, m)| model_json(n, m)).collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

fn error_response(anthropic: bool, error: &ApiError) -> Response {
    if anthropic {
        super::inbound::Inbound::Anthropic.error_response(error, "")
    } else {
        super::inbound::Inbound::OpenAi.error_response(error, "")
    }
}

pub async fn one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let anthropic = wants_anthropic(&headers);
    let view = state.live.view();
    let found = authenticate(&view, &headers).and_then(|key| {
        let (name, model) = view
            .models_for(&key.tenant_id)
            .find(|(name, _)| **name == id)
            .ok_or_else(|| ApiError::ModelNotFound(id.clone()))?;
        if !key.scope.allows(name) {
            return Err(ApiError::ModelNotAllowed(id.clone()));
        }
        Ok((name, model))
    });
    match found {
        Ok((name, model)) if anthropic => Json(anthropic_model_json(name, model)).into_response(),
        Ok((name, model)) => Json(model_json(name, model)).into_response(),
        Err(error) => error_response(anthropic, &error),
    }
}

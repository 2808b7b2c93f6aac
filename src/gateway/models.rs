//! `GET /v1/models`: the models the key's scope reaches, with customer-facing display names.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use modelrouter_projections::live::{LiveView, ModelEntry};
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

fn visible(view: &LiveView) -> impl Iterator<Item = (&String, &ModelEntry)> {
    view.models
        .iter()
        .filter(|(name, model)| !model.retired && view.routes.contains_key(*name))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let view = state.live.view();
    let key = authenticate(&view, &headers)?;
    let data: Vec<Value> = visible(&view)
        .filter(|(name, _)| key.scope.allows(name))
        .map(|(name, model)| model_json(name, model))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

pub async fn one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let view = state.live.view();
    let key = authenticate(&view, &headers)?;
    let (name, model) = visible(&view)
        .find(|(name, _)| **name == id)
        .ok_or_else(|| ApiError::ModelNotFound(id.clone()))?;
    if !key.scope.allows(name) {
        return Err(ApiError::ModelNotAllowed(id));
    }
    Ok(Json(model_json(name, model)))
}

//! Liveness and readiness.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

pub async fn live() -> Json<Value> {
    Json(json!({"status": "live"}))
}

/// Ready when the event store answers and the in-memory view has caught up with the log.
pub async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let unavailable = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason})),
        )
    };
    let head = match tokio::time::timeout(std::time::Duration::from_secs(2), state.db.head()).await
    {
        Ok(Ok(head)) => head,
        Ok(Err(error)) => return unavailable(format!("event store: {error}")),
        Err(_) => return unavailable("event store did not answer within 2s".into()),
    };
    if !state.live.caught_up() {
        return unavailable("projections are still replaying the event log".into());
    }
    let position = state.live.position();
    let lag = head.position.saturating_sub(position.position).max(0);
    (
        StatusCode::OK,
        Json(json!({
            "status": "ready",
            "store": state.db.backend_name(),
            "position": position.position,
            "head": head.position,
            "lag": lag,
        })),
    )
}

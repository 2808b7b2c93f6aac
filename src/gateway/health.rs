//! Liveness and readiness.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use modelrouter_projections::sql::failures;
use serde_json::{json, Value};

use super::AppState;

pub async fn live() -> Json<Value> {
    Json(json!({"status": "live"}))
}

/// Ready when the event store answers, the in-memory view has caught up with the log, and no SQL
/// projection has left out an event no operator has acknowledged yet (`sql::failures`): such a
/// projection is current for everyone else but wrong for that event's aggregate, which is worth
/// a 503 naming it until someone has looked.
pub async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let unavailable = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason})),
        )
    };
    let live_types =
        modelrouter_projections::Types::Only(modelrouter_projections::live::LIVE_TYPES);
    let head = match tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.db.head_of(live_types),
    )
    .await
    {
        Ok(Ok(head)) => head,
        Ok(Err(error)) => return unavailable(format!("event store: {error}")),
        Err(_) => return unavailable("event store did not answer within 2s".into()),
    };
    if !state.live.caught_up() {
        return unavailable(
            "the in-memory view has not yet applied every key, tenant, model and route \
             committed before this replica started"
                .into(),
        );
    }
    match failures::unacknowledged(&state.db).await {
        Ok(failures) if failures.is_empty() => {}
        Ok(failures) => {
            let reason = failures
                .iter()
                .map(failures::Failure::describe)
                .collect::<Vec<_>>()
                .join("; ");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "reason": reason,
                    "projection_failures": failures,
                })),
            );
        }
        Err(error) => return unavailable(format!("event store: {error}")),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::allowance::Allowances;
    use crate::config::Settings;
    use crate::crypto::MasterKey;
    use crate::live::Live;
    use crate::store::{self, Commands, Spool, SpoolSettings};
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn ready_of(state: Arc<AppState>) -> (StatusCode, Value) {
        let response = crate::gateway::router(state)
            .oneshot(Request::get("/health/ready").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn ready_is_503_with_a_reason_until_replayed_and_when_the_store_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        let commands = Arc::new(Commands::new(db.clone()));
        let settings = SpoolSettings {
            dir: dir.path().join("spool"),
            fsync_every: std::time::Duration::from_millis(10),
            max_backlog: 1 << 20,
            flush_every: std::time::Duration::from_millis(10),
            max_batch: 8,
        };
        let (spool, _task) = Spool::start(settings, "n", db.clone(), Box::new(|_| {})).unwrap();
        let settings = Settings::local(([127, 0, 0, 1], 0).into(), dir.path().to_path_buf());
        let state = Arc::new(AppState {
            db: db.clone(),
            live: Arc::new(Live::default()),
            allowances: Allowances::new(
                "n".into(),
                modelrouter_domain::Money(1),
                commands.clone(),
                std::time::Duration::from_millis(800),
            ),
            commands,
            spool,
            stripe: None,
            http: reqwest::Client::new(),
            master_key: MasterKey::parse(&"33".repeat(32)).unwrap(),
            settings,
        });

        let (status, body) = ready_of(state.clone()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body["reason"].as_str().unwrap().contains("not yet applied"),
            "{body}"
        );

        state.live.catch_up(&db).await.unwrap();
        assert_eq!(ready_of(state.clone()).await.0, StatusCode::OK);

        if let crate::store::Db::Sqlite(pool) = &db {
            pool.close().await;
        }
        let (status, body) = ready_of(state).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body["reason"].as_str().unwrap().contains("event store"),
            "{body}"
        );
    }
}

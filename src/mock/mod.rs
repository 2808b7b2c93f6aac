//! The mock upstream: an OpenAI-compatible chat API with deterministic replies, usage, streaming
//! and scripted faults. Part of the product: `modelrouter mock-upstream`, `serve --demo`, benches.
//!
//! This file holds the public API ([`MockConfig`], [`router`], [`serve`]), the shared state
//! and the small endpoints. The chat endpoint lives in `openai` (replies and usage) and `stream`
//! (server-sent events); the `[mock:...]` directives that script faults live in `faults`.
//!
//! Endpoints:
//! - `POST /v1/chat/completions`: OpenAI Chat Completions, streaming or not.
//! - `GET /v1/models`: a single `mock-model`.
//! - `GET /_mock/requests`: the last 100 chat requests (oldest first) with their
//!   `Authorization` header, so tests can prove what a gateway forwarded;
//!   `DELETE /_mock/requests` clears that log.
//! - `GET /health`: `ok`.
//!
//! Everything is deterministic except `id` and `created`. The hot path takes no lock except a
//! short one to append to the bounded request log.

mod faults;
mod openai;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// How the mock upstream behaves.
#[derive(Clone, Debug, Default)]
pub struct MockConfig {
    /// When `Some`, requests must carry `Authorization: Bearer <this>`, else 401 in the OpenAI
    /// error envelope.
    pub api_key: Option<String>,
}

/// How many chat requests `GET /_mock/requests` remembers.
const LOG_CAPACITY: usize = 100;

/// State shared by every request of one [`router`].
struct Shared {
    config: MockConfig,
    log: Mutex<VecDeque<Value>>,
    fail_counts: faults::FailCounts,
}

type AppState = Arc<Shared>;

impl Shared {
    /// Appends a chat request to the bounded log, dropping the oldest when full.
    fn record(&self, authorization: Option<&str>, body: Value) {
        let entry = json!({ "authorization": authorization, "body": body });
        let mut log = lock(&self.log);
        if log.len() >= LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }
}

/// Locks a mutex, ignoring poisoning: the guarded data stays consistent on every path.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The mock upstream as an axum router (each call gets its own request log and fault counters).
pub fn router(config: MockConfig) -> Router {
    let state: AppState = Arc::new(Shared {
        config,
        log: Mutex::new(VecDeque::with_capacity(LOG_CAPACITY)),
        fail_counts: faults::FailCounts::default(),
    });
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(models))
        .route("/_mock/requests", get(list_requests).delete(clear_requests))
        .route("/health", get(health))
        .fallback(not_found)
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The `Authorization` header as text, if present.
fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(AUTHORIZATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// The 401 to send unless the request carries `Authorization: Bearer <token>` (with the
/// configured key when there is one).
fn auth_failure(config: &MockConfig, authorization: Option<&str>) -> Option<Response> {
    let token = authorization.and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let message = match (token, config.api_key.as_deref()) {
        (None, _) | (Some(""), _) => "You didn't provide an API key. Use `Authorization: Bearer`.",
        (Some(token), Some(expected)) if token != expected => "Incorrect API key provided.",
        _ => return None,
    };
    Some(faults::error_response(
        StatusCode::UNAUTHORIZED,
        message,
        "invalid_request_error",
        Some("invalid_api_key"),
        None,
    ))
}

async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(response) = auth_failure(&state.config, authorization(&headers).as_deref()) {
        return response;
    }
    Json(json!({
        "object": "list",
        "data": [{ "id": "mock-model", "object": "model", "created": 0, "owned_by": "mock" }],
    }))
    .into_response()
}

async fn list_requests(State(state): State<AppState>) -> Json<Vec<Value>> {
    Json(lock(&state.log).iter().cloned().collect())
}

async fn clear_requests(State(state): State<AppState>) -> StatusCode {
    lock(&state.log).clear();
    StatusCode::NO_CONTENT
}

async fn health() -> &'static str {
    "ok"
}

async fn not_found() -> Response {
    faults::error_response(
        StatusCode::NOT_FOUND,
        "Unknown mock endpoint.",
        "invalid_request_error",
        Some("unknown_url"),
        None,
    )
}

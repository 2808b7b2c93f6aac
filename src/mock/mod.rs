//! The mock upstream: a hermetic stand-in for every upstream protocol the gateway speaks, with
//! deterministic replies, usage, streaming, tools and scripted faults. Part of the product:
//! `modelrouter mock-upstream`, `serve --demo`, benches, and the gateway's flow tests.
//!
//! Endpoints (each protocol in its own file, with its own shapes and error envelopes):
//! - `POST /v1/chat/completions`: OpenAI Chat Completions (`openai`, `openai_stream`).
//! - `POST /v1/messages`, `POST /v1/messages/count_tokens`: Anthropic Messages (`anthropic`,
//!   `anthropic_stream`).
//! - `POST /api/v1/services/aigc/text-generation/generation` and
//!   `…/multimodal-generation/generation`: DashScope native (`dashscope`, `dashscope_stream`).
//! - `POST /v1/text/chatcompletion_v2`: MiniMax native (`minimax`, `minimax_stream`).
//! - `GET /v1/models`: a single `mock-model` (OpenAI shape).
//! - `GET /_mock/requests`: the last 100 requests to the protocol endpoints (oldest first), each
//!   `{"path", "authorization", "x-api-key", "headers", "body"}` where `headers` holds the
//!   protocol switches present (`anthropic-version`, `anthropic-beta`, `x-dashscope-sse`,
//!   `accept`), so tests can prove what a gateway forwarded; `DELETE /_mock/requests` clears it.
//! - `GET /health`: `ok`.
//!
//! What the mock answers is protocol-neutral (`reply`: the content and usage model, `faults`:
//! the `[mock:...]` directives); `sse` drives every stream. Everything is deterministic except
//! ids and timestamps. The hot path takes no lock except a short one to append to the bounded
//! request log.

mod anthropic;
mod anthropic_stream;
mod dashscope;
mod dashscope_stream;
mod faults;
mod minimax;
mod minimax_stream;
mod openai;
mod openai_stream;
mod reply;
mod sse;
pub mod stripe;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
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
    /// When `Some`, requests must carry `Authorization: Bearer <this>` (Anthropic: or
    /// `x-api-key: <this>`), else a 401 in the protocol's error envelope (MiniMax: HTTP 200 with
    /// an error `base_resp`).
    pub api_key: Option<String>,
}

/// How many requests `GET /_mock/requests` remembers.
const LOG_CAPACITY: usize = 100;

/// State shared by every request of one [`router`].
struct Shared {
    config: MockConfig,
    log: Mutex<VecDeque<Value>>,
    fail_counts: faults::FailCounts,
}

type AppState = Arc<Shared>;

/// The request headers the log keeps, besides the credentials.
const LOGGED_HEADERS: [&str; 4] = [
    "anthropic-version",
    "anthropic-beta",
    "x-dashscope-sse",
    "accept",
];

impl Shared {
    /// Appends a protocol request to the bounded log, dropping the oldest when full, and returns
    /// its body as JSON (`None` when it is not JSON; the log then keeps it as a string).
    fn record(&self, path: &str, headers: &HeaderMap, body: &Bytes) -> Option<Value> {
        let parsed = serde_json::from_slice::<Value>(body).ok();
        let logged = parsed
            .clone()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into_owned()));
        let switches: serde_json::Map<String, Value> = LOGGED_HEADERS
            .iter()
            .filter_map(|name| Some((name.to_string(), json!(header_text(headers, name)?))))
            .collect();
        let entry = json!({
            "path": path,
            "authorization": header_text(headers, AUTHORIZATION.as_str()),
            "x-api-key": header_text(headers, "x-api-key"),
            "headers": switches,
            "body": logged,
        });
        let mut log = lock(&self.log);
        if log.len() >= LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
        parsed
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
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route(
            "/api/v1/services/aigc/text-generation/generation",
            post(dashscope::text_generation),
        )
        .route(
            "/api/v1/services/aigc/multimodal-generation/generation",
            post(dashscope::multimodal_generation),
        )
        .route(
            "/v1/text/chatcompletion_v2",
            post(minimax::chatcompletion_v2),
        )
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

/// A header as text, if present.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = header_text(headers, AUTHORIZATION.as_str())?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Why a presented key was refused; each protocol words the 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyProblem {
    Missing,
    Wrong,
}

/// Accepts any non-empty key, or only the configured one when there is one.
fn check_key(config: &MockConfig, presented: Option<&str>) -> Result<(), KeyProblem> {
    match (presented, config.api_key.as_deref()) {
        (None, _) | (Some(""), _) => Err(KeyProblem::Missing),
        (Some(key), Some(expected)) if key != expected => Err(KeyProblem::Wrong),
        _ => Ok(()),
    }
}

async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(problem) = check_key(&state.config, bearer_token(&headers).as_deref()) {
        return openai::auth_error(problem);
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

//! The HTTP edge of the inference path for all three customer protocols (OpenAI, Anthropic,
//! DashScope): auth → scope → allowance → route → upstream → meter.
//!
//! Architecture invariant: nothing here waits on the database per request. Keys, scopes,
//! catalog, routes and allowances are in memory; metering goes through the spool.

mod auth;
pub(crate) mod body_deadline;
mod caller;
mod count_tokens;
mod error;
mod health;
mod inbound;
mod metering;
mod models;
pub(crate) mod outbound;
mod pipeline;
mod relay;
#[cfg(test)]
mod relay_tests;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use caller::Caller;
pub use error::ApiError;
pub use relay::replay as replay_stream;

use crate::allowance::Allowances;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::live::Live;
use crate::store::{Commands, Db, Spool};

/// Everything a request handler may need, built once at startup.
pub struct AppState {
    pub db: Db,
    pub live: Arc<Live>,
    pub allowances: Arc<Allowances>,
    /// The command bus, for the portals' writes (the inference path never waits on it).
    pub commands: Arc<Commands>,
    /// The metering spool every call's record goes through.
    pub spool: Spool,
    /// Stripe Checkout, when configured.
    pub stripe: Option<crate::payments::stripe::Stripe>,
    pub http: reqwest::Client,
    pub master_key: MasterKey,
    pub settings: Settings,
}

/// The id of this request (also sent back as `x-request-id`) and the client's address (the
/// [`Caller`]'s: behind trusted proxies, the address they name).
#[derive(Debug, Clone)]
pub struct RequestId {
    pub id: String,
    pub client_ip: Option<String>,
}

pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.settings.max_body_bytes;
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::one))
        .route("/v1/chat/completions", post(pipeline::openai_chat))
        .route("/v1/messages", post(pipeline::anthropic_messages))
        .route(
            "/v1/messages/count_tokens",
            post(count_tokens::count_tokens),
        )
        .route(
            "/api/v1/services/aigc/text-generation/generation",
            post(pipeline::dashscope_generation),
        )
        .route(
            "/api/v1/services/aigc/multimodal-generation/generation",
            post(pipeline::dashscope_generation),
        )
        .merge(crate::portal::routes())
        .merge(crate::admin::routes())
        .merge(crate::agent::routes())
        .merge(crate::billing::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// Unknown paths: a site's not-found page under `/portal`, `/admin` and `/agent`, an
/// OpenAI-style error elsewhere.
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    let path = uri.path();
    let page = ["/portal", "/admin", "/agent"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")));
    if page {
        let site = crate::portal::Site::of_path(path);
        crate::portal::not_found_page(&headers, site).await
    } else {
        axum::response::IntoResponse::into_response(ApiError::NotFound)
    }
}

/// Bodies from this size on are decoded off the async workers (`serde_json` reads some tens of
/// megabytes a second; a worker must never be held for more than a few milliseconds).
pub(crate) const OFFLOAD_BYTES: usize = 64 * 1024;

/// Runs CPU-bound work (decoding a large body, estimating tokens) on the blocking pool, so one
/// caller's work never stalls other requests on the async workers.
pub(crate) async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(%error, "blocking work failed");
        ApiError::Internal
    })
}

/// Gives every request its id and its [`Caller`], and every response the request id — and,
/// when the browser used HTTPS, `Strict-Transport-Security`, so it never falls back to HTTP.
async fn edge(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let id = format!("req_{}", uuid::Uuid::new_v4().simple());
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    let caller = Caller::resolve(
        peer,
        request.headers(),
        &state.settings.edge.trusted_proxies,
    );
    let https = caller.is_https(&state.settings);
    request.extensions_mut().insert(RequestId {
        id: id.clone(),
        client_ip: caller.ip_text(),
    });
    request.extensions_mut().insert(caller);
    let request =
        request.map(|body| body_deadline::limit(body, state.settings.edge.body_read_timeout));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        // OpenAI and DashScope clients read `x-request-id`; Anthropic's read `request-id`.
        response.headers_mut().insert("request-id", value.clone());
        response.headers_mut().insert("x-request-id", value);
    }
    if https {
        response.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

/// One year, this host only: subdomains may be other services the operator does not serve
/// over HTTPS.
const HSTS: &str = "max-age=31536000";

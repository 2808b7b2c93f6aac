//! The providers' JSON API under `/api/admin/providers`: the same actions as the pages in
//! `providers.rs`, with the same rules. A credential goes in and never comes out: responses
//! carry only whether one is set, a short fingerprint and when it was rotated.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use super::providers::{self, NewProvider, ProviderView, TestView};
use super::session::{AdminWriter, SignedInOperator};
use crate::gateway::{AppState, RequestId};
use crate::portal::PortalError;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/providers", get(api_list).post(api_add))
        .route("/api/admin/providers/{id}", get(api_get).patch(api_update))
        .route("/api/admin/providers/{id}/credential", post(api_credential))
        .route("/api/admin/providers/{id}/enable", post(api_enable))
        .route("/api/admin/providers/{id}/disable", post(api_disable))
        .route("/api/admin/providers/{id}/test", post(api_test))
}

async fn shown(state: &AppState, id: &str) -> Result<ProviderView, PortalError> {
    let entry = providers::entry(state, id).await?;
    Ok(ProviderView::of(&state.live.view(), id, &entry))
}

#[utoipa::path(get, path = "/api/admin/providers", tag = "admin-providers",
    responses((status = 200, body = Vec<ProviderView>, description = "Every provider, by name")))]
pub async fn api_list(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
) -> Json<Vec<ProviderView>> {
    Json(providers::all(&state.live.view()))
}

/// A provider to add.
#[derive(Deserialize, ToSchema)]
pub struct NewProviderBody {
    /// A slug: 2–64 lower-case letters, digits and hyphens (e.g. `openai-main`); also the id.
    name: String,
    /// `openai` (OpenAI-compatible), `anthropic`, `dashscope` or `minimax`.
    protocol: String,
    region: String,
    base_url: String,
    /// Write-only: stored encrypted, never returned.
    #[serde(default)]
    credential: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(post, path = "/api/admin/providers", tag = "admin-providers",
    request_body = NewProviderBody,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 201, body = ProviderView),
              (status = 422, description = "Invalid or taken name, protocol, region, base URL or credential")))]
pub async fn api_add(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Json(body): Json<NewProviderBody>,
) -> Result<Response, PortalError> {
    let new = NewProvider {
        name: body.name,
        protocol: body.protocol,
        region: body.region,
        base_url: body.base_url,
        credential: body.credential.unwrap_or_default(),
        enabled: body.enabled,
    };
    let id = providers::add(&state, &operator, &request, new).await?;
    Ok((StatusCode::CREATED, Json(shown(&state, &id).await?)).into_response())
}

#[utoipa::path(get, path = "/api/admin/providers/{id}", tag = "admin-providers",
    params(("id" = String, Path, description = "Provider name")),
    responses((status = 200, body = ProviderView), (status = 404, description = "No such provider")))]
pub async fn api_get(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Path(id): Path<String>,
) -> Result<Json<ProviderView>, PortalError> {
    Ok(Json(shown(&state, &id).await?))
}

/// Settings to change; absent fields stay as they are. The name cannot change.
#[derive(Deserialize, ToSchema)]
pub struct ProviderChange {
    protocol: Option<String>,
    region: Option<String>,
    base_url: Option<String>,
}

#[utoipa::path(patch, path = "/api/admin/providers/{id}", tag = "admin-providers",
    request_body = ProviderChange,
    params(("id" = String, Path, description = "Provider name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = ProviderView), (status = 404, description = "No such provider"),
              (status = 422, description = "Invalid protocol, region or base URL")))]
pub async fn api_update(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<ProviderChange>,
) -> Result<Json<ProviderView>, PortalError> {
    providers::update(
        &state,
        &operator,
        &request,
        &id,
        body.protocol.as_deref(),
        body.region.as_deref(),
        body.base_url.as_deref(),
    )
    .await?;
    Ok(Json(shown(&state, &id).await?))
}

/// A new credential (write-only).
#[derive(Deserialize, ToSchema)]
pub struct NewCredential {
    credential: String,
}

#[utoipa::path(post, path = "/api/admin/providers/{id}/credential", tag = "admin-providers",
    request_body = NewCredential,
    params(("id" = String, Path, description = "Provider name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = ProviderView, description = "Rotated (the same credential again changes nothing)"),
              (status = 404, description = "No such provider"), (status = 422, description = "Empty or malformed credential")))]
pub async fn api_credential(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<NewCredential>,
) -> Result<Json<ProviderView>, PortalError> {
    providers::rotate(&state, &operator, &request, &id, &body.credential).await?;
    Ok(Json(shown(&state, &id).await?))
}

#[utoipa::path(post, path = "/api/admin/providers/{id}/enable", tag = "admin-providers",
    params(("id" = String, Path, description = "Provider name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = ProviderView), (status = 404, description = "No such provider")))]
pub async fn api_enable(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
) -> Result<Json<ProviderView>, PortalError> {
    providers::set_enabled(&state, &operator, &request, &id, true).await?;
    Ok(Json(shown(&state, &id).await?))
}

#[utoipa::path(post, path = "/api/admin/providers/{id}/disable", tag = "admin-providers",
    params(("id" = String, Path, description = "Provider name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = ProviderView, description = "Disabled: no call is routed to it from now on"),
              (status = 404, description = "No such provider")))]
pub async fn api_disable(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
) -> Result<Json<ProviderView>, PortalError> {
    providers::set_enabled(&state, &operator, &request, &id, false).await?;
    Ok(Json(shown(&state, &id).await?))
}

/// Which upstream model to ask; by default that of a route deployment on this provider.
#[derive(Deserialize, ToSchema, Default)]
pub struct TestRequest {
    upstream_model: Option<String>,
}

#[utoipa::path(post, path = "/api/admin/providers/{id}/test", tag = "admin-providers",
    request_body(content = TestRequest, description = "Optional; `{}` tests the default model"),
    params(("id" = String, Path, description = "Provider name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = TestView, description = "The test ran (passed or failed) and was recorded"),
              (status = 404, description = "No such provider"),
              (status = 422, description = "No credential set, or no upstream model to test with")))]
pub async fn api_test(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    body: Option<Json<TestRequest>>,
) -> Result<Json<TestView>, PortalError> {
    let body = body.map(|Json(body)| body).unwrap_or_default();
    let test = super::connection::run(
        &state,
        &operator,
        &request,
        &id,
        body.upstream_model.as_deref(),
    )
    .await?;
    Ok(Json(TestView::of(&test)))
}

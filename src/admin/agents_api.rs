//! Agents in the console as JSON under `/api/admin/agents`: the same actions as the pages of
//! `agents.rs`, which holds the rules they share.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use modelrouter_domain::agent::AgentCommand;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::agents::{
    create, detail, execute, record_payout, reset_password, set_enabled, summaries, AgentDetail,
    AgentSummary, CreatedAgent, NewAgent, NewPayout,
};
use super::session::{AdminWriter, SignedInOperator};
use crate::gateway::{AppState, RequestId};
use crate::portal::PortalError;

pub fn api() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/agents", get(api_list).post(api_create))
        .route("/api/admin/agents/{id}", get(api_get))
        .route("/api/admin/agents/{id}/commission", post(api_rate))
        .route("/api/admin/agents/{id}/disable", post(api_disable))
        .route("/api/admin/agents/{id}/enable", post(api_enable))
        .route("/api/admin/agents/{id}/password", post(api_password))
        .route("/api/admin/agents/{id}/payouts", post(api_payout))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        api_list,
        api_create,
        api_get,
        api_rate,
        api_disable,
        api_enable,
        api_password,
        api_payout
    ),
    tags((name = "admin-agents", description = "Agents (resellers): creation, rates, payouts")),
)]
pub struct Api;

const CSRF: &str = "The session's CSRF token";

#[utoipa::path(get, path = "/api/admin/agents", tag = "admin-agents",
    responses((status = 200, body = Vec<AgentSummary>)))]
pub async fn api_list(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
) -> Result<Json<Vec<AgentSummary>>, PortalError> {
    Ok(Json(summaries(&state).await?))
}

#[utoipa::path(post, path = "/api/admin/agents", tag = "admin-agents", request_body = NewAgent,
    params(("X-CSRF-Token" = String, Header, description = CSRF)),
    responses((status = 201, body = CreatedAgent, description = "Created; the password is shown once"),
        (status = 422, description = "Invalid or taken email or code, or a rate over 100 %")))]
pub async fn api_create(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Json(body): Json<NewAgent>,
) -> Result<Response, PortalError> {
    let created = create(&state, &operator, &request, body).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/api/admin/agents/{id}", tag = "admin-agents",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentDetail), (status = 404, description = "No such agent")))]
pub async fn api_get(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Path(id): Path<String>,
) -> Result<Json<AgentDetail>, PortalError> {
    Ok(Json(detail(&state, &id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct RateChange {
    commission_bps: u32,
}

#[utoipa::path(post, path = "/api/admin/agents/{id}/commission", tag = "admin-agents",
    request_body = RateChange,
    params(("id" = String, Path, description = "Agent id"), ("X-CSRF-Token" = String, Header, description = CSRF)),
    responses((status = 204, description = "Changed; applies to usage settled from now on"),
        (status = 422, description = "Over 100 %")))]
pub async fn api_rate(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<RateChange>,
) -> Result<StatusCode, PortalError> {
    let command = AgentCommand::SetCommission {
        commission_bps: body.commission_bps,
    };
    execute(&state, &operator, &request, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/admin/agents/{id}/disable", tag = "admin-agents",
    params(("id" = String, Path, description = "Agent id"), ("X-CSRF-Token" = String, Header, description = CSRF)),
    responses((status = 204, description = "Disabled: sessions ended, code refers no one")))]
pub async fn api_disable(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
) -> Result<StatusCode, PortalError> {
    set_enabled(&state, &operator, &request, &id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/admin/agents/{id}/enable", tag = "admin-agents",
    params(("id" = String, Path, description = "Agent id"), ("X-CSRF-Token" = String, Header, description = CSRF)),
    responses((status = 204, description = "Enabled")))]
pub async fn api_enable(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
) -> Result<StatusCode, PortalError> {
    set_enabled(&state, &operator, &request, &id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct OneTimePassword {
    password: String,
}

#[utoipa::path(post, path = "/api/admin/agents/{id}/password", tag = "admin-agents",
    params(("id" = String, Path, description = "Agent id"), ("X-CSRF-Token" = String, Header, description = CSRF)),
    responses((status = 200, body = OneTimePassword, description = "A new one-time password; the agent's sessions ended")))]
pub async fn api_password(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
) -> Result<Json<OneTimePassword>, PortalError> {
    let password = reset_password(&state, &operator, &request, &id).await?;
    Ok(Json(OneTimePassword { password }))
}

#[utoipa::path(post, path = "/api/admin/agents/{id}/payouts", tag = "admin-agents",
    request_body = NewPayout,
    params(("id" = String, Path, description = "Agent id"), ("X-CSRF-Token" = String, Header, description = CSRF)),
    responses((status = 204, description = "The month is marked paid"),
        (status = 422, description = "Not a finished month, already paid, or not a positive amount")))]
pub async fn api_payout(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<NewPayout>,
) -> Result<StatusCode, PortalError> {
    record_payout(&state, &operator, &request, &id, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Route bindings in the console: which deployments (provider + upstream model + region,
//! weight, priority tier) serve each public model, the retry and fallback policy, and rollouts
//! — a candidate binding for a sticky share of the API keys, then promote or roll back. Pages
//! under `/admin/routes`, JSON under `/api/admin/routes`.
//!
//! The console checks what the `Route` aggregate cannot see (the model is published, each
//! deployment's provider exists); the aggregate keeps the rules of the binding itself. Every
//! replica applies the events as it tails the log, so a change is used everywhere within a
//! second.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use axum_extra::extract::Form;
use modelrouter_domain::aggregate_types::ROUTE;
use modelrouter_domain::route::{Deployment, RetryOn, RetryPolicy, Rollout, RouteCommand};
use modelrouter_projections::live::{LiveView, RouteEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::session::{AdminWriter, SignedInOperator};
use crate::gateway::{AppState, RequestId};
use crate::portal::account::CsrfForm;
use crate::portal::{render, Chrome, PortalError};

mod page;

pub fn pages() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/routes", get(page::list))
        .route(
            "/admin/routes/{model}",
            get(page::detail).post(page::bind_submit),
        )
        .route("/admin/routes/{model}/rollout", post(page::rollout_submit))
        .route(
            "/admin/routes/{model}/rollout/percent",
            post(page::percent_submit),
        )
        .route(
            "/admin/routes/{model}/rollout/promote",
            post(page::promote_submit),
        )
        .route(
            "/admin/routes/{model}/rollout/rollback",
            post(page::rollback_submit),
        )
}

pub fn api() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/routes", get(api_list))
        .route("/api/admin/routes/{model}", get(api_get).post(api_bind))
        .route(
            "/api/admin/routes/{model}/rollout",
            post(api_start_rollout).patch(api_change_percent),
        )
        .route(
            "/api/admin/routes/{model}/rollout/promote",
            post(api_promote),
        )
        .route(
            "/api/admin/routes/{model}/rollout/rollback",
            post(api_roll_back),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        api_list,
        api_get,
        api_bind,
        api_start_rollout,
        api_change_percent,
        api_promote,
        api_roll_back
    ),
    components(schemas(
        RouteView,
        DeploymentSpec,
        DeploymentView,
        RetrySpec,
        RetryOnSpec,
        RolloutView,
        Binding,
        NewRollout,
        RolloutPercent
    )),
    tags((name = "admin-routes", description = "Console: route bindings, retry and fallback policy, rollouts"))
)]
pub struct Api;

// ---- shapes of the JSON API ----

/// One deployment of a binding as it is set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentSpec {
    /// Provider id (see `/admin/providers`).
    pub provider: String,
    /// The model name the provider knows.
    pub upstream_model: String,
    /// Where the deployment runs, if not in its provider's region.
    #[serde(default)]
    pub region: Option<String>,
    /// Share of traffic within its tier (0 keeps the row but sends it nothing).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Tier: 0 is tried first, higher tiers are fallbacks.
    #[serde(default)]
    pub priority: u32,
}

fn default_weight() -> u32 {
    100
}

/// A deployment as the console shows it: its region resolved, and whether its provider can
/// take calls now.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    provider: String,
    upstream_model: String,
    /// The deployment's region, or its provider's when it names none.
    region: String,
    weight: u32,
    priority: u32,
    /// False when the provider is disabled or unknown: the deployment is skipped.
    provider_enabled: bool,
}

/// Which upstream failures are retried.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct RetryOnSpec {
    /// HTTP 429.
    pub rate_limit: bool,
    /// HTTP 5xx.
    pub server_error: bool,
    /// No answer in time.
    pub timeout: bool,
    /// The connection failed or broke.
    pub connect: bool,
}

/// Retries happen only before the first byte reached the client.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct RetrySpec {
    /// Upstream attempts per call, 1 to 10, the first one included.
    pub max_attempts: u32,
    pub retry_on: RetryOnSpec,
    /// Whether retries may move on to higher (fallback) tiers.
    pub fallback: bool,
    /// Deadline of the whole call up to its first byte, every attempt included (1 to 3600000
    /// ms); absent: each attempt has the gateway's first-byte timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl From<RetryPolicy> for RetrySpec {
    fn from(p: RetryPolicy) -> RetrySpec {
        RetrySpec {
            max_attempts: p.max_attempts,
            retry_on: RetryOnSpec {
                rate_limit: p.retry_on.rate_limit,
                server_error: p.retry_on.server_error,
                timeout: p.retry_on.timeout,
                connect: p.retry_on.connect,
            },
            fallback: p.fallback,
            timeout_ms: p.timeout_ms,
        }
    }
}

impl From<RetrySpec> for RetryPolicy {
    fn from(s: RetrySpec) -> RetryPolicy {
        RetryPolicy {
            max_attempts: s.max_attempts,
            retry_on: RetryOn {
                rate_limit: s.retry_on.rate_limit,
                server_error: s.retry_on.server_error,
                timeout: s.retry_on.timeout,
                connect: s.retry_on.connect,
            },
            fallback: s.fallback,
            timeout_ms: s.timeout_ms,
            ..RetryPolicy::default()
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutView {
    id: String,
    /// Share of API keys (sticky per key) sent to the candidate.
    percent: u8,
    candidate: Vec<DeploymentView>,
}

/// A public model's route.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    model: String,
    display_name: String,
    /// False until the model is first bound; tenants cannot call it before.
    bound: bool,
    deployments: Vec<DeploymentView>,
    retry: RetrySpec,
    rollout: Option<RolloutView>,
}

/// A new binding. Without `retry`, the route keeps its policy (the default for a new route:
/// 2 attempts, every retryable failure, with fallback).
#[derive(Debug, Deserialize, ToSchema)]
pub struct Binding {
    deployments: Vec<DeploymentSpec>,
    retry: Option<RetrySpec>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewRollout {
    /// The binding to move traffic to.
    candidate: Vec<DeploymentSpec>,
    /// Share of API keys, 1 to 100.
    percent: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RolloutPercent {
    /// Share of API keys, 1 to 100. Raising it keeps every key already on the candidate there.
    percent: u32,
}

fn deployment_view(view: &LiveView, d: &Deployment) -> DeploymentView {
    let provider = view.providers.get(&d.provider);
    DeploymentView {
        provider: d.provider.clone(),
        upstream_model: d.upstream_model.clone(),
        region: d
            .region
            .clone()
            .or_else(|| provider.map(|p| p.config.region.clone()))
            .unwrap_or_default(),
        weight: d.weight,
        priority: d.priority,
        provider_enabled: provider.is_some_and(|p| p.enabled),
    }
}

fn rollout_view(view: &LiveView, rollout: &Rollout) -> RolloutView {
    RolloutView {
        id: rollout.id.clone(),
        percent: rollout.percent,
        candidate: rollout
            .candidate
            .iter()
            .map(|d| deployment_view(view, d))
            .collect(),
    }
}

fn route_view(view: &LiveView, model: &str) -> Result<RouteView, PortalError> {
    let entry = view.models.get(model).ok_or(PortalError::NotFound)?;
    let route = view.routes.get(model);
    let deployments = |r: &RouteEntry| {
        r.deployments
            .iter()
            .map(|d| deployment_view(view, d))
            .collect()
    };
    Ok(RouteView {
        model: model.to_string(),
        display_name: entry.details.display_name.clone(),
        bound: route.is_some(),
        deployments: route.map(deployments).unwrap_or_default(),
        retry: route.map_or_else(RetryPolicy::default, |r| r.retry).into(),
        rollout: route
            .and_then(|r| r.rollout.as_ref())
            .map(|r| rollout_view(view, r)),
    })
}

// ---- actions, shared by the pages and the JSON API ----

/// Checks what the aggregate cannot (each provider exists) and tidies the rows.
fn deployments_of(
    view: &LiveView,
    field: &'static str,
    specs: Vec<DeploymentSpec>,
) -> Result<Vec<Deployment>, PortalError> {
    if specs.is_empty() {
        return Err(PortalError::invalid(field, "Add at least one deployment."));
    }
    specs
        .into_iter()
        .map(|spec| {
            let provider = spec.provider.trim().to_string();
            if !view.providers.contains_key(&provider) {
                return Err(PortalError::invalid(
                    field,
                    format!("There is no provider '{provider}'."),
                ));
            }
            Ok(Deployment {
                provider,
                upstream_model: spec.upstream_model.trim().to_string(),
                region: spec
                    .region
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty()),
                weight: spec.weight,
                priority: spec.priority,
            })
        })
        .collect()
}

fn percent_of(percent: u32) -> Result<u8, PortalError> {
    u8::try_from(percent)
        .ok()
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| PortalError::invalid("percent", "Enter a share of 1 to 100 percent."))
}

/// The route's model must be published (retired models keep their route, and may be re-bound).
fn published(state: &AppState, model: &str) -> Result<(), PortalError> {
    if state.live.view().models.contains_key(model) {
        Ok(())
    } else {
        Err(PortalError::NotFound)
    }
}

async fn execute(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    model: &str,
    command: RouteCommand,
) -> Result<(), PortalError> {
    published(state, model)?;
    let metadata = operator.handle.metadata(request);
    state
        .commands
        .routes
        .execute(model, command, &metadata)
        .await?;
    state.live.include(&state.db, ROUTE, model).await?;
    Ok(())
}

async fn bind(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    model: &str,
    binding: Binding,
) -> Result<(), PortalError> {
    published(state, model)?;
    let (deployments, current) = {
        let view = state.live.view();
        let deployments = deployments_of(&view, "deployments", binding.deployments)?;
        (deployments, view.routes.get(model).map(|r| r.retry))
    };
    let retry = binding
        .retry
        .map(RetryPolicy::from)
        .or(current)
        .unwrap_or_default();
    let command = RouteCommand::Bind { deployments, retry };
    execute(state, operator, request, model, command).await
}

async fn start_rollout(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    model: &str,
    rollout: NewRollout,
) -> Result<(), PortalError> {
    published(state, model)?;
    let candidate = deployments_of(&state.live.view(), "candidate", rollout.candidate)?;
    let command = RouteCommand::StartRollout {
        rollout_id: uuid::Uuid::new_v4().to_string(),
        candidate,
        percent: percent_of(rollout.percent)?,
    };
    execute(state, operator, request, model, command).await
}

async fn change_percent(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    model: &str,
    percent: u32,
) -> Result<(), PortalError> {
    let command = RouteCommand::ChangeRolloutPercent {
        percent: percent_of(percent)?,
    };
    execute(state, operator, request, model, command).await
}

// ---- JSON ----

#[utoipa::path(get, path = "/api/admin/routes", tag = "admin-routes",
    responses((status = 200, body = Vec<RouteView>, description = "The route of every published model, bound or not")))]
pub async fn api_list(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
) -> Result<Json<Vec<RouteView>>, PortalError> {
    let view = state.live.view();
    let routes = view
        .models
        .keys()
        .map(|model| route_view(&view, model))
        .collect::<Result<_, _>>()?;
    Ok(Json(routes))
}

#[utoipa::path(get, path = "/api/admin/routes/{model}", tag = "admin-routes",
    params(("model" = String, Path, description = "Public model name")),
    responses((status = 200, body = RouteView), (status = 404, description = "No such model")))]
pub async fn api_get(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Path(model): Path<String>,
) -> Result<Json<RouteView>, PortalError> {
    Ok(Json(route_view(&state.live.view(), &model)?))
}

#[utoipa::path(post, path = "/api/admin/routes/{model}", tag = "admin-routes", request_body = Binding,
    params(("model" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = RouteView, description = "Bound (binding the same again changes nothing)"),
              (status = 404, description = "No such model"),
              (status = 422, description = "An unknown provider, no deployment with weight, a row twice, or attempts outside 1 to 10")))]
pub async fn api_bind(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(model): Path<String>,
    Json(body): Json<Binding>,
) -> Result<Json<RouteView>, PortalError> {
    bind(&state, &operator, &request, &model, body).await?;
    Ok(Json(route_view(&state.live.view(), &model)?))
}

#[utoipa::path(post, path = "/api/admin/routes/{model}/rollout", tag = "admin-routes", request_body = NewRollout,
    params(("model" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = RouteView, description = "The rollout started"),
              (status = 404, description = "No such model"),
              (status = 422, description = "Not bound yet, a rollout already in progress, an invalid candidate or percent")))]
pub async fn api_start_rollout(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(model): Path<String>,
    Json(body): Json<NewRollout>,
) -> Result<Json<RouteView>, PortalError> {
    start_rollout(&state, &operator, &request, &model, body).await?;
    Ok(Json(route_view(&state.live.view(), &model)?))
}

#[utoipa::path(patch, path = "/api/admin/routes/{model}/rollout", tag = "admin-routes", request_body = RolloutPercent,
    params(("model" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = RouteView), (status = 404, description = "No such model"),
              (status = 422, description = "No rollout in progress, or a percent outside 1 to 100")))]
pub async fn api_change_percent(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(model): Path<String>,
    Json(body): Json<RolloutPercent>,
) -> Result<Json<RouteView>, PortalError> {
    change_percent(&state, &operator, &request, &model, body.percent).await?;
    Ok(Json(route_view(&state.live.view(), &model)?))
}

#[utoipa::path(post, path = "/api/admin/routes/{model}/rollout/promote", tag = "admin-routes",
    params(("model" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = RouteView, description = "The candidate is the binding for every key"),
              (status = 404, description = "No such model"), (status = 422, description = "No rollout in progress")))]
pub async fn api_promote(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(model): Path<String>,
) -> Result<Json<RouteView>, PortalError> {
    execute(
        &state,
        &operator,
        &request,
        &model,
        RouteCommand::PromoteRollout,
    )
    .await?;
    Ok(Json(route_view(&state.live.view(), &model)?))
}

#[utoipa::path(post, path = "/api/admin/routes/{model}/rollout/rollback", tag = "admin-routes",
    params(("model" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = RouteView, description = "Every key is back on the binding"),
              (status = 404, description = "No such model"), (status = 422, description = "No rollout in progress")))]
pub async fn api_roll_back(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(model): Path<String>,
) -> Result<Json<RouteView>, PortalError> {
    execute(&state, &operator, &request, &model, RouteCommand::RollBack).await?;
    Ok(Json(route_view(&state.live.view(), &model)?))
}

fn redirect_to(model: &str, notice: &str) -> Response {
    Redirect::to(&format!(
        "/admin/routes/{}?notice={notice}",
        super::catalog::path_segment(model)
    ))
    .into_response()
}

fn rendered(status: StatusCode, page: &impl Template) -> Result<Response, PortalError> {
    Ok((status, render(page)?).into_response())
}

fn chrome(operator: &SignedInOperator) -> Chrome {
    operator.chrome("routes")
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

fn check_csrf(operator: &SignedInOperator, form: &CsrfForm) -> Result<(), PortalError> {
    operator.verify_csrf(&form.csrf)
}

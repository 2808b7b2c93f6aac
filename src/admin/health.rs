//! The health page: each provider's recent upstream attempts — over the last 15 minutes and the
//! last 24 hours — with attempts, error rate, average and p95 latency, and the last error seen.
//! Read from the `provider_health` projection (per provider and minute, built from the attempts
//! of metered calls); connection tests are not calls and do not count.
//!
//! Above them, the events a read model could not apply (`sql::failures`): while one is not
//! acknowledged, `/health/ready` answers 503; an operator acknowledges it here once understood.

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{Duration, Utc};
use modelrouter_projections::sql::failures::{self, Failure};
use modelrouter_projections::sql::provider_health::{self, Tally};
use modelrouter_projections::sql::Projection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::session::{AdminWriter, SignedInOperator};
use crate::gateway::AppState;
use crate::portal::format;
use crate::portal::{render, Chrome, PortalError};

pub fn pages() -> Router<Arc<AppState>> {
    Router::new().route("/admin/health", get(page)).route(
        "/admin/health/failures/acknowledge",
        post(acknowledge_submit),
    )
}

pub fn api() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/health", get(api_health))
        .route("/api/admin/health/failures", get(api_failures))
        .route(
            "/api/admin/health/failures/acknowledge",
            post(api_acknowledge),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(api_health, api_failures, api_acknowledge),
    components(schemas(ProviderHealth, WindowHealth, ErrorSeen, ProjectionFailure, Acknowledgement)),
    tags((name = "admin-health", description = "Providers' recent error rate and latency")),
)]
pub struct Api;

/// The newest failed attempt of a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorSeen {
    /// When the call started (RFC 3339, UTC).
    pub at: String,
    /// The attempt's error in a few words (never the upstream's body).
    pub error: String,
    pub status: Option<i64>,
    pub upstream_model: String,
}

/// One provider's attempts over one window.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowHealth {
    pub attempts: i64,
    pub errors: i64,
    /// Errors per attempt, 0 to 1; absent without attempts.
    pub error_rate: Option<f64>,
    pub average_latency_ms: Option<i64>,
    /// An upper estimate from latency buckets (10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10,
    /// 30 s), never above the slowest attempt.
    pub p95_latency_ms: Option<i64>,
    pub last_error: Option<ErrorSeen>,
}

impl WindowHealth {
    fn of(tally: Option<&Tally>) -> WindowHealth {
        let empty = Tally::default();
        let tally = tally.unwrap_or(&empty);
        WindowHealth {
            attempts: tally.attempts,
            errors: tally.errors,
            // A ratio to show, not money: a float is fine here.
            error_rate: (tally.attempts > 0).then(|| tally.errors as f64 / tally.attempts as f64),
            average_latency_ms: tally.average_ms(),
            p95_latency_ms: tally.p95_ms(),
            last_error: tally.last_error.as_ref().map(|e| ErrorSeen {
                at: e.at.clone(),
                error: e.error.clone(),
                status: e.status,
                upstream_model: e.upstream_model.clone(),
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderHealth {
    pub provider: String,
    /// False for a disabled provider, and for one no longer configured whose attempts are
    /// still in the window.
    pub enabled: bool,
    pub last_15_minutes: WindowHealth,
    pub last_24_hours: WindowHealth,
}

/// Every configured provider, and any other that had attempts in the last 24 hours.
async fn health(state: &AppState) -> Result<Vec<ProviderHealth>, PortalError> {
    let now = Utc::now();
    // Windows of whole minutes that include the current one: 15 and 1440 minute rows.
    let recent = provider_health::window(&state.db, now - Duration::minutes(14)).await?;
    let day = provider_health::window(&state.db, now - Duration::minutes(24 * 60 - 1)).await?;
    let view = state.live.view();
    let names: BTreeSet<&String> = view.providers.keys().chain(day.keys()).collect();
    Ok(names
        .into_iter()
        .map(|name| ProviderHealth {
            provider: name.clone(),
            enabled: view.providers.get(name).is_some_and(|p| p.enabled),
            last_15_minutes: WindowHealth::of(recent.get(name)),
            last_24_hours: WindowHealth::of(day.get(name)),
        })
        .collect())
}

#[utoipa::path(get, path = "/api/admin/health", tag = "admin-health",
    responses((status = 200, body = Vec<ProviderHealth>, description = "Per provider, by name")))]
pub async fn api_health(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
) -> Result<Json<Vec<ProviderHealth>>, PortalError> {
    Ok(Json(health(&state).await?))
}

/// One window of one provider, formatted.
struct Cell {
    attempts: String,
    error_rate: String,
    /// `ok`, `wait` or `bad` for the error-rate pill.
    level: &'static str,
    average: String,
    p95: String,
}

fn cell(window: &WindowHealth) -> Cell {
    let permille = (window.attempts > 0)
        .then(|| (window.errors * 1000 + window.attempts / 2) / window.attempts);
    Cell {
        attempts: format::count(window.attempts),
        error_rate: permille
            .map(|p| format!("{}.{}%", p / 10, p % 10))
            .unwrap_or_else(|| "—".into()),
        level: match permille {
            None | Some(0) => "ok",
            Some(p) if p < 50 => "wait",
            Some(_) => "bad",
        },
        average: window
            .average_latency_ms
            .map(|ms| format!("{} ms", format::count(ms)))
            .unwrap_or_else(|| "—".into()),
        p95: window
            .p95_latency_ms
            .map(|ms| format!("≤ {} ms", format::count(ms)))
            .unwrap_or_else(|| "—".into()),
    }
}

struct Line {
    provider: String,
    enabled: bool,
    recent: Cell,
    day: Cell,
    last_error: String,
}

#[derive(Template)]
#[template(path = "admin/health.html")]
struct HealthPage {
    chrome: Chrome,
    csrf: String,
    lines: Vec<Line>,
    failures: Vec<ProjectionFailure>,
}

/// An event a read model could not apply and left out.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionFailure {
    pub projection: String,
    /// The event's global position in the log.
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub error: String,
    /// RFC 3339, UTC.
    pub failed_at: String,
    pub acknowledged_at: Option<String>,
    /// The operator's id.
    pub acknowledged_by: Option<String>,
    /// One sentence for people.
    pub description: String,
}

impl From<Failure> for ProjectionFailure {
    fn from(failure: Failure) -> Self {
        ProjectionFailure {
            description: failure.describe(),
            projection: failure.projection,
            position: failure.position,
            aggregate_type: failure.aggregate_type,
            aggregate_id: failure.aggregate_id,
            event_type: failure.event_type,
            error: failure.error,
            failed_at: failure.failed_at,
            acknowledged_at: failure.acknowledged_at,
            acknowledged_by: failure.acknowledged_by,
        }
    }
}

async fn projection_failures(state: &AppState) -> Result<Vec<ProjectionFailure>, PortalError> {
    Ok(failures::all(&state.db)
        .await?
        .into_iter()
        .map(ProjectionFailure::from)
        .collect())
}

#[utoipa::path(get, path = "/api/admin/health/failures", tag = "admin-health",
    responses((status = 200, body = Vec<ProjectionFailure>, description = "Unacknowledged first")))]
pub async fn api_failures(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
) -> Result<Json<Vec<ProjectionFailure>>, PortalError> {
    Ok(Json(projection_failures(&state).await?))
}

/// Which failure an operator acknowledges.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Acknowledgement {
    pub projection: String,
    pub position: i64,
}

async fn acknowledge(
    state: &AppState,
    operator: &SignedInOperator,
    which: &Acknowledgement,
) -> Result<(), PortalError> {
    let projection = Projection::from_name(&which.projection).ok_or(PortalError::NotFound)?;
    let by = format!("operator:{}", operator.handle.id());
    if !failures::acknowledge(&state.db, projection, which.position, &by).await? {
        return Err(PortalError::NotFound);
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/admin/health/failures/acknowledge", tag = "admin-health",
    request_body = Acknowledgement,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Acknowledged (or already)"), (status = 404, description = "No such failure")))]
pub async fn api_acknowledge(
    State(state): State<Arc<AppState>>,
    AdminWriter(operator): AdminWriter,
    Json(body): Json<Acknowledgement>,
) -> Result<StatusCode, PortalError> {
    acknowledge(&state, &operator, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct AcknowledgeForm {
    csrf: String,
    projection: String,
    position: i64,
}

pub async fn acknowledge_submit(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Form(form): Form<AcknowledgeForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let which = Acknowledgement {
        projection: form.projection,
        position: form.position,
    };
    acknowledge(&state, &operator, &which).await?;
    Ok(Redirect::to("/admin/health").into_response())
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
) -> Result<Response, PortalError> {
    let lines = health(&state)
        .await?
        .into_iter()
        .map(|p| Line {
            recent: cell(&p.last_15_minutes),
            day: cell(&p.last_24_hours),
            last_error: p
                .last_24_hours
                .last_error
                .as_ref()
                .map(|e| {
                    let status = e.status.map(|s| format!("HTTP {s}, ")).unwrap_or_default();
                    format!(
                        "{} — {status}{} ({})",
                        format::time(&e.at),
                        e.error,
                        e.upstream_model
                    )
                })
                .unwrap_or_else(|| "—".into()),
            enabled: p.enabled,
            provider: p.provider,
        })
        .collect();
    let page = HealthPage {
        chrome: operator.chrome("health"),
        csrf: operator.csrf.clone(),
        lines,
        failures: projection_failures(&state).await?,
    };
    Ok(render(&page)?.into_response())
}

//! The health page: each provider's recent upstream attempts — over the last 15 minutes and the
//! last 24 hours — with attempts, error rate, average and p95 latency, and the last error seen.
//! Read from the `provider_health` projection (per provider and minute, built from the attempts
//! of metered calls); connection tests are not calls and do not count.

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Duration, Utc};
use modelrouter_projections::sql::provider_health::{self, Tally};
use serde::Serialize;
use utoipa::ToSchema;

use super::session::SignedInOperator;
use crate::gateway::AppState;
use crate::portal::format;
use crate::portal::{render, Chrome, PortalError};

pub fn pages() -> Router<Arc<AppState>> {
    Router::new().route("/admin/health", get(page))
}

pub fn api() -> Router<Arc<AppState>> {
    Router::new().route("/api/admin/health", get(api_health))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(api_health),
    components(schemas(ProviderHealth, WindowHealth, ErrorSeen)),
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
    lines: Vec<Line>,
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
        lines,
    };
    Ok(render(&page)?.into_response())
}

//! The agent portal: resellers' pages under `/agent` and the same reads as JSON under
//! `/api/agent`, in the OpenAPI document.
//!
//! Architecture invariant: every agent handler takes a [`SignedInAgent`], made only from a live
//! agent session, and reads through its [`AgentScope`] — an agent can reach its own referred
//! tenants' names, sign-up dates and spend, and nothing else (no emails, keys or prompts).

mod account;
mod commission;
pub mod session;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use utoipa::OpenApi;

pub use commission::this_month;
pub use session::{AgentScope, SignedInAgent};

use crate::gateway::AppState;
use crate::portal::error;

pub fn routes() -> Router<Arc<AppState>> {
    let pages = Router::new()
        .route("/agent", get(commission::dashboard_page))
        .route(
            "/agent/login",
            get(account::login_page).post(account::login_submit),
        )
        .route("/agent/logout", post(account::logout_submit))
        .route("/agent/account", get(account::account_page))
        .route("/agent/account/password", post(account::password_submit))
        .route("/agent/tenants", get(commission::tenants_page))
        .route("/agent/commission", get(commission::commission_page))
        .route("/agent/commission/{month}", get(commission::statement_page))
        .route(
            "/agent/commission/{month}/statement.csv",
            get(commission::statement_csv),
        )
        .layer(middleware::from_fn(error::render_page_errors));
    let api = Router::new()
        .route("/api/agent/login", post(account::api_login))
        .route("/api/agent/logout", post(account::api_logout))
        .route("/api/agent/session", get(account::api_session))
        .route("/api/agent/password", post(account::api_password))
        .route("/api/agent/dashboard", get(commission::api_dashboard))
        .route("/api/agent/tenants", get(commission::api_tenants))
        .route("/api/agent/commission", get(commission::api_commission))
        .route(
            "/api/agent/commission/{month}",
            get(commission::api_statement),
        )
        .layer(middleware::from_fn(error::render_json_errors));
    Router::new()
        .route(
            "/agent/",
            get(|| async { axum::response::Redirect::to("/agent") }),
        )
        .merge(pages)
        .merge(api)
        .layer(middleware::map_response(crate::portal::page_headers))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        account::api_login,
        account::api_logout,
        account::api_session,
        account::api_password,
        commission::api_dashboard,
        commission::api_tenants,
        commission::api_commission,
        commission::api_statement,
    ),
    tags((name = "agent", description = "Agent portal: referred tenants and commission")),
)]
struct AgentApi;

/// The agent portal's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    AgentApi::openapi()
}

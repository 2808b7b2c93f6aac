//! The operations console: server-rendered pages under `/admin` for platform operators, and the
//! same actions as JSON under `/api/admin`, described in the OpenAPI document.
//!
//! Architecture invariants:
//! - every console handler takes a [`SignedInOperator`] (or [`session::AdminWriter`] for JSON
//!   writes), made only from a live operator session; tenants' and agents' sessions never open
//!   a console page;
//! - every change is a command on an aggregate, with the operator as the event's actor
//!   ([`OperatorHandle::metadata`]) — the console writes no table of its own;
//! - secrets an operator enters (provider credentials, reset passwords) are never rendered back.

mod account;
mod roles;
pub mod session;

// Providers, credentials and their health.
mod connection;
mod health;
mod provider_pages;
mod providers;
mod providers_api;

// The catalog and route bindings with rollouts.
mod bindings;
mod catalog;

// Tenants, orders, vouchers and the audit trail: (audit.rs to come)
mod orders;
mod tenant_actions;
mod tenants;
mod vouchers;

// Agents and their commissions:
mod agents;
mod agents_api;
mod audit;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use utoipa::OpenApi;

pub use account::role_name;
pub use session::{OperatorHandle, SignedInOperator};

use chrono::{DateTime, Utc};
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::operator::{OperatorCommand, OperatorRole};

use crate::gateway::AppState;
use crate::portal::error;
use crate::store::sessions::{self, Realm};
use crate::store::{email_owner, release_email, reserve_email, Commands, LoginKind};

/// Registers an operator who signs in with `password`, a password of their own; returns the
/// operator's id. The email is reserved first, so it names one login of any kind.
pub async fn create_operator(
    commands: &Commands,
    email: &str,
    role: OperatorRole,
    password: &str,
    actor: &Actor,
) -> anyhow::Result<String> {
    register_operator(commands, email, role, password, None, actor).await
}

/// Registers an operator with a new one-time password (`modelrouter admin create`): they must
/// choose their own at the first sign-in, and it stops working at `expires_at`. Returns the
/// operator's id and the password, which is shown once and stored only as its hash.
pub async fn create_operator_with_one_time_password(
    commands: &Commands,
    email: &str,
    role: OperatorRole,
    expires_at: DateTime<Utc>,
    actor: &Actor,
) -> anyhow::Result<(String, String)> {
    let password = crate::crypto::generate_password();
    let id = register_operator(commands, email, role, &password, Some(expires_at), actor).await?;
    Ok((id, password))
}

async fn register_operator(
    commands: &Commands,
    email: &str,
    role: OperatorRole,
    password: &str,
    one_time_until: Option<DateTime<Utc>>,
    actor: &Actor,
) -> anyhow::Result<String> {
    let email = modelrouter_domain::tenant::normalize_email(email)?;
    let id = uuid::Uuid::new_v4().to_string();
    if !reserve_email(&commands.db, &email, LoginKind::Operator, &id).await? {
        anyhow::bail!("{email} already has a login");
    }
    let register = OperatorCommand::Register {
        email: email.clone(),
        password_hash: crate::crypto::hash_password(password)?,
        role,
        temporary: one_time_until.is_some(),
        expires_at: one_time_until,
    };
    if let Err(error) = commands
        .operators
        .execute(&id, register, &Metadata::new(actor))
        .await
    {
        release_email(&commands.db, &email, &id).await?;
        return Err(error.into());
    }
    Ok(id)
}

/// Gives an operator a new one-time password (`modelrouter admin reset-password`), to be changed
/// at the next sign-in and refused after `expires_at`; ends their sessions and clears their
/// sign-in lockout. Returns the password, shown once.
pub async fn reset_operator_password(
    commands: &Commands,
    email: &str,
    expires_at: DateTime<Utc>,
    actor: &Actor,
) -> anyhow::Result<String> {
    let email = modelrouter_domain::tenant::normalize_email(email)?;
    let Some(id) = email_owner(&commands.db, &email, LoginKind::Operator).await? else {
        anyhow::bail!("no operator signs in as {email}");
    };
    let password = crate::crypto::generate_password();
    let change = OperatorCommand::ChangePassword {
        password_hash: crate::crypto::hash_password(&password)?,
        temporary: true,
        expires_at: Some(expires_at),
    };
    commands
        .operators
        .execute(&id, change, &Metadata::new(actor))
        .await?;
    sessions::end_subject_sessions(&commands.db, Realm::Operator, &id, None).await?;
    sessions::clear_failures(&commands.db, &format!("operator:email:{email}")).await?;
    Ok(password)
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/admin/",
            get(|| async { axum::response::Redirect::to("/admin") }),
        )
        .merge(pages().layer(middleware::from_fn(error::render_page_errors)))
        .merge(api().layer(middleware::from_fn(error::render_json_errors)))
        .layer(middleware::map_response(crate::portal::page_headers))
}

/// Every console page. Each area merges its own router on its own line, so areas change
/// without touching each other's lines.
#[allow(clippy::let_and_return, clippy::redundant_locals)]
fn pages() -> Router<Arc<AppState>> {
    let pages = Router::new()
        .route("/admin", get(account::overview_page))
        .route(
            "/admin/login",
            get(account::login_page).post(account::login_submit),
        )
        .route("/admin/logout", post(account::logout_submit))
        .route("/admin/account", get(account::account_page))
        .route("/admin/account/password", post(account::password_submit));

    // Providers and health.
    let pages = pages.merge(providers::pages()).merge(health::pages());

    // Catalog and routes.
    let pages = pages.merge(catalog::pages()).merge(bindings::pages());

    // Tenants, orders, vouchers, audit.
    let pages = pages
        .merge(tenants::pages())
        .merge(orders::pages())
        .merge(vouchers::pages());

    // Agents.
    let pages = pages.merge(agents::pages()).merge(audit::pages());

    pages
}

/// Every `/api/admin` operation. Each area merges its own router on its own line.
#[allow(clippy::let_and_return, clippy::redundant_locals)]
fn api() -> Router<Arc<AppState>> {
    let api = Router::new()
        .route("/api/admin/login", post(account::api_login))
        .route("/api/admin/logout", post(account::api_logout))
        .route("/api/admin/session", get(account::api_session))
        .route("/api/admin/password", post(account::api_password))
        .route("/api/admin/overview", get(account::api_overview));

    // Providers and health.
    let api = api.merge(providers::api()).merge(health::api());

    // Catalog and routes.
    let api = api.merge(catalog::api()).merge(bindings::api());

    // Tenants, orders, vouchers, audit.
    let api = api
        .merge(tenants::api())
        .merge(orders::api())
        .merge(vouchers::api());

    // Agents.
    let api = api.merge(agents::api()).merge(audit::api());

    api
}

#[derive(OpenApi)]
#[openapi(
    paths(
        account::api_login,
        account::api_logout,
        account::api_session,
        account::api_password,
        account::api_overview,
    ),
    tags((name = "admin", description = "Operations console: operators' sign-in and overview")),
)]
struct AccountApi;

/// The console's part of the OpenAPI document: every `/api/admin` operation, each secured by the
/// operator session cookie unless it says otherwise (sign-in).
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[allow(unused_mut)]
    let mut document = AccountApi::openapi();

    // Providers and health.
    document.merge(providers::Api::openapi());
    document.merge(health::Api::openapi());

    // Catalog and routes.
    document.merge(catalog::Api::openapi());
    document.merge(bindings::Api::openapi());

    // Tenants, orders, vouchers, audit.
    document.merge(tenants::Api::openapi());
    document.merge(orders::Api::openapi());
    document.merge(vouchers::Api::openapi());

    // Agents.
    document.merge(agents::Api::openapi());
    document.merge(audit::Api::openapi());

    document
}

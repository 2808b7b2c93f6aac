//! What an operator does to a tenant: suspend and reactivate, adjust the balance, reset the
//! password, change the plan — as form posts on the tenant's page and as JSON.
//!
//! Each is one command with the operator as the event's actor. A suspension is included in this
//! replica's live view before the answer, so the tenant's API calls get 403 from the next request
//! on; other replicas apply it as they tail the log (within a second). Suspension and password
//! resets also end the tenant's portal sessions.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Extension, Form, Json, Router};
use modelrouter_domain::account::AccountCommand;
use modelrouter_domain::aggregate_types::TENANT;
use modelrouter_domain::metadata::Metadata;
use modelrouter_domain::tenant::TenantCommand;
use modelrouter_domain::{DomainError, Money};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::session::{AdminWriter, SignedInOperator};
use super::tenants::{known_tenant, tenant_view};
use crate::gateway::{AppState, RequestId};
use crate::portal::recharge::parse_amount;
use crate::portal::{format, render, Chrome, PortalError};
use crate::store::sessions::{self, Realm};
use crate::store::CommandError;

pub fn pages() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/tenants/{id}/suspend", post(suspend_submit))
        .route("/admin/tenants/{id}/reactivate", post(reactivate_submit))
        .route("/admin/tenants/{id}/adjust", post(adjust_submit))
        .route("/admin/tenants/{id}/password", post(password_submit))
        .route("/admin/tenants/{id}/plan", post(plan_submit))
}

pub fn api() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/tenants/{id}/suspend", post(api_suspend))
        .route("/api/admin/tenants/{id}/reactivate", post(api_reactivate))
        .route("/api/admin/tenants/{id}/adjust", post(api_adjust))
        .route("/api/admin/tenants/{id}/password", post(api_reset_password))
        .route("/api/admin/tenants/{id}/plan", post(api_set_plan))
}

// ---- the actions ----

async fn suspend(
    state: &AppState,
    id: &str,
    reason: &str,
    metadata: &Metadata,
) -> Result<(), PortalError> {
    known_tenant(state, id).await?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(PortalError::invalid(
            "reason",
            "Give the reason for the suspension.",
        ));
    }
    let suspend = TenantCommand::Suspend {
        reason: reason.to_string(),
    };
    state
        .commands
        .tenants
        .execute(id, suspend, metadata)
        .await?;
    // In this replica's view before the answer: the next API call is refused here at once.
    state.live.include(&state.db, TENANT, id).await?;
    sessions::end_subject_sessions(&state.db, Realm::Tenant, id, None).await?;
    Ok(())
}

async fn reactivate(state: &AppState, id: &str, metadata: &Metadata) -> Result<(), PortalError> {
    known_tenant(state, id).await?;
    let reactivate = TenantCommand::Reactivate;
    state
        .commands
        .tenants
        .execute(id, reactivate, metadata)
        .await?;
    state.live.include(&state.db, TENANT, id).await?;
    Ok(())
}

/// Reads a signed amount typed as a decimal (`-12.5`, `+3`, `7`) into micro-units.
fn parse_signed(text: &str) -> Option<Money> {
    let text = text.trim();
    match text.strip_prefix('-') {
        Some(rest) => parse_amount(rest).map(|m| Money(-m.0)),
        None => parse_amount(text.strip_prefix('+').unwrap_or(text)),
    }
}

async fn adjust(
    state: &AppState,
    id: &str,
    amount: Money,
    reason: &str,
    metadata: &Metadata,
) -> Result<(), PortalError> {
    known_tenant(state, id).await?;
    if reason.trim().is_empty() {
        return Err(PortalError::invalid(
            "reason",
            "Give the reason for the adjustment.",
        ));
    }
    if amount == Money::ZERO {
        return Err(PortalError::invalid(
            "amount",
            "Enter a non-zero amount; a negative one lowers the balance.",
        ));
    }
    let adjust = AccountCommand::Adjust {
        amount,
        reason: reason.trim().to_string(),
    };
    match state.commands.accounts.execute(id, adjust, metadata).await {
        Err(CommandError::Domain(DomainError::InsufficientBalance { available })) => {
            return Err(PortalError::invalid(
                "amount",
                format!(
                    "Only {} {} can be taken: the rest is spent or held by gateway replicas \
                     for calls in flight.",
                    format::money(available.max(Money::ZERO).0),
                    state.settings.currency
                ),
            ));
        }
        other => other?,
    }
    state.live.refresh(&state.db).await?;
    Ok(())
}

/// Sets a new random password, ends the tenant's sessions and clears its sign-in lockout;
/// returns the password, which is shown once and stored nowhere but as its hash.
async fn reset_password(
    state: &AppState,
    id: &str,
    metadata: &Metadata,
) -> Result<String, PortalError> {
    let tenant = known_tenant(state, id).await?;
    let password = crate::crypto::generate_password();
    let plain = password.clone();
    let password_hash = tokio::task::spawn_blocking(move || crate::crypto::hash_password(&plain))
        .await
        .map_err(PortalError::internal)?
        .map_err(PortalError::internal)?;
    let change = TenantCommand::ChangePassword {
        password_hash,
        temporary: true,
        expires_at: Some(crate::portal::login::one_time_expiry(state)),
    };
    state.commands.tenants.execute(id, change, metadata).await?;
    state.live.include(&state.db, TENANT, id).await?;
    sessions::end_subject_sessions(&state.db, Realm::Tenant, id, None).await?;
    sessions::clear_failures(&state.db, &format!("email:{}", tenant.email)).await?;
    Ok(password)
}

async fn set_plan(
    state: &AppState,
    id: &str,
    plan: &str,
    metadata: &Metadata,
) -> Result<(), PortalError> {
    known_tenant(state, id).await?;
    let set = TenantCommand::SetPlan {
        plan: plan.to_string(),
    };
    state.commands.tenants.execute(id, set, metadata).await?;
    state.live.include(&state.db, TENANT, id).await?;
    Ok(())
}

// ---- form posts ----

/// Re-renders the tenant's page with a form's error and what was typed (422), or passes other
/// errors on.
async fn with_error(
    state: &AppState,
    operator: &SignedInOperator,
    id: &str,
    form: &'static str,
    error: PortalError,
    entered: impl FnOnce(&mut super::tenants::Entered),
) -> Result<Response, PortalError> {
    if !matches!(error, PortalError::Invalid { .. }) {
        return Err(error);
    }
    let mut page = tenant_view(state, operator, id).await?;
    page.error = Some((form, error.to_string()));
    entered(&mut page.entered);
    Ok((error.status(), render(&page)?).into_response())
}

fn done(id: &str, notice: &str) -> Response {
    Redirect::to(&format!("/admin/tenants/{id}?notice={notice}")).into_response()
}

#[derive(Deserialize)]
pub struct ReasonForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn suspend_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let metadata = operator.handle.metadata(&request);
    match suspend(&state, &id, &form.reason, &metadata).await {
        Ok(()) => Ok(done(&id, "suspended")),
        Err(error) => {
            with_error(&state, &operator, &id, "suspend", error, |e| {
                e.suspend_reason = form.reason.clone()
            })
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn reactivate_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    reactivate(&state, &id, &operator.handle.metadata(&request)).await?;
    Ok(done(&id, "reactivated"))
}

#[derive(Deserialize)]
pub struct AdjustForm {
    csrf: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
}

pub async fn adjust_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<AdjustForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let metadata = operator.handle.metadata(&request);
    let result = match parse_signed(&form.amount) {
        Some(amount) => adjust(&state, &id, amount, &form.reason, &metadata).await,
        None => Err(PortalError::invalid(
            "amount",
            "Enter the amount as a number, e.g. 10 or -2.50.",
        )),
    };
    match result {
        Ok(()) => Ok(done(&id, "adjusted")),
        Err(error) => {
            with_error(&state, &operator, &id, "adjust", error, |e| {
                e.adjust_amount = form.amount.clone();
                e.adjust_reason = form.reason.clone();
            })
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "admin/tenant_password.html")]
struct PasswordPage {
    chrome: Chrome,
    id: String,
    email: String,
    password: String,
}

/// Answers with the new password on the page itself rather than a redirect: it is shown this
/// once and never stored in a URL or a later page.
pub async fn password_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let password = reset_password(&state, &id, &operator.handle.metadata(&request)).await?;
    let tenant = known_tenant(&state, &id).await?;
    let page = PasswordPage {
        chrome: operator.chrome("tenants"),
        id,
        email: tenant.email,
        password,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct PlanForm {
    csrf: String,
    #[serde(default)]
    plan: String,
}

pub async fn plan_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<PlanForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    match set_plan(&state, &id, &form.plan, &operator.handle.metadata(&request)).await {
        Ok(()) => Ok(done(&id, "plan")),
        Err(error) => {
            with_error(&state, &operator, &id, "plan", error, |e| {
                e.plan = form.plan.clone()
            })
            .await
        }
    }
}

// ---- JSON ----

#[derive(Deserialize, ToSchema)]
pub struct Suspension {
    reason: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Adjustment {
    /// Signed micro-units: negative lowers the balance.
    amount: i64,
    reason: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Plan {
    plan: String,
}

/// A password reset's result: the password, shown this once.
#[derive(Serialize, ToSchema)]
pub struct OneTimePassword {
    password: String,
}

#[utoipa::path(post, path = "/api/admin/tenants/{id}/suspend", tag = "admin-tenants", request_body = Suspension,
    params(("id" = String, Path, description = "Tenant id"),
        ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Suspended: API calls get 403, portal sessions ended"),
        (status = 404, description = "No such tenant"), (status = 422, description = "No reason given")))]
pub async fn api_suspend(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<Suspension>,
) -> Result<StatusCode, PortalError> {
    suspend(
        &state,
        &id,
        &body.reason,
        &operator.handle.metadata(&request),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/admin/tenants/{id}/reactivate", tag = "admin-tenants",
    params(("id" = String, Path, description = "Tenant id"),
        ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Active again"), (status = 404, description = "No such tenant")))]
pub async fn api_reactivate(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
) -> Result<StatusCode, PortalError> {
    reactivate(&state, &id, &operator.handle.metadata(&request)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/admin/tenants/{id}/adjust", tag = "admin-tenants", request_body = Adjustment,
    params(("id" = String, Path, description = "Tenant id"),
        ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Adjusted"), (status = 404, description = "No such tenant"),
        (status = 422, description = "Zero amount, no reason, or a debit beyond what is available")))]
pub async fn api_adjust(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<Adjustment>,
) -> Result<StatusCode, PortalError> {
    let metadata = operator.handle.metadata(&request);
    adjust(&state, &id, Money(body.amount), &body.reason, &metadata).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/admin/tenants/{id}/password", tag = "admin-tenants",
    params(("id" = String, Path, description = "Tenant id"),
        ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = OneTimePassword, description = "The new password, shown once; the tenant's sessions ended"),
        (status = 404, description = "No such tenant")))]
pub async fn api_reset_password(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
) -> Result<Json<OneTimePassword>, PortalError> {
    let password = reset_password(&state, &id, &operator.handle.metadata(&request)).await?;
    Ok(Json(OneTimePassword { password }))
}

#[utoipa::path(post, path = "/api/admin/tenants/{id}/plan", tag = "admin-tenants", request_body = Plan,
    params(("id" = String, Path, description = "Tenant id"),
        ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Plan set"), (status = 404, description = "No such tenant"),
        (status = 422, description = "Not a plan name")))]
pub async fn api_set_plan(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<Plan>,
) -> Result<StatusCode, PortalError> {
    set_plan(&state, &id, &body.plan, &operator.handle.metadata(&request)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_amounts_are_read_exactly() {
        assert_eq!(parse_signed("-2.5"), Some(Money(-2_500_000)));
        assert_eq!(parse_signed("+3"), Some(Money(3_000_000)));
        assert_eq!(parse_signed(" 0.000001 "), Some(Money(1)));
        for bad in ["", "-", "--1", "1e3", "-1.0000001"] {
            assert_eq!(parse_signed(bad), None, "{bad}");
        }
    }
}

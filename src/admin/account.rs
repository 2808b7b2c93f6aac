//! Operators' sign-in, sign-out and the console's overview page, as pages and as JSON.
//!
//! Sign-in shares the tenant portal's rules (`portal::account::verify_login`): the same lockout
//! per email and per client address — counted separately for operators — and the same timing
//! for known and unknown emails. Operators are created by `modelrouter admin create`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use axum_extra::extract::cookie::CookieJar;
use modelrouter_domain::aggregate_types as types;
use modelrouter_domain::tenant::TenantStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::session::SignedInOperator;
use crate::gateway::{AppState, Caller, RequestId};
use crate::portal::account::{start_session, verify_login, CsrfForm, LoginSubject};
use crate::portal::login::{site_login_page, site_login_submit, LoginForm, NextQuery};
use crate::portal::session;
use crate::portal::{render, Chrome, PortalError, Site};
use crate::store::sessions::{self as store_sessions, Realm};
use crate::store::LoginKind;

/// Checks an operator's email and password; returns the operator id.
async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    request: &RequestId,
) -> Result<String, PortalError> {
    let find = |email: String| async move {
        let Some(id) = crate::store::email_owner(&state.db, &email, LoginKind::Operator).await?
        else {
            return Ok(None);
        };
        if !state.live.view().operators.contains_key(&id) {
            state.live.include(&state.db, types::OPERATOR, &id).await?;
        }
        let view = state.live.view();
        // A disabled operator signs in as if the password were wrong: nothing to tell apart.
        Ok(view
            .operators
            .get(&id)
            .filter(|operator| !operator.disabled)
            .map(|operator| LoginSubject {
                id: id.clone(),
                password_hash: operator.password_hash.clone(),
            }))
    };
    verify_login(state, Realm::Operator, email, password, request, find).await
}

pub async fn login_page(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    jar: CookieJar,
    operator: Option<SignedInOperator>,
    Query(query): Query<NextQuery>,
) -> Result<Response, PortalError> {
    let signed_in = operator.is_some();
    site_login_page(&state, Site::Admin, &caller, jar, signed_in, query).await
}

pub async fn login_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, PortalError> {
    let directory = state.clone();
    let sign_in = |email: String, password: String| async move {
        sign_in(&directory, &email, &password, &request).await
    };
    site_login_submit(&state, Site::Admin, &caller, jar, form, sign_in).await
}

pub async fn logout_submit(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    crate::portal::login::sign_out(&state, jar, Site::Admin, operator.token()).await
}

/// The console's figures at a glance, from the live view.
#[derive(Serialize, ToSchema)]
pub struct Overview {
    pub tenants: usize,
    pub suspended_tenants: usize,
    pub active_keys: usize,
    pub providers: usize,
    pub enabled_providers: usize,
    pub models: usize,
    pub routed_models: usize,
    pub agents: usize,
    pub operators: usize,
}

fn overview(state: &AppState) -> Overview {
    let view = state.live.view();
    let now = chrono::Utc::now();
    Overview {
        tenants: view.tenants.len(),
        suspended_tenants: view
            .tenants
            .values()
            .filter(|t| t.status == TenantStatus::Suspended)
            .count(),
        active_keys: view.keys.values().filter(|k| k.usable_at(now)).count(),
        providers: view.providers.len(),
        enabled_providers: view.providers.values().filter(|p| p.enabled).count(),
        models: view.models.values().filter(|m| !m.retired).count(),
        routed_models: view.available_models().count(),
        agents: view.agents.len(),
        operators: view.operators.len(),
    }
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    role: &'static str,
    figures: Overview,
}

pub async fn overview_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
) -> Result<Response, PortalError> {
    let page = OverviewPage {
        chrome: operator.chrome("overview"),
        role: role_name(operator.role),
        figures: overview(&state),
    };
    Ok(render(&page)?.into_response())
}

pub fn role_name(role: modelrouter_domain::operator::OperatorRole) -> &'static str {
    use modelrouter_domain::operator::OperatorRole;
    match role {
        OperatorRole::Admin => "admin",
        OperatorRole::Finance => "finance",
        OperatorRole::Support => "support",
    }
}

// ---- JSON ----

#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    email: String,
    password: String,
}

/// The signed-in operator, and the CSRF token its writes must send as `X-CSRF-Token`.
#[derive(Serialize, ToSchema)]
pub struct OperatorSession {
    operator_id: String,
    email: String,
    role: &'static str,
    csrf_token: String,
}

#[utoipa::path(post, path = "/api/admin/login", tag = "admin", request_body = Credentials,
    security(()),
    responses((status = 200, body = OperatorSession, description = "Signed in; sets the mr_admin_session cookie"),
        (status = 401, description = "Wrong email or password"), (status = 429, description = "Locked for a while")))]
pub async fn api_login(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<Response, PortalError> {
    let id = sign_in(&state, &body.email, &body.password, &request).await?;
    let (jar, csrf) = start_session(&state, &caller, jar, Realm::Operator, &id).await?;
    let view = state.live.view();
    let operator = view.operators.get(&id).ok_or(PortalError::SignedOut)?;
    let session = OperatorSession {
        operator_id: id.clone(),
        email: operator.email.clone(),
        role: role_name(operator.role),
        csrf_token: csrf,
    };
    Ok((jar, Json(session)).into_response())
}

#[utoipa::path(get, path = "/api/admin/session", tag = "admin",
    responses((status = 200, body = OperatorSession), (status = 401, description = "Not signed in")))]
pub async fn api_session(operator: SignedInOperator) -> Json<OperatorSession> {
    Json(OperatorSession {
        operator_id: operator.handle.id().to_string(),
        email: operator.email.clone(),
        role: role_name(operator.role),
        csrf_token: operator.csrf.clone(),
    })
}

#[utoipa::path(post, path = "/api/admin/logout", tag = "admin",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Signed out")))]
pub async fn api_logout(
    State(state): State<Arc<AppState>>,
    super::session::AdminWriter(operator): super::session::AdminWriter,
    jar: CookieJar,
) -> Result<Response, PortalError> {
    store_sessions::end_session(&state.db, operator.token()).await?;
    let jar = session::clear_session(jar, Realm::Operator);
    Ok((StatusCode::NO_CONTENT, jar).into_response())
}

#[utoipa::path(get, path = "/api/admin/overview", tag = "admin",
    responses((status = 200, body = Overview)))]
pub async fn api_overview(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
) -> Json<Overview> {
    Json(overview(&state))
}

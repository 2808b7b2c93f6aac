//! Operators' sign-in, sign-out and the console's overview page, as pages and as JSON.
//!
//! Sign-in shares the tenant portal's rules (`portal::account::verify_login`): the same lockout
//! per email and per client address — counted separately for operators — and the same timing
//! for known and unknown emails. Operators are created by `modelrouter admin create` with a
//! one-time password, which they replace on their account page at the first sign-in.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use axum_extra::extract::cookie::CookieJar;
use modelrouter_domain::aggregate_types as types;
use modelrouter_domain::operator::OperatorCommand;
use modelrouter_domain::tenant::TenantStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::session::SignedInOperator;
use crate::gateway::{AppState, Caller, RequestId};
use crate::portal::account::{start_session, verify_login, CsrfForm, LoginSubject};
use crate::portal::login::{
    account_notice, change_own_password, site_login_page, site_login_submit, LoginForm, NextQuery,
    NoticeQuery, OwnPassword, MIN_PASSWORD,
};
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
                one_time_password: operator.one_time_password,
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

#[derive(Template)]
#[template(path = "admin/account.html")]
struct AccountPage {
    chrome: Chrome,
    role: &'static str,
    error: Option<String>,
    notice: Option<&'static str>,
    min_password: usize,
}

/// The operator's own account: who they are, and the password form.
pub async fn account_page(
    operator: SignedInOperator,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let page = AccountPage {
        chrome: operator.chrome("account"),
        role: role_name(operator.role),
        error: None,
        notice: account_notice(query.notice.as_deref()),
        min_password: MIN_PASSWORD,
    };
    Ok(render(&page)?.into_response())
}

/// Changes the operator's own password after checking the current one; ends their other
/// sessions.
async fn change_password(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    current: &str,
    new: &str,
) -> Result<(), PortalError> {
    let id = operator.handle.id();
    let password_hash = state
        .live
        .view()
        .operators
        .get(id)
        .map(|o| o.password_hash.clone())
        .ok_or(PortalError::SignedOut)?;
    let who = OwnPassword {
        realm: Realm::Operator,
        subject_id: id,
        email: &operator.email,
        password_hash,
        session_token: operator.token(),
    };
    change_own_password(state, who, current, new, |password_hash| async move {
        let change = OperatorCommand::ChangePassword {
            password_hash,
            temporary: false,
            expires_at: None,
        };
        let metadata = operator.handle.metadata(request);
        state
            .commands
            .operators
            .execute(id, change, &metadata)
            .await?;
        state.live.include(&state.db, types::OPERATOR, id).await?;
        Ok(())
    })
    .await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
}

pub async fn password_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let changed = change_password(
        &state,
        &operator,
        &request,
        &form.current_password,
        &form.new_password,
    )
    .await;
    match changed {
        Ok(()) => Ok(Redirect::to("/admin/account?notice=password_changed").into_response()),
        Err(error @ (PortalError::Invalid { .. } | PortalError::Locked(_))) => {
            let page = AccountPage {
                chrome: operator.chrome("account"),
                role: role_name(operator.role),
                error: Some(error.to_string()),
                notice: None,
                min_password: MIN_PASSWORD,
            };
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
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

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[utoipa::path(post, path = "/api/admin/password", tag = "admin", request_body = PasswordChange,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Changed; the operator's other sessions ended"),
        (status = 422, description = "Wrong current password or a weak new one")))]
pub async fn api_password(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    super::session::AdminWriter(operator): super::session::AdminWriter,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, PortalError> {
    change_password(
        &state,
        &operator,
        &request,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/admin/overview", tag = "admin",
    responses((status = 200, body = Overview)))]
pub async fn api_overview(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
) -> Json<Overview> {
    Json(overview(&state))
}

//! Agents' sign-in, sign-out and password, as pages and as JSON. Sign-in follows the same rules
//! as tenants' and operators' (`portal::account::verify_login`), counted in the agent realm.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use axum_extra::extract::cookie::CookieJar;
use modelrouter_domain::agent::AgentCommand;
use modelrouter_domain::aggregate_types as types;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::session::{AgentWriter, SignedInAgent};
use crate::gateway::{AppState, Caller, RequestId};
use crate::portal::account::{start_session, verify_login, CsrfForm, LoginSubject, MIN_PASSWORD};
use crate::portal::login::{
    account_notice, change_own_password, site_login_page, site_login_submit, LoginForm, NextQuery,
    NoticeQuery, OwnPassword,
};
use crate::portal::session;
use crate::portal::{render, Chrome, PortalError, Site};
use crate::store::sessions::{self as store_sessions, Realm};
use crate::store::LoginKind;

/// Checks an agent's email and password; returns the agent id. A disabled agent cannot sign in.
async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    request: &RequestId,
) -> Result<String, PortalError> {
    let find = |email: String| async move {
        let Some(id) = crate::store::email_owner(&state.db, &email, LoginKind::Agent).await? else {
            return Ok(None);
        };
        if !state.live.view().agents.contains_key(&id) {
            state.live.include(&state.db, types::AGENT, &id).await?;
        }
        let view = state.live.view();
        Ok(view
            .agents
            .get(&id)
            .filter(|agent| !agent.disabled)
            .map(|agent| LoginSubject {
                id: id.clone(),
                password_hash: agent.password_hash.clone(),
                one_time_password: agent.one_time_password,
            }))
    };
    verify_login(state, Realm::Agent, email, password, request, find).await
}

pub async fn login_page(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    jar: CookieJar,
    agent: Option<SignedInAgent>,
    Query(query): Query<NextQuery>,
) -> Result<Response, PortalError> {
    let signed_in = agent.is_some();
    site_login_page(&state, Site::Agent, &caller, jar, signed_in, query).await
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
    site_login_submit(&state, Site::Agent, &caller, jar, form, sign_in).await
}

pub async fn logout_submit(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PortalError> {
    agent.verify_csrf(&form.csrf)?;
    crate::portal::login::sign_out(&state, jar, Site::Agent, agent.token()).await
}

#[derive(Template)]
#[template(path = "agent/account.html")]
struct AccountPage {
    chrome: Chrome,
    name: String,
    error: Option<String>,
    notice: Option<&'static str>,
    min_password: usize,
}

pub async fn account_page(
    agent: SignedInAgent,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let page = AccountPage {
        chrome: agent.chrome("account"),
        name: agent.name.clone(),
        error: None,
        notice: account_notice(query.notice.as_deref()),
        min_password: MIN_PASSWORD,
    };
    Ok(render(&page)?.into_response())
}

/// Changes the agent's password after checking the current one; ends the agent's other sessions.
async fn change_password(
    state: &AppState,
    agent: &SignedInAgent,
    current: &str,
    new: &str,
    request: &RequestId,
) -> Result<(), PortalError> {
    let id = agent.scope.agent_id();
    let password_hash = state
        .live
        .view()
        .agents
        .get(id)
        .map(|a| a.password_hash.clone())
        .ok_or(PortalError::SignedOut)?;
    let who = OwnPassword {
        realm: Realm::Agent,
        subject_id: id,
        email: &agent.email,
        password_hash,
        session_token: agent.token(),
    };
    change_own_password(state, who, current, new, |password_hash| async move {
        let change = AgentCommand::ChangePassword {
            password_hash,
            temporary: false,
            expires_at: None,
        };
        let metadata = agent.scope.metadata(request);
        state.commands.agents.execute(id, change, &metadata).await?;
        state.live.include(&state.db, types::AGENT, id).await?;
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
    agent: SignedInAgent,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PortalError> {
    agent.verify_csrf(&form.csrf)?;
    match change_password(
        &state,
        &agent,
        &form.current_password,
        &form.new_password,
        &request,
    )
    .await
    {
        Ok(()) => Ok(Redirect::to("/agent?notice=password_changed").into_response()),
        Err(error @ (PortalError::Invalid { .. } | PortalError::Locked(_))) => {
            let page = AccountPage {
                chrome: agent.chrome("account"),
                name: agent.name.clone(),
                error: Some(error.to_string()),
                notice: None,
                min_password: MIN_PASSWORD,
            };
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

// ---- JSON ----

#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    email: String,
    password: String,
}

/// The signed-in agent, and the CSRF token its writes must send as `X-CSRF-Token`.
#[derive(Serialize, ToSchema)]
pub struct AgentSession {
    agent_id: String,
    email: String,
    name: String,
    referral_code: String,
    commission_bps: u32,
    csrf_token: String,
}

impl AgentSession {
    fn of(agent: &SignedInAgent) -> AgentSession {
        AgentSession {
            agent_id: agent.scope.agent_id().to_string(),
            email: agent.email.clone(),
            name: agent.name.clone(),
            referral_code: agent.referral_code.clone(),
            commission_bps: agent.commission_bps,
            csrf_token: agent.csrf.clone(),
        }
    }
}

#[utoipa::path(post, path = "/api/agent/login", tag = "agent", request_body = Credentials,
    security(()),
    responses((status = 200, body = AgentSession, description = "Signed in; sets the mr_agent_session cookie"),
        (status = 401, description = "Wrong email or password"), (status = 429, description = "Locked for a while")))]
pub async fn api_login(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<Response, PortalError> {
    let id = sign_in(&state, &body.email, &body.password, &request).await?;
    let (jar, csrf) = start_session(&state, &caller, jar, Realm::Agent, &id).await?;
    let view = state.live.view();
    let agent = view.agents.get(&id).ok_or(PortalError::SignedOut)?;
    let session = AgentSession {
        agent_id: id.clone(),
        email: agent.email.clone(),
        name: agent.name.clone(),
        referral_code: agent.referral_code.clone(),
        commission_bps: agent.commission_bps,
        csrf_token: csrf,
    };
    Ok((jar, Json(session)).into_response())
}

#[utoipa::path(get, path = "/api/agent/session", tag = "agent",
    responses((status = 200, body = AgentSession), (status = 401, description = "Not signed in")))]
pub async fn api_session(agent: SignedInAgent) -> Json<AgentSession> {
    Json(AgentSession::of(&agent))
}

#[utoipa::path(post, path = "/api/agent/logout", tag = "agent",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Signed out")))]
pub async fn api_logout(
    State(state): State<Arc<AppState>>,
    AgentWriter(agent): AgentWriter,
    jar: CookieJar,
) -> Result<Response, PortalError> {
    store_sessions::end_session(&state.db, agent.token()).await?;
    let jar = session::clear_session(jar, Realm::Agent);
    Ok((StatusCode::NO_CONTENT, jar).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[utoipa::path(post, path = "/api/agent/password", tag = "agent", request_body = PasswordChange,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Changed; the agent's other sessions ended"),
        (status = 422, description = "Wrong current password or a weak new one")))]
pub async fn api_password(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AgentWriter(agent): AgentWriter,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, PortalError> {
    change_password(
        &state,
        &agent,
        &body.current_password,
        &body.new_password,
        &request,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

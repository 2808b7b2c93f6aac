//! Who the tenant is: sign-up (limited per client address; the email verified by a mailed link,
//! `verification.rs`), sign-in (with lockout, `login.rs`), sign-out and password change — as
//! pages and as JSON.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use axum_extra::extract::cookie::CookieJar;
use chrono::Utc;
use modelrouter_domain::aggregate_types as types;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::tenant::{normalize_email, TenantCommand, TenantStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::session::{self, ApiWriter, SignedIn};
use super::{render, Chrome, PortalError};
use crate::gateway::{AppState, Caller, RequestId};
use crate::store::sessions::{self as store_sessions, Realm};
use crate::store::{release_email, reserve_email, LoginKind};

use super::login::{change_own_password, hash, OwnPassword};
pub use super::login::{check_password, start_session, verify_login, LoginSubject, MIN_PASSWORD};

fn meta(actor: Actor, request: &RequestId) -> Metadata {
    let metadata = Metadata::new(&actor).request_id(&request.id);
    match &request.client_ip {
        Some(ip) => metadata.client_ip(ip),
        None => metadata,
    }
}

pub fn tenant_meta(signed_in: &SignedIn, request: &RequestId) -> Metadata {
    meta(
        Actor::Tenant(signed_in.scope.tenant_id().to_string()),
        request,
    )
}

/// What a sign-up form or call gives.
struct NewTenant<'a> {
    name: &'a str,
    email: &'a str,
    password: &'a str,
    referral_code: &'a str,
}

/// Registers a tenant (referred by the agent whose code is given, if any), within the sign-ups
/// allowed from the client's address, makes it visible here, and mails it the link that
/// verifies its email — which the sign-up credit waits for (`verification.rs`).
async fn sign_up(
    state: &AppState,
    caller: &Caller,
    new: NewTenant<'_>,
    request: &RequestId,
) -> Result<String, PortalError> {
    let referred_by = match new.referral_code.trim() {
        "" => None,
        code => Some(super::referral::resolve(state, code).await?.0),
    };
    let email = normalize_email(new.email)
        .map_err(|_| PortalError::invalid("email", "Enter a valid email address."))?;
    let name = if new.name.trim().is_empty() {
        email.split('@').next().unwrap_or("").to_string()
    } else {
        new.name.trim().to_string()
    };
    if name.chars().count() > 200 {
        return Err(PortalError::invalid("name", "Use at most 200 characters."));
    }
    check_password(new.password, &email)?;
    count_sign_up(state, request).await?;
    let password_hash = hash(new.password.to_string()).await?;
    let tenant_id = uuid::Uuid::new_v4().to_string();
    // The reservation is the uniqueness check: of two simultaneous sign-ups, one inserts it.
    if !reserve_email(&state.db, &email, LoginKind::Tenant, &tenant_id).await? {
        return Err(PortalError::EmailTaken);
    }
    let register = TenantCommand::Register {
        email: email.clone(),
        name,
        password_hash,
        referred_by,
        verification_required: true,
    };
    let metadata = meta(Actor::Tenant(tenant_id.clone()), request);
    if let Err(error) = state
        .commands
        .tenants
        .execute(&tenant_id, register, &metadata)
        .await
    {
        release_email(&state.db, &email, &tenant_id).await?;
        return Err(error.into());
    }
    // The dashboard it lands on shows the tenant.
    state
        .live
        .include(&state.db, types::TENANT, &tenant_id)
        .await?;
    super::verification::after_sign_up(state, caller, &tenant_id, &email).await;
    Ok(tenant_id)
}

/// Counts a sign-up from the client's address; refuses it past `signups_per_address` within
/// `signup_window`. A sign-up that then fails (the email is taken) still counts: trying emails
/// is what the limit is for. Without a client address (no TCP peer) nothing is counted.
async fn count_sign_up(state: &AppState, request: &RequestId) -> Result<(), PortalError> {
    let limit = state.settings.signups_per_address;
    let Some(ip) = request.client_ip.as_deref().filter(|_| limit > 0) else {
        return Ok(());
    };
    let subject = format!("signup:ip:{ip}");
    let window = state.settings.signup_window;
    match store_sessions::count_within_limit(&state.db, &subject, Utc::now(), limit, window).await?
    {
        None => Ok(()),
        Some(until) => Err(PortalError::Throttled {
            what: "Too many accounts were created from your network recently.",
            until,
        }),
    }
}

/// Checks a tenant's email and password; returns the tenant id.
async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    request: &RequestId,
) -> Result<String, PortalError> {
    let id = verify_login(
        state,
        Realm::Tenant,
        email,
        password,
        request,
        |email| async move {
            let Some(id) = crate::store::email_owner(&state.db, &email, LoginKind::Tenant).await?
            else {
                return Ok(None);
            };
            if !state.live.view().tenants.contains_key(&id) {
                // Signed up a moment ago, maybe on another replica.
                state.live.include(&state.db, types::TENANT, &id).await?;
            }
            let view = state.live.view();
            Ok(view.tenants.get(&id).map(|tenant| LoginSubject {
                id: id.clone(),
                password_hash: tenant.password_hash.clone(),
                one_time_password: tenant.one_time_password,
            }))
        },
    )
    .await?;
    let suspended = state
        .live
        .view()
        .tenants
        .get(&id)
        .is_some_and(|tenant| tenant.status == TenantStatus::Suspended);
    if suspended {
        return Err(PortalError::Suspended);
    }
    Ok(id)
}

/// Only the portal's own paths are followed after sign-in (the rule of every site).
fn safe_next(next: Option<&str>) -> String {
    super::login::safe_next(super::Site::Portal, next)
}

// ---- pages ----

#[derive(Template)]
#[template(path = "portal/signup.html")]
struct SignupPage {
    csrf: String,
    name: String,
    email: String,
    referral_code: String,
    /// The referring agent's name, when the code names one.
    referred_by: Option<String>,
    error: Option<String>,
    error_field: &'static str,
    min_password: usize,
}

impl SignupPage {
    fn new(state: &AppState, csrf: String, referral_code: String) -> SignupPage {
        let referred_by = match referral_code.as_str() {
            "" => None,
            code => super::referral::lookup(state, code).map(|(_, name)| name),
        };
        SignupPage {
            csrf,
            name: String::new(),
            email: String::new(),
            referral_code,
            referred_by,
            error: None,
            error_field: "",
            min_password: MIN_PASSWORD,
        }
    }
}

#[derive(Deserialize)]
pub struct SignupQuery {
    #[serde(rename = "ref")]
    referral: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    next: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    notice: Option<String>,
}

pub async fn signup_page(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    jar: CookieJar,
    Query(query): Query<SignupQuery>,
) -> Result<Response, PortalError> {
    let code = super::referral::remembered(query.referral.as_deref(), &jar);
    let (jar, csrf) = session::login_csrf(&state, &caller, jar);
    let mut page = SignupPage::new(&state, csrf, code);
    if !page.referral_code.is_empty() && page.referred_by.is_none() {
        page.error_field = "referral_code";
        page.error =
            Some("This referral code is not valid. Check it, or leave the field empty.".into());
    }
    Ok((jar, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub struct SignupForm {
    csrf: String,
    #[serde(default)]
    name: String,
    email: String,
    password: String,
    password_confirm: String,
    #[serde(default)]
    referral_code: String,
}

pub async fn signup_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    jar: CookieJar,
    Form(form): Form<SignupForm>,
) -> Result<Response, PortalError> {
    session::verify_login_csrf(&jar, &form.csrf)?;
    let result = if form.password != form.password_confirm {
        Err(PortalError::invalid(
            "password_confirm",
            "The two passwords do not match.",
        ))
    } else {
        let new = NewTenant {
            name: &form.name,
            email: &form.email,
            password: &form.password,
            referral_code: &form.referral_code,
        };
        sign_up(&state, &caller, new, &request).await
    };
    match result {
        Ok(tenant_id) => {
            let (jar, _) = start_session(&state, &caller, jar, Realm::Tenant, &tenant_id).await?;
            Ok((jar, Redirect::to("/portal?notice=welcome")).into_response())
        }
        Err(
            error @ (PortalError::Invalid { .. }
            | PortalError::EmailTaken
            | PortalError::Throttled { .. }),
        ) => {
            let mut page = SignupPage::new(&state, form.csrf, form.referral_code);
            page.name = form.name;
            page.email = form.email;
            page.error_field = error.field().unwrap_or("email");
            page.error = Some(error.to_string());
            Ok((error.status(), jar, render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

pub async fn login_page(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    jar: CookieJar,
    signed_in: Option<SignedIn>,
    Query(query): Query<NextQuery>,
) -> Result<Response, PortalError> {
    if signed_in.is_some() {
        // Already signed in: straight on to where sign-in would have led.
        return Ok(Redirect::to(&safe_next(query.next.as_deref())).into_response());
    }
    let (jar, csrf) = session::login_csrf(&state, &caller, jar);
    let notice = match query.notice.as_deref() {
        Some("signed_out") => Some("You are signed out."),
        Some("password_changed") => Some("Your password was changed. Sign in again."),
        _ => None,
    };
    let page = LoginPage {
        csrf,
        email: String::new(),
        next: safe_next(query.next.as_deref()),
        error: None,
        notice,
    };
    Ok((jar, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    email: String,
    password: String,
    next: Option<String>,
}

pub async fn login_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, PortalError> {
    session::verify_login_csrf(&jar, &form.csrf)?;
    match sign_in(&state, &form.email, &form.password, &request).await {
        Ok(tenant_id) => {
            let (jar, _) = start_session(&state, &caller, jar, Realm::Tenant, &tenant_id).await?;
            let next = safe_next(form.next.as_deref());
            Ok((jar, Redirect::to(&next)).into_response())
        }
        Err(
            error @ (PortalError::BadLogin
            | PortalError::Locked(_)
            | PortalError::Suspended
            | PortalError::OneTimePasswordExpired(_)),
        ) => {
            let page = LoginPage {
                csrf: form.csrf,
                email: form.email,
                next: safe_next(form.next.as_deref()),
                error: Some(error.to_string()),
                notice: None,
            };
            Ok((error.status(), jar, render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

pub async fn logout_submit(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PortalError> {
    signed_in.verify_csrf(&form.csrf)?;
    super::login::sign_out(&state, jar, super::Site::Portal, signed_in.token()).await
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    chrome: Chrome,
    tenant_id: String,
    error: Option<String>,
    notice: Option<&'static str>,
    min_password: usize,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn account_page(
    signed_in: SignedIn,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let notice = match query.notice.as_deref() {
        Some("password_changed") => {
            Some("Your password was changed. Other sessions were signed out.")
        }
        Some("choose_password") => Some(
            "You signed in with a one-time password from support. Choose your own password \
             to continue.",
        ),
        _ => None,
    };
    let page = AccountPage {
        tenant_id: signed_in.scope.tenant_id().to_string(),
        chrome: Chrome::new(&signed_in, "account"),
        error: None,
        notice,
        min_password: MIN_PASSWORD,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

/// Changes the password after checking the current one; every other session of the tenant ends.
async fn change_password(
    state: &AppState,
    signed_in: &SignedIn,
    request: &RequestId,
    current: &str,
    new: &str,
) -> Result<(), PortalError> {
    let tenant = signed_in
        .scope
        .tenant(&state.live.view())
        .cloned()
        .ok_or(PortalError::SignedOut)?;
    let id = signed_in.scope.tenant_id();
    let who = OwnPassword {
        realm: Realm::Tenant,
        subject_id: id,
        email: &tenant.email,
        password_hash: tenant.password_hash,
        session_token: signed_in.token(),
    };
    change_own_password(state, who, current, new, |password_hash| async move {
        let change = TenantCommand::ChangePassword {
            password_hash,
            temporary: false,
            expires_at: None,
        };
        let metadata = tenant_meta(signed_in, request);
        state
            .commands
            .tenants
            .execute(id, change, &metadata)
            .await?;
        state.live.include(&state.db, types::TENANT, id).await?;
        Ok(())
    })
    .await
}

pub async fn password_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    signed_in: SignedIn,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PortalError> {
    signed_in.verify_csrf(&form.csrf)?;
    let result = if form.new_password != form.new_password_confirm {
        Err(PortalError::invalid(
            "new_password_confirm",
            "The two new passwords do not match.",
        ))
    } else {
        change_password(
            &state,
            &signed_in,
            &request,
            &form.current_password,
            &form.new_password,
        )
        .await
    };
    match result {
        Ok(()) => Ok(Redirect::to("/portal/account?notice=password_changed").into_response()),
        Err(error @ (PortalError::Invalid { .. } | PortalError::Locked(_))) => {
            let page = AccountPage {
                tenant_id: signed_in.scope.tenant_id().to_string(),
                chrome: Chrome::new(&signed_in, "account"),
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
pub struct SignupRequest {
    /// Shown in the portal; defaults to the email's local part.
    #[serde(default)]
    name: String,
    email: String,
    password: String,
    /// An agent's referral code: the new tenant is attributed to that agent.
    #[serde(default)]
    referral_code: String,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// The signed-in tenant, and the token to send as `X-CSRF-Token` with JSON writes.
#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    tenant_id: String,
    email: String,
    name: String,
    csrf_token: String,
    /// False until the tenant follows the link mailed at sign-up; the sign-up credit waits
    /// for it.
    email_verified: bool,
}

#[utoipa::path(post, path = "/api/portal/signup", tag = "account",
    request_body = SignupRequest,
    responses((status = 201, body = SessionInfo, description = "Signed up and signed in; the session cookie is set"),
              (status = 409, description = "The email already has an account"),
              (status = 422, description = "Invalid email or password, with the field"),
              (status = 429, description = "Too many sign-ups from this client address lately; see Retry-After")))]
pub async fn api_signup(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    jar: CookieJar,
    Json(body): Json<SignupRequest>,
) -> Result<Response, PortalError> {
    let new = NewTenant {
        name: &body.name,
        email: &body.email,
        password: &body.password,
        referral_code: &body.referral_code,
    };
    let tenant_id = sign_up(&state, &caller, new, &request).await?;
    let (jar, csrf) = start_session(&state, &caller, jar, Realm::Tenant, &tenant_id).await?;
    let info = session_info(&state, &tenant_id, csrf);
    Ok((StatusCode::CREATED, jar, Json(info)).into_response())
}

#[utoipa::path(post, path = "/api/portal/login", tag = "account",
    request_body = LoginRequest,
    responses((status = 200, body = SessionInfo, description = "Signed in; the session cookie is set"),
              (status = 401, description = "Wrong email or password (one message for both)"),
              (status = 429, description = "Locked after repeated failures; see Retry-After")))]
pub async fn api_login(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    jar: CookieJar,
    Json(body): Json<LoginRequest>,
) -> Result<Response, PortalError> {
    let tenant_id = sign_in(&state, &body.email, &body.password, &request).await?;
    let (jar, csrf) = start_session(&state, &caller, jar, Realm::Tenant, &tenant_id).await?;
    let info = session_info(&state, &tenant_id, csrf);
    Ok((jar, Json(info)).into_response())
}

fn session_info(state: &AppState, tenant_id: &str, csrf: String) -> SessionInfo {
    let view = state.live.view();
    let tenant = view.tenants.get(tenant_id);
    SessionInfo {
        tenant_id: tenant_id.to_string(),
        email: tenant.map(|t| t.email.clone()).unwrap_or_default(),
        name: tenant.map(|t| t.name.clone()).unwrap_or_default(),
        csrf_token: csrf,
        email_verified: tenant.is_some_and(|t| !t.email_unverified),
    }
}

#[utoipa::path(get, path = "/api/portal/session", tag = "account",
    responses((status = 200, body = SessionInfo), (status = 401, description = "Not signed in")))]
pub async fn api_session(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
) -> Json<SessionInfo> {
    Json(session_info(
        &state,
        signed_in.scope.tenant_id(),
        signed_in.csrf,
    ))
}

#[utoipa::path(post, path = "/api/portal/logout", tag = "account",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Signed out"), (status = 403, description = "Missing or wrong CSRF token")))]
pub async fn api_logout(
    State(state): State<Arc<AppState>>,
    ApiWriter(signed_in): ApiWriter,
    jar: CookieJar,
) -> Result<Response, PortalError> {
    store_sessions::end_session(&state.db, signed_in.token()).await?;
    Ok((
        StatusCode::NO_CONTENT,
        session::clear_session(jar, Realm::Tenant),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[utoipa::path(post, path = "/api/portal/password", tag = "account",
    request_body = PasswordChange,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Changed; the tenant's other sessions ended"),
              (status = 422, description = "Wrong current password or a weak new one")))]
pub async fn api_password(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    ApiWriter(signed_in): ApiWriter,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, PortalError> {
    change_password(
        &state,
        &signed_in,
        &request,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Portal sessions at the HTTP edge: the session cookie, the [`SignedIn`] extractor that turns
//! it into a [`TenantScope`], and CSRF checks.
//!
//! - The cookie carries a random token; the server keeps only its hash (`store::sessions`), so
//!   sessions end server-side (sign-out, password change, expiry) whatever the browser keeps.
//! - Cookies are `HttpOnly` (no script reads them), `SameSite=Lax` and `Secure` when the portal
//!   is served over HTTPS.
//! - Every form carries the session's CSRF token; JSON writes send it as `X-CSRF-Token`. Before
//!   sign-in there is no session, so the sign-in and sign-up forms use a double-submit cookie.
//! - An API key never authenticates here: only a session cookie does.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use chrono::Utc;
use modelrouter_domain::aggregate_types::TENANT;
use modelrouter_domain::tenant::TenantStatus;
use modelrouter_projections::live::OneTimePassword;
use subtle::ConstantTimeEq;

use super::{PortalError, Site, TenantScope};
use crate::gateway::{AppState, Caller};
use crate::store::sessions::{self, Realm, Session, SessionPolicy};

/// The tenant's session cookie. Operators and agents have their own ([`cookie_name`]).
pub const SESSION_COOKIE: &str = "mr_session";
/// The double-submit token of the pre-sign-in forms.
pub const CSRF_COOKIE: &str = "mr_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn policy(state: &AppState) -> SessionPolicy {
    SessionPolicy {
        idle: state.settings.session_idle,
        absolute: state.settings.session_absolute,
    }
}

/// A signed-in tenant.
pub struct SignedIn {
    pub scope: TenantScope,
    pub email: String,
    pub name: String,
    pub csrf: String,
    token: String,
}

impl SignedIn {
    /// The token of this session (to keep it when the others end).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Checks a form's CSRF token against the session's.
    pub fn verify_csrf(&self, sent: &str) -> Result<(), PortalError> {
        check_csrf(sent, &self.csrf)
    }
}

/// The cookie that carries a session of `realm`. Each realm has its own, so one browser may be
/// signed in as a tenant and as an operator at once without either session opening the other's
/// pages.
pub fn cookie_name(realm: Realm) -> &'static str {
    match realm {
        Realm::Tenant => SESSION_COOKIE,
        Realm::Operator => "mr_admin_session",
        Realm::Agent => "mr_agent_session",
    }
}

/// The live session of `realm` the request's cookie names, with its token.
pub async fn current_session(
    parts: &Parts,
    state: &AppState,
    realm: Realm,
) -> Result<(Session, String), PortalError> {
    let jar = CookieJar::from_headers(&parts.headers);
    let token = jar
        .get(cookie_name(realm))
        .map(|cookie| cookie.value().to_string())
        .ok_or(PortalError::SignedOut)?;
    let session = sessions::find_session(&state.db, realm, &token, Utc::now(), &policy(state))
        .await?
        .ok_or(PortalError::SignedOut)?;
    Ok((session, token))
}

/// The CSRF token a JSON write sent in `X-CSRF-Token`.
pub fn sent_csrf(parts: &Parts) -> &str {
    parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Checks a form's or a header's CSRF token against the session's, for every site.
pub fn check_csrf(sent: &str, session_csrf: &str) -> Result<(), PortalError> {
    if same_secret(sent, session_csrf) {
        Ok(())
    } else {
        Err(PortalError::Csrf)
    }
}

/// A session check for pages that also serve visitors who are not signed in (the sign-in pages):
/// signed out, or suspended, is `None`; any other failure stays an error.
pub fn signed_in_or_none<T>(checked: Result<T, PortalError>) -> Result<Option<T>, PortalError> {
    match checked {
        Ok(signed_in) => Ok(Some(signed_in)),
        Err(PortalError::SignedOut | PortalError::Suspended) => Ok(None),
        Err(other) => Err(other),
    }
}

pub fn same_secret(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let (session, token) = current_session(parts, state, Realm::Tenant).await?;
        let tenant = match state.live.view().tenants.get(&session.subject_id) {
            Some(tenant) => tenant.clone(),
            None => {
                // Signed up a moment ago on another replica: read the log once more.
                state
                    .live
                    .include(&state.db, TENANT, &session.subject_id)
                    .await?;
                state
                    .live
                    .view()
                    .tenants
                    .get(&session.subject_id)
                    .cloned()
                    .ok_or(PortalError::SignedOut)?
            }
        };
        if tenant.status == TenantStatus::Suspended {
            sessions::end_session(&state.db, &token).await?;
            return Err(PortalError::Suspended);
        }
        require_own_password(Site::Portal, tenant.one_time_password, parts)?;
        Ok(SignedIn {
            scope: TenantScope::signed_in(session.subject_id),
            email: tenant.email,
            name: tenant.name,
            csrf: session.csrf,
            token,
        })
    }
}

/// Someone signed in with a one-time password (an operator's reset, the CLI, the console) must
/// choose their own before anything else: on every site, only the account page, the password
/// change, the session and sign-out are open; pages send them to the password form, the API
/// answers 403 `password_change_required`.
pub fn require_own_password(
    site: Site,
    one_time: Option<OneTimePassword>,
    parts: &Parts,
) -> Result<(), PortalError> {
    if one_time.is_none() || open_before_password_change(site, &parts.method, parts.uri.path()) {
        Ok(())
    } else {
        Err(PortalError::PasswordChangeRequired)
    }
}

fn open_before_password_change(site: Site, method: &Method, path: &str) -> bool {
    let (home, api) = (site.home(), site.api());
    match *method {
        Method::GET => path == format!("{home}/account") || path == format!("{api}/session"),
        Method::POST => [
            format!("{home}/account/password"),
            format!("{api}/password"),
            format!("{home}/logout"),
            format!("{api}/logout"),
        ]
        .iter()
        .any(|open| open == path),
        _ => false,
    }
}

/// Whether a visitor is signed in, for pages that also serve visitors who are not (sign-in).
impl axum::extract::OptionalFromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Option<Self>, Self::Rejection> {
        signed_in_or_none(
            <SignedIn as FromRequestParts<Arc<AppState>>>::from_request_parts(parts, state).await,
        )
    }
}

/// A signed-in tenant whose JSON write carries the session's CSRF token in `X-CSRF-Token`.
pub struct ApiWriter(pub SignedIn);

impl FromRequestParts<Arc<AppState>> for ApiWriter {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let signed_in = SignedIn::from_request_parts(parts, state).await?;
        signed_in.verify_csrf(sent_csrf(parts))?;
        Ok(ApiWriter(signed_in))
    }
}

fn cookie(state: &AppState, caller: &Caller, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(caller.is_https(&state.settings))
        .path("/")
        .build()
}

/// The cookie that carries a new session of `realm`. It lives as long as the browser does; the
/// server ends the session on its own clock.
pub fn session_cookie(
    state: &AppState,
    caller: &Caller,
    realm: Realm,
    token: String,
) -> Cookie<'static> {
    cookie(state, caller, cookie_name(realm), token)
}

/// Removes the session cookie of `realm` from the browser.
pub fn clear_session(jar: CookieJar, realm: Realm) -> CookieJar {
    jar.remove(Cookie::build(cookie_name(realm)).path("/"))
}

/// The pre-sign-in CSRF token: the browser's cookie when it has one, else a new one to set.
pub fn login_csrf(state: &AppState, caller: &Caller, jar: CookieJar) -> (CookieJar, String) {
    if let Some(existing) = jar.get(CSRF_COOKIE).map(|c| c.value().to_string()) {
        if !existing.is_empty() {
            return (jar, existing);
        }
    }
    let token = sessions::new_token();
    let jar = jar.add(cookie(state, caller, CSRF_COOKIE, token.clone()));
    (jar, token)
}

/// Checks a pre-sign-in form's token against its cookie.
pub fn verify_login_csrf(jar: &CookieJar, sent: &str) -> Result<(), PortalError> {
    match jar.get(CSRF_COOKIE) {
        Some(cookie) if same_secret(sent, cookie.value()) => Ok(()),
        _ => Err(PortalError::Csrf),
    }
}

//! Referrals: an agent's link (`/r/{code}`) or code brings a tenant in, and the tenant's
//! `Registered` event names the agent. The link remembers its code in a cookie for 30 days, so a
//! visitor who looks around before signing up is still attributed; a code typed into the sign-up
//! form wins over the cookie.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use super::error::urlencode;
use super::PortalError;
use crate::gateway::{AppState, Caller};

pub const REFERRAL_COOKIE: &str = "mr_ref";
const REMEMBER_DAYS: i64 = 30;

/// The agent a referral code names, as this replica's view has it: its id and name.
pub fn lookup(state: &AppState, code: &str) -> Option<(String, String)> {
    state
        .live
        .view()
        .agent_by_referral(code)
        .map(|(id, agent)| (id.clone(), agent.name.clone()))
}

/// The agent a referral code names: its id and name. A code this replica does not know yet is
/// looked for once more after reading the log (the agent may have been created a moment ago on
/// another replica). An unknown or disabled agent's code is refused on the form's referral field.
pub async fn resolve(state: &AppState, code: &str) -> Result<(String, String), PortalError> {
    if let Some(found) = lookup(state, code) {
        return Ok(found);
    }
    state.live.refresh(&state.db).await?;
    lookup(state, code).ok_or_else(|| {
        PortalError::invalid(
            "referral_code",
            "This referral code is not valid. Check it, or leave the field empty.",
        )
    })
}

/// The code a sign-up form starts with: the link's `?ref=`, else the remembered cookie.
pub fn remembered(query: Option<&str>, jar: &CookieJar) -> String {
    query
        .map(str::to_string)
        .or_else(|| jar.get(REFERRAL_COOKIE).map(|c| c.value().to_string()))
        .map(|code| code.trim().to_uppercase())
        .unwrap_or_default()
}

/// `GET /r/{code}`: remembers the code and opens the sign-up form with it.
pub async fn link(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    jar: CookieJar,
    Path(code): Path<String>,
) -> Response {
    let code = code.trim().to_uppercase();
    // Only a code that names an agent is remembered; any other still reaches the form, which
    // says what is wrong with it.
    let jar = if resolve(&state, &code).await.is_ok() {
        let secure = caller.is_https(&state.settings);
        jar.add(
            Cookie::build((REFERRAL_COOKIE, code.clone()))
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(secure)
                .path("/")
                .max_age(cookie::time::Duration::days(REMEMBER_DAYS))
                .build(),
        )
    } else {
        jar
    };
    let target = format!("/portal/signup?ref={}", urlencode(&code));
    (jar, Redirect::to(&target)).into_response()
}

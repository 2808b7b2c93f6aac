//! Credentials and sign-in, shared by the three sites for people — tenants (`/portal`),
//! operators (`/admin`) and agents (`/agent`): the password rules, argon2id hashing off the async
//! threads, sign-in with lockout, and starting a session in a realm.
//!
//! Sign-in failures are counted per email and per client address (`store::sessions`), per
//! realm; the message never says whether the email exists, and an unknown email costs the same
//! argon2id verification as a known one, so timing does not tell either.

use std::sync::OnceLock;

use askama::Template;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use chrono::{DateTime, Utc};
use modelrouter_domain::tenant::normalize_email;
use modelrouter_projections::live::OneTimePassword;
use serde::Deserialize;

use super::{render, session, PortalError, Site};
use crate::crypto::{hash_password, verify_password};
use crate::gateway::{AppState, Caller, RequestId};
use crate::store::sessions::{self as store_sessions, Realm, ThrottleRule};

pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 128;

/// Refuses passwords that are short, one kind of character, or easy to guess.
pub fn check_password(password: &str, email: &str) -> Result<(), PortalError> {
    let invalid = |message: &str| Err(PortalError::invalid("password", message));
    let chars = password.chars().count();
    if chars < MIN_PASSWORD {
        return invalid("Use at least 10 characters for your password.");
    }
    if chars > MAX_PASSWORD {
        return invalid("Use at most 128 characters for your password.");
    }
    let letters = password.chars().any(char::is_alphabetic);
    let others = password.chars().any(|c| !c.is_alphabetic());
    if !letters || !others {
        return invalid("Mix letters with digits or symbols in your password.");
    }
    let lower = password.to_lowercase();
    let local = email.split('@').next().unwrap_or("").to_lowercase();
    if local.len() >= 4 && lower.contains(&local) {
        return invalid("Your password must not contain your email address.");
    }
    let distinct: std::collections::HashSet<char> = lower.chars().collect();
    if distinct.len() < 5 || COMMON.iter().any(|common| lower.contains(common)) {
        return invalid("This password is too easy to guess. Choose a less common one.");
    }
    Ok(())
}

/// Fragments that make a password guessable however long it is.
const COMMON: &[&str] = &[
    "password", "passw0rd", "12345678", "qwertyui", "asdfghjk", "letmein1", "iloveyou", "abcdefgh",
    "welcome1", "11111111", "00000000", "changeme",
];

pub async fn hash(password: String) -> Result<String, PortalError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(PortalError::internal)?
        .map_err(PortalError::internal)
}

pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// A real argon2id hash of nothing in particular, verified against when the email is unknown.
fn decoy_hash() -> String {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY
        .get_or_init(|| hash_password("decoy password, never matches").unwrap_or_default())
        .clone()
}

/// The prefix of a realm's throttle subjects. Tenants' subjects keep their unprefixed names from
/// before there were other realms.
fn realm_prefix(realm: Realm) -> String {
    match realm {
        Realm::Tenant => String::new(),
        other => format!("{}:", other.as_str()),
    }
}

/// The throttle subjects of a sign-in: the email and the client address, each counted per
/// realm, so an operator's failures never lock a tenant out (or the other way round).
fn throttle_subjects(realm: Realm, email: &str, request: &RequestId) -> Vec<(String, u32)> {
    let prefix = realm_prefix(realm);
    let mut subjects = vec![(format!("{prefix}email:{email}"), 0)];
    if let Some(ip) = &request.client_ip {
        subjects.push((format!("{prefix}ip:{ip}"), 1));
    }
    subjects
}

/// The lockout rule for failures counted per email (password changes count there too).
pub fn email_rule(state: &AppState) -> ThrottleRule {
    rule(state, 0)
}

fn rule(state: &AppState, which: u32) -> ThrottleRule {
    ThrottleRule {
        max_failures: if which == 0 {
            state.settings.login_failures_per_email
        } else {
            state.settings.login_failures_per_ip
        },
        window: state.settings.login_window,
        lockout: state.settings.login_lockout,
    }
}

/// Who a sign-in form names, as the realm's directory has it.
pub struct LoginSubject {
    pub id: String,
    pub password_hash: String,
    /// Set while the password is a one-time password someone gave.
    pub one_time_password: Option<OneTimePassword>,
}

/// Checks an email and password in `realm`, with the same lockout and timing for every realm:
/// `find` looks the normalized email up; an unknown email costs one decoy verification, and the
/// answer never says which of the two was wrong. A right one-time password past its expiry is
/// refused with its own message (only someone who knows it learns that). Returns the subject's
/// id.
pub async fn verify_login<F, Fut>(
    state: &AppState,
    realm: Realm,
    email: &str,
    password: &str,
    request: &RequestId,
    find: F,
) -> Result<String, PortalError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<LoginSubject>, PortalError>>,
{
    let email = normalize_email(email).map_err(|_| PortalError::BadLogin)?;
    let now = Utc::now();
    let subjects = throttle_subjects(realm, &email, request);
    for (subject, _) in &subjects {
        if let Some(until) = store_sessions::locked_until(&state.db, subject, now).await? {
            return Err(PortalError::Locked(until));
        }
    }
    let found = find(email).await?;
    let hash = found
        .as_ref()
        .map(|s| s.password_hash.clone())
        .unwrap_or_else(decoy_hash);
    let matches = verify(password.to_string(), hash).await;
    let (Some(found), true) = (found, matches) else {
        let mut locked = None;
        for (subject, which) in &subjects {
            if let Some(until) =
                store_sessions::record_failure(&state.db, subject, now, &rule(state, *which))
                    .await?
            {
                locked = Some(until);
            }
        }
        return Err(locked.map_or(PortalError::BadLogin, PortalError::Locked));
    };
    store_sessions::clear_failures(&state.db, &subjects[0].0).await?;
    if found
        .one_time_password
        .is_some_and(|one_time| one_time.expired_at(now))
    {
        return Err(PortalError::OneTimePasswordExpired(realm));
    }
    Ok(found.id)
}

/// When a one-time password given now stops working (`MODELROUTER_ONE_TIME_PASSWORD_HOURS`).
pub fn one_time_expiry(state: &AppState) -> DateTime<Utc> {
    one_time_expiry_after(state.settings.one_time_password_ttl)
}

/// When a one-time password given now with a lifetime of `ttl` stops working.
pub fn one_time_expiry_after(ttl: std::time::Duration) -> DateTime<Utc> {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    Utc::now()
        .checked_add_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whose password a signed-in person changes, in which realm, from which session.
pub struct OwnPassword<'a> {
    pub realm: Realm,
    pub subject_id: &'a str,
    pub email: &'a str,
    /// The hash of the password they have now.
    pub password_hash: String,
    /// The session that stays signed in; every other session of the subject ends.
    pub session_token: &'a str,
}

/// Changes a signed-in person's own password, the same way in every realm: the current one must
/// be right (wrong guesses count toward the email's sign-in lockout), the new one must follow
/// the rules and differ from the current one. `save` records the new hash as the person's own
/// (not one-time) password; then every other session of the subject ends.
pub async fn change_own_password<F, Fut>(
    state: &AppState,
    who: OwnPassword<'_>,
    current: &str,
    new: &str,
    save: F,
) -> Result<(), PortalError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), PortalError>>,
{
    let subject = format!("{}email:{}", realm_prefix(who.realm), who.email);
    let now = Utc::now();
    if let Some(until) = store_sessions::locked_until(&state.db, &subject, now).await? {
        return Err(PortalError::Locked(until));
    }
    if !verify(current.to_string(), who.password_hash).await {
        // Guessing through this form counts like guessing at sign-in.
        store_sessions::record_failure(&state.db, &subject, now, &email_rule(state)).await?;
        return Err(PortalError::invalid(
            "current_password",
            "Your current password is incorrect.",
        ));
    }
    check_password(new, who.email)?;
    if new == current {
        return Err(PortalError::invalid(
            "new_password",
            "Choose a password different from the current one.",
        ));
    }
    save(hash(new.to_string()).await?).await?;
    store_sessions::end_subject_sessions(
        &state.db,
        who.realm,
        who.subject_id,
        Some(who.session_token),
    )
    .await?;
    Ok(())
}

/// Starts a session of `realm` for `subject_id` and returns the cookie jar that carries it, with
/// its CSRF token.
pub async fn start_session(
    state: &AppState,
    caller: &Caller,
    jar: CookieJar,
    realm: Realm,
    subject_id: &str,
) -> Result<(CookieJar, String), PortalError> {
    let new = store_sessions::create_session(
        &state.db,
        realm,
        subject_id,
        Utc::now(),
        &session::policy(state),
    )
    .await?;
    let jar = jar
        .add(session::session_cookie(state, caller, realm, new.token))
        .remove(axum_extra::extract::cookie::Cookie::build(session::CSRF_COOKIE).path("/"));
    Ok((jar, new.csrf))
}

/// Ends the session `token` of `site`, clears its cookie and sends the browser to the site's
/// sign-in page: the sign-out form of every site, once its CSRF token is checked.
pub async fn sign_out(
    state: &AppState,
    jar: CookieJar,
    site: Site,
    token: &str,
) -> Result<Response, PortalError> {
    store_sessions::end_session(&state.db, token).await?;
    let jar = session::clear_session(jar, site.realm());
    let login = format!("{}?notice=signed_out", site.login());
    Ok((jar, Redirect::to(&login)).into_response())
}

/// Only paths of the site itself are followed after sign-in; anything else — another site,
/// another host, or a path with control characters (CR, LF, NUL…), which no `Location` header
/// may carry — is ignored for the site's home.
pub fn safe_next(site: Site, next: Option<&str>) -> String {
    let home = site.home();
    match next {
        Some(path)
            if (path == home
                || path.starts_with(&format!("{home}/"))
                || path.starts_with(&format!("{home}?")))
                && !path.starts_with("//")
                && !path.chars().any(char::is_control)
                && axum::http::HeaderValue::from_str(path).is_ok() =>
        {
            path.to_string()
        }
        _ => home.to_string(),
    }
}

/// The sign-in page of the console or the agent portal: one page, told apart by its site.
#[derive(Template)]
#[template(path = "portal/site_login.html")]
struct SiteLoginPage {
    site: Site,
    csrf: String,
    email: String,
    next: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

impl SiteLoginPage {
    fn heading(&self) -> &'static str {
        match self.site {
            Site::Admin => "Operations console",
            Site::Agent => "Agent portal",
            Site::Portal => "Sign in",
        }
    }
    fn title(&self) -> &'static str {
        match self.site {
            Site::Admin => "Console sign-in",
            Site::Agent => "Agent sign-in",
            Site::Portal => "Sign in",
        }
    }
    fn audience(&self) -> &'static str {
        match self.site {
            Site::Admin => "For platform operators.",
            Site::Agent => "For Model Router agents.",
            Site::Portal => "",
        }
    }
}

/// The query of an account page: a notice to show.
#[derive(Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

/// The notice of the console's and the agent portal's account pages.
pub fn account_notice(notice: Option<&str>) -> Option<&'static str> {
    match notice {
        Some("choose_password") => Some(
            "You signed in with a one-time password. Choose your own password to continue: \
             nothing else opens until you do.",
        ),
        Some("password_changed") => {
            Some("Your password was changed. Other sessions were signed out.")
        }
        _ => None,
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    notice: Option<String>,
}

/// `GET` of a site's sign-in page; someone already signed in goes straight on.
pub async fn site_login_page(
    state: &AppState,
    site: Site,
    caller: &Caller,
    jar: CookieJar,
    signed_in: bool,
    query: NextQuery,
) -> Result<Response, PortalError> {
    let next = safe_next(site, query.next.as_deref());
    if signed_in {
        return Ok(Redirect::to(&next).into_response());
    }
    let (jar, csrf) = session::login_csrf(state, caller, jar);
    let notice = match query.notice.as_deref() {
        Some("signed_out") => Some("You are signed out."),
        Some("password_changed") => Some("Your password was changed. Sign in again."),
        _ => None,
    };
    let page = SiteLoginPage {
        site,
        csrf,
        email: String::new(),
        next,
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

/// `POST` of a site's sign-in form: the CSRF check, `sign_in` (the site's directory, through
/// [`verify_login`]), then a session in the site's realm — or the form again with the message.
pub async fn site_login_submit<F, Fut>(
    state: &AppState,
    site: Site,
    caller: &Caller,
    jar: CookieJar,
    form: LoginForm,
    sign_in: F,
) -> Result<Response, PortalError>
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<String, PortalError>>,
{
    session::verify_login_csrf(&jar, &form.csrf)?;
    let next = safe_next(site, form.next.as_deref());
    match sign_in(form.email.clone(), form.password).await {
        Ok(id) => {
            let (jar, _) = start_session(state, caller, jar, site.realm(), &id).await?;
            Ok((jar, Redirect::to(&next)).into_response())
        }
        Err(
            error @ (PortalError::BadLogin
            | PortalError::Locked(_)
            | PortalError::OneTimePasswordExpired(_)),
        ) => {
            let page = SiteLoginPage {
                site,
                csrf: form.csrf,
                email: form.email,
                next,
                error: Some(error.to_string()),
                notice: None,
            };
            Ok((error.status(), jar, render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules_say_what_is_wrong() {
        let message = |p: &str| {
            check_password(p, "alice@example.com")
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            message("short1!").as_deref(),
            Some("Use at least 10 characters for your password.")
        );
        assert_eq!(
            message("onlyletterslong").as_deref(),
            Some("Mix letters with digits or symbols in your password.")
        );
        assert_eq!(
            message("alice-2026-secret").as_deref(),
            Some("Your password must not contain your email address.")
        );
        assert_eq!(
            message("MyPassword-2026").as_deref(),
            Some("This password is too easy to guess. Choose a less common one.")
        );
        assert_eq!(
            message(&"a1".repeat(65)).as_deref(),
            Some("Use at most 128 characters for your password.")
        );
        assert_eq!(message("violet-harbor-42"), None);
    }

    #[test]
    fn only_the_sites_own_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Site::Admin, Some("/admin/tenants?q=a")),
            "/admin/tenants?q=a"
        );
        assert_eq!(
            safe_next(Site::Admin, Some("/admin?from=x")),
            "/admin?from=x"
        );
        assert_eq!(safe_next(Site::Admin, Some("/administrator")), "/admin");
        assert_eq!(safe_next(Site::Admin, Some("/portal/keys")), "/admin");
        assert_eq!(
            safe_next(Site::Agent, Some("//evil.example/agent")),
            "/agent"
        );
        assert_eq!(safe_next(Site::Agent, None), "/agent");
        for control in ["\r\nSet-Cookie:x", "\0", "\t", "\u{7f}", "\u{85}"] {
            let next = format!("/portal/keys{control}");
            assert_eq!(safe_next(Site::Portal, Some(&next)), "/portal");
        }
    }
}

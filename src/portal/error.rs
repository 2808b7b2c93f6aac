//! Portal errors. A handler returns a [`PortalError`]; it becomes a response only at the edge,
//! by the flavour of the route it came from: the error page (or a redirect to sign-in) for
//! pages, a JSON body for `/api/portal`. Nothing internal ever reaches a body.

use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use modelrouter_domain::DomainError;
use serde_json::json;

use crate::store::sessions::Realm;
use crate::store::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("Please sign in to continue.")]
    SignedOut,
    #[error("This form has expired or was sent from another site. Reload the page and try again.")]
    Csrf,
    #[error("This page does not exist, or it belongs to another account.")]
    NotFound,
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("An account with this email already exists. Sign in instead.")]
    EmailTaken,
    #[error("The email or password is incorrect.")]
    BadLogin,
    #[error("Too many failed sign-in attempts. Try again in {} minutes.", minutes_until(*.0))]
    Locked(DateTime<Utc>),
    /// Too many wrong prepaid or receipt codes from this account or address: refused until then.
    #[error("Too many wrong codes. Try again in {} minutes.", minutes_until(*.0))]
    TooManyCodes(DateTime<Utc>),
    #[error("This account is suspended. Contact support to restore it.")]
    Suspended,
    /// Signed in with a one-time password someone gave: only choosing a new one is open.
    #[error("You signed in with a one-time password. Choose your own password to continue.")]
    PasswordChangeRequired,
    /// The right one-time password, but past its expiry: whoever gave it can give a new one.
    #[error("This one-time password has expired. {}", ask_for_a_new_one(*.0))]
    OneTimePasswordExpired(Realm),
    /// Too many of something from one client or account (sign-ups, verification emails) in a
    /// while; `what` says what, in a sentence.
    #[error("{what} Try again in {} minutes.", minutes_until(*.until))]
    Throttled {
        what: &'static str,
        until: DateTime<Utc>,
    },
    /// A signed-in operator whose role may not make this change.
    #[error("{0}")]
    NotPermitted(String),
    #[error("Something went wrong on our side. Please try again in a moment.")]
    Internal,
}

/// Who gives a new one-time password to someone of `realm`.
fn ask_for_a_new_one(realm: Realm) -> &'static str {
    match realm {
        Realm::Tenant => "Ask support for a new one.",
        Realm::Operator => {
            "Ask an admin for a new one (modelrouter admin reset-password --email …)."
        }
        Realm::Agent => "Ask the platform's operators for a new one.",
    }
}

fn minutes_until(at: DateTime<Utc>) -> i64 {
    let seconds = (at - Utc::now()).num_seconds().max(1);
    (seconds + 59) / 60
}

impl PortalError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> PortalError {
        PortalError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            PortalError::SignedOut
            | PortalError::BadLogin
            | PortalError::OneTimePasswordExpired(_) => StatusCode::UNAUTHORIZED,
            PortalError::Csrf
            | PortalError::Suspended
            | PortalError::NotPermitted(_)
            | PortalError::PasswordChangeRequired => StatusCode::FORBIDDEN,
            PortalError::NotFound => StatusCode::NOT_FOUND,
            PortalError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            PortalError::EmailTaken => StatusCode::CONFLICT,
            PortalError::Locked(_)
            | PortalError::TooManyCodes(_)
            | PortalError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            PortalError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable name for the JSON API.
    pub fn code(&self) -> &'static str {
        match self {
            PortalError::SignedOut => "signed_out",
            PortalError::Csrf => "csrf",
            PortalError::NotFound => "not_found",
            PortalError::Invalid { .. } => "invalid",
            PortalError::EmailTaken => "email_taken",
            PortalError::BadLogin => "bad_login",
            PortalError::Locked(_) => "locked",
            PortalError::TooManyCodes(_) => "too_many_codes",
            PortalError::Suspended => "suspended",
            PortalError::NotPermitted(_) => "not_permitted",
            PortalError::PasswordChangeRequired => "password_change_required",
            PortalError::OneTimePasswordExpired(_) => "password_expired",
            PortalError::Throttled { .. } => "rate_limited",
            PortalError::Internal => "internal",
        }
    }

    /// Seconds until a refused try may be made again, for `Retry-After`.
    pub fn retry_after(&self) -> Option<i64> {
        match self {
            PortalError::Locked(until)
            | PortalError::TooManyCodes(until)
            | PortalError::Throttled { until, .. } => {
                Some((*until - Utc::now()).num_seconds().max(1))
            }
            _ => None,
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        match self {
            PortalError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Logs a failure of ours once, and hides it behind [`PortalError::Internal`].
    pub fn internal(error: impl std::fmt::Display) -> PortalError {
        tracing::error!(%error, "portal request failed");
        PortalError::Internal
    }
}

impl From<sqlx::Error> for PortalError {
    fn from(error: sqlx::Error) -> Self {
        PortalError::internal(error)
    }
}

impl From<CommandError> for PortalError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Domain(DomainError::Invalid { field, reason }) => PortalError::Invalid {
                field,
                message: capitalize(&reason),
            },
            CommandError::Domain(DomainError::NotFound(_) | DomainError::Revoked(_)) => {
                PortalError::NotFound
            }
            other => PortalError::internal(other),
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What the edge needs to render an error; carried in the response's extensions.
#[derive(Debug, Clone)]
struct Rendered {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
    retry_after: Option<i64>,
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let rendered = Rendered {
            status: self.status(),
            code: self.code(),
            message: self.to_string(),
            field: self.field(),
            retry_after: self.retry_after(),
        };
        // A plain body in case no edge layer renders it (it always should).
        let mut response = (rendered.status, rendered.message.clone()).into_response();
        response.extensions_mut().insert(rendered);
        response
    }
}

fn with_retry_after(mut response: Response, rendered: &Rendered) -> Response {
    if let Some(seconds) = rendered.retry_after {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// The three sites for people — the tenant portal, the operations console and the agent
/// portal — each with its own sign-in page, home and session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Portal,
    Admin,
    Agent,
}

impl Site {
    /// The site a path belongs to (pages and their JSON API alike).
    pub fn of_path(path: &str) -> Site {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if under("/admin") || under("/api/admin") {
            Site::Admin
        } else if under("/agent") || under("/api/agent") {
            Site::Agent
        } else {
            Site::Portal
        }
    }

    pub fn realm(self) -> Realm {
        match self {
            Site::Portal => Realm::Tenant,
            Site::Admin => Realm::Operator,
            Site::Agent => Realm::Agent,
        }
    }

    pub fn home(self) -> &'static str {
        match self {
            Site::Portal => "/portal",
            Site::Admin => "/admin",
            Site::Agent => "/agent",
        }
    }

    pub fn login(self) -> &'static str {
        match self {
            Site::Portal => "/portal/login",
            Site::Admin => "/admin/login",
            Site::Agent => "/agent/login",
        }
    }

    /// Where the site's JSON API lives.
    pub fn api(self) -> &'static str {
        match self {
            Site::Portal => "/api/portal",
            Site::Admin => "/api/admin",
            Site::Agent => "/api/agent",
        }
    }

    /// The form where someone signed in with a one-time password chooses their own.
    pub fn choose_password_page(self) -> String {
        format!("{}/account?notice=choose_password#password", self.home())
    }

    fn home_label(self) -> &'static str {
        match self {
            Site::Portal => "Back to the dashboard",
            Site::Admin => "Back to the console",
            Site::Agent => "Back to the agent portal",
        }
    }
}

/// Whether the browser sends the site's session cookie (for the error page's way back; not a
/// sign-in).
fn has_session_cookie(headers: &axum::http::HeaderMap, site: Site) -> bool {
    axum_extra::extract::cookie::CookieJar::from_headers(headers)
        .get(super::session::cookie_name(site.realm()))
        .is_some()
}

/// The one error page of every site.
#[derive(Template)]
#[template(path = "portal/error.html")]
struct ErrorPage {
    title: String,
    message: String,
    signed_in: bool,
    home: &'static str,
    home_label: &'static str,
    login: &'static str,
}

impl ErrorPage {
    fn new(title: &str, message: String, headers: &axum::http::HeaderMap, site: Site) -> Self {
        ErrorPage {
            title: title.into(),
            message,
            signed_in: has_session_cookie(headers, site),
            home: site.home(),
            home_label: site.home_label(),
            login: site.login(),
        }
    }
}

/// Edge layer of the pages: errors become the error page; a missing session becomes a redirect
/// to the site's sign-in that comes back here afterwards.
pub async fn render_page_errors(request: Request, next: Next) -> Response {
    let site = Site::of_path(request.uri().path());
    let back = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| site.home().into());
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let Some(rendered) = response.extensions().get::<Rendered>().cloned() else {
        return response;
    };
    if rendered.code == "signed_out" {
        let target = format!("{}?next={}", site.login(), urlencode(&back));
        return Redirect::to(&target).into_response();
    }
    if rendered.code == "password_change_required" {
        return Redirect::to(&site.choose_password_page()).into_response();
    }
    let title = match rendered.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::TOO_MANY_REQUESTS => "Slow down",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    let page = ErrorPage::new(title, rendered.message.clone(), &headers, site);
    let body = page.render().unwrap_or_else(|_| rendered.message.clone());
    with_retry_after((rendered.status, Html(body)).into_response(), &rendered)
}

/// Edge layer of `/api/portal`: errors become `{"error": {"code", "message", "field"}}`.
pub async fn render_json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let Some(rendered) = response.extensions().get::<Rendered>().cloned() else {
        return response;
    };
    let body = json!({"error": {
        "code": rendered.code,
        "message": rendered.message,
        "field": rendered.field,
    }});
    with_retry_after((rendered.status, Json(body)).into_response(), &rendered)
}

/// Percent-encodes a query parameter value.
pub fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The error page for a path of a site that no route serves.
pub fn not_found_page(headers: &axum::http::HeaderMap, site: Site) -> Response {
    let error = PortalError::NotFound;
    let page = ErrorPage::new("Not found", error.to_string(), headers, site);
    let body = page.render().unwrap_or_else(|_| error.to_string());
    (error.status(), Html(body)).into_response()
}

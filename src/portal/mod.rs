//! The tenant portal: server-rendered pages under `/portal` and the same actions as JSON under
//! `/api/portal`, described by the OpenAPI document at `/api/openapi.json`.
//!
//! Architecture invariant: every tenant-scoped read or write goes through a [`TenantScope`],
//! which only a live session yields (`session.rs`); API keys never sign a person in.
//! Pages work without JavaScript; `static/portal.js` only adds copy buttons and live refresh.

pub(crate) mod account;
mod code_guesses;
mod dashboard;
pub(crate) mod error;
pub(crate) mod format;
mod keys;
pub(crate) mod login;
pub(crate) mod models;
mod openapi;
mod receipts;
pub(crate) mod recharge;
mod referral;
mod scope;
pub(crate) mod session;
mod statements;
mod usage;
pub(crate) mod verification;

use std::sync::Arc;

use askama::Template;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

pub use error::{PortalError, Site};
pub use format::money as format_money;
pub use login::one_time_expiry_after;
pub use scope::TenantScope;
pub use session::SignedIn;

use crate::gateway::AppState;

/// What every signed-in page shows around its content: who is signed in, where they are, and
/// the token the sign-out form needs.
pub struct Chrome {
    pub email: String,
    pub csrf: String,
    pub active: &'static str,
}

impl Chrome {
    pub fn new(signed_in: &SignedIn, active: &'static str) -> Chrome {
        Chrome {
            email: signed_in.email.clone(),
            csrf: signed_in.csrf.clone(),
            active,
        }
    }

    /// `class="active"` for the navigation entry of the current page.
    pub fn nav(&self, entry: &str) -> &'static str {
        if self.active == entry {
            "active"
        } else {
            ""
        }
    }
}

/// Renders a page template.
pub fn render(page: &impl Template) -> Result<Html<String>, PortalError> {
    page.render().map(Html).map_err(PortalError::internal)
}

pub fn routes() -> Router<Arc<AppState>> {
    let pages = Router::new()
        .route("/portal", get(dashboard::page))
        .route(
            "/portal/signup",
            get(account::signup_page).post(account::signup_submit),
        )
        .route(
            "/portal/login",
            get(account::login_page).post(account::login_submit),
        )
        .route("/portal/logout", post(account::logout_submit))
        .route("/portal/account", get(account::account_page))
        .route("/portal/account/password", post(account::password_submit))
        .route("/portal/verify-email", get(verification::verify_page))
        .route(
            "/portal/verify-email/resend",
            post(verification::resend_submit),
        )
        .route("/portal/mail", get(verification::mail_page))
        .route(
            "/portal/keys",
            get(keys::list_page).post(keys::create_submit),
        )
        .route(
            "/portal/keys/{id}",
            get(keys::edit_page).post(keys::edit_submit),
        )
        .route("/portal/keys/{id}/revoke", post(keys::revoke_submit))
        .route("/portal/models", get(models::page))
        .route("/portal/usage", get(usage::page))
        .route("/portal/usage/export.csv", get(usage::export_csv))
        .route("/portal/statements", get(statements::page))
        .route("/portal/statements.csv", get(statements::csv))
        .route(
            "/portal/recharge",
            get(recharge::page).post(recharge::place_submit),
        )
        .route("/portal/recharge/redeem", post(recharge::redeem_submit))
        .route("/portal/recharge/records", get(recharge::records_page))
        .route("/portal/recharge/orders/{id}", get(recharge::order_page))
        .route(
            "/portal/recharge/orders/{id}/receipt",
            get(receipts::receipt_page),
        )
        .route(
            "/portal/recharge/orders/{id}/receipt.pdf",
            get(receipts::receipt_pdf),
        )
        .route("/receipts/verify", get(receipts::verify_page))
        .route("/r/{code}", get(referral::link))
        .route(
            "/portal/recharge/sandbox/{id}",
            get(recharge::sandbox_page).post(recharge::sandbox_submit),
        )
        .layer(middleware::from_fn(error::render_page_errors));
    let api = Router::new()
        .route("/api/portal/signup", post(account::api_signup))
        .route("/api/portal/login", post(account::api_login))
        .route("/api/portal/logout", post(account::api_logout))
        .route("/api/portal/session", get(account::api_session))
        .route("/api/portal/password", post(account::api_password))
        .route("/api/portal/verify-email", post(verification::api_verify))
        .route(
            "/api/portal/verify-email/resend",
            post(verification::api_resend),
        )
        .route("/api/portal/mail", get(verification::api_mail))
        .route("/api/portal/dashboard", get(dashboard::api))
        .route(
            "/api/portal/keys",
            get(keys::api_list).post(keys::api_create),
        )
        .route(
            "/api/portal/keys/{id}",
            get(keys::api_get).patch(keys::api_update),
        )
        .route("/api/portal/keys/{id}/revoke", post(keys::api_revoke))
        .route("/api/portal/models", get(models::api))
        .route("/api/portal/usage", get(usage::api))
        .route("/api/portal/statements", get(statements::api))
        .route(
            "/api/portal/recharge/orders",
            get(recharge::api_orders).post(recharge::api_place),
        )
        .route("/api/portal/recharge/orders/{id}", get(recharge::api_order))
        .route("/api/portal/recharge/redeem", post(recharge::api_redeem))
        .route("/api/portal/receipts/verify", get(receipts::api_verify))
        .layer(middleware::from_fn(error::render_json_errors));
    Router::new()
        .route("/", get(|| async { Redirect::to("/portal") }))
        .route("/portal/", get(|| async { Redirect::to("/portal") }))
        .route("/api/openapi.json", get(openapi::document))
        .route("/static/portal.css", get(stylesheet))
        .route("/static/portal.js", get(script))
        .merge(pages)
        .merge(api)
        .layer(middleware::map_response(page_headers))
}

/// Headers of every portal response: never cached (a key's plaintext page must not be), only this
/// origin's CSS and JS, never framed, no referrer to other sites.
const PAGE_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::CACHE_CONTROL, "no-store"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

pub async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in PAGE_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// The not-found page for a path of a site (`/portal`, `/admin`, `/agent`) that no route serves.
pub async fn not_found_page(headers: &axum::http::HeaderMap, site: Site) -> Response {
    page_headers(error::not_found_page(headers, site)).await
}

async fn stylesheet() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/portal.css"),
    )
}

async fn script() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/portal.js"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

//! A fake of the parts of Stripe's API that `payments::stripe` uses, for tests, `serve --demo`
//! and benches: Checkout Sessions, a hosted page to pay on, and signed webhooks.
//!
//! - `POST /v1/checkout/sessions`: Bearer secret key, a form body checked the way Stripe checks
//!   it (required and unknown parameters, integers, `expires_at` between 30 minutes and
//!   24 hours ahead), `Idempotency-Key` replays (same key and parameters: the first response
//!   again; other parameters: Stripe's `idempotency_error`). Errors are Stripe's
//!   `{"error": {"type", "message", "param"}}`.
//! - `GET /pay/{id}`: a tiny hosted checkout page with a Pay button and a Cancel link.
//! - `POST /pay/{id}`: pays the session, delivers a signed `checkout.session.completed` to the
//!   webhook URL, then redirects (303) to `success_url` with `{CHECKOUT_SESSION_ID}` filled in.
//!
//! Unlike Stripe, the fake delivers each webhook once, before answering, so a test that paid
//! can look for its effect at once; sessions expire only when told to ([`FakeStripe::expire`]).
//! [`FakeStripe`] is the test handle: inspect sessions and events, pay (any amount), expire,
//! and sign or resend events to test replays and forgeries.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

mod refunds;

use super::{bearer_token, header_text, lock};
use crate::crypto::Secret;
use crate::payments::stripe::{minor_unit_exponent, signature_header};

/// How the fake Stripe behaves.
#[derive(Clone, Debug)]
pub struct FakeStripeConfig {
    /// API calls must carry `Authorization: Bearer <this>`.
    pub secret_key: Secret,
    /// Webhooks are signed with this.
    pub webhook_secret: Secret,
    /// Where webhooks go; `None` records events without sending them.
    pub webhook_url: Option<String>,
}

/// The outcome of one webhook the fake sent (or would have sent).
#[derive(Clone, Debug)]
pub struct Delivery {
    pub event: Value,
    /// The receiver's HTTP status; `None` when there is no webhook URL or it was unreachable.
    pub status: Option<u16>,
}

/// Serves the fake until `shutdown` resolves. Hosted-page URLs point at the listener's address.
pub async fn serve_fake_stripe(
    listener: TcpListener,
    config: FakeStripeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shared = Shared::new(config, base_url(listener.local_addr()?));
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
        .context("fake Stripe server")
}

/// A running fake Stripe on a port of its own; stops when dropped.
pub struct FakeStripe {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeStripe {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(config: FakeStripeConfig) -> anyhow::Result<FakeStripe> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Shared::new(config, base_url(addr));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone());
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(%error, "fake Stripe stopped");
            }
        });
        Ok(FakeStripe {
            addr,
            shared,
            _stop: stop,
        })
    }

    /// The API base for `StripeConfig::api_base`, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Points webhooks somewhere else (a gateway started after the fake).
    pub fn set_webhook_url(&self, url: Option<String>) {
        *lock(&self.shared.webhook_url) = url;
    }

    /// Every session as Stripe would show it now, oldest first.
    pub fn sessions(&self) -> Vec<Value> {
        lock(&self.shared.state)
            .sessions
            .iter()
            .map(|entry| entry.session.clone())
            .collect()
    }

    /// Every refund made, oldest first.
    pub fn refunds(&self) -> Vec<Value> {
        lock(&self.shared.state).refunds.clone()
    }

    /// While down, every refund request fails as Stripe's own outages do (500, `api_error`).
    pub fn set_refunds_down(&self, down: bool) {
        lock(&self.shared.state).refunds_down = down;
    }

    /// Every event the fake made, oldest first.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.shared.state).events.clone()
    }

    /// Pays a session in full, as the hosted page's Pay button does.
    pub async fn pay(&self, id: &str) -> anyhow::Result<Delivery> {
        self.shared.settle(id, Settlement::Paid(None)).await
    }

    /// Pays a session with an `amount_total` (minor units) other than the one it was made with.
    pub async fn pay_amount(&self, id: &str, amount_total: i64) -> anyhow::Result<Delivery> {
        self.shared
            .settle(id, Settlement::Paid(Some(amount_total)))
            .await
    }

    /// Expires an open session and sends `checkout.session.expired`.
    pub async fn expire(&self, id: &str) -> anyhow::Result<Delivery> {
        self.shared.settle(id, Settlement::Expired).await
    }

    /// `(Stripe-Signature header, body)` for an event signed now with the webhook secret.
    pub fn signed_event(&self, event: &Value) -> (String, String) {
        self.signed_event_at(event, Utc::now())
    }

    /// `(Stripe-Signature header, body)` for an event signed at `at`.
    pub fn signed_event_at(&self, event: &Value, at: DateTime<Utc>) -> (String, String) {
        let body = event.to_string();
        let header = signature_header(
            self.shared.webhook_secret.expose(),
            at.timestamp(),
            body.as_bytes(),
        );
        (header, body)
    }

    /// Sends an event to the webhook URL again, freshly signed, as Stripe's retries and the
    /// dashboard's "Resend" do.
    pub async fn resend(&self, event: &Value) -> Delivery {
        self.shared.deliver(event.clone()).await
    }
}

/// The hosted-page base URL for a listener address (an unspecified IP becomes loopback).
fn base_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        Ipv4Addr::LOCALHOST.into()
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(host, addr.port()))
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/checkout/sessions", post(create_session))
        .route("/v1/checkout/sessions/{id}", get(refunds::retrieve_session))
        .route("/v1/refunds", post(refunds::create_refund))
        .route("/pay/{id}", get(hosted_page).post(pay_from_page))
        .fallback(unknown_url)
        .with_state(shared)
}

/// One stored session and what only the fake needs to know about it.
struct Entry {
    session: Value,
    product_name: String,
}

#[derive(Default)]
struct Sessions {
    sessions: Vec<Entry>,
    replies: Vec<Reply>,
    events: Vec<Value>,
    refunds: Vec<Value>,
    /// The refund first made under each idempotency key.
    refund_replies: Vec<(String, Value)>,
    refunds_down: bool,
}

/// The first successful create made with one idempotency key.
struct Reply {
    key: String,
    /// Its parameters, sorted: a replay must send the same ones.
    params: Vec<(String, String)>,
    session: Value,
}

struct Shared {
    secret_key: Secret,
    webhook_secret: Secret,
    webhook_url: Mutex<Option<String>>,
    base_url: String,
    state: Mutex<Sessions>,
    http: reqwest::Client,
}

enum Settlement {
    /// Paid, with the amount_total to report when it differs from the session's.
    Paid(Option<i64>),
    Expired,
}

/// Why settling a session from the page or the handle failed.
#[derive(Debug, thiserror::Error)]
enum SettleError {
    #[error("no such checkout session: {0}")]
    Unknown(String),
    #[error("checkout session {0} is {1}, not open")]
    NotOpen(String, String),
}

impl Shared {
    fn new(config: FakeStripeConfig, base_url: String) -> Arc<Shared> {
        Arc::new(Shared {
            secret_key: config.secret_key,
            webhook_secret: config.webhook_secret,
            webhook_url: Mutex::new(config.webhook_url),
            base_url,
            state: Mutex::new(Sessions::default()),
            http: reqwest::Client::new(),
        })
    }

    /// Marks an open session paid or expired, records the event and delivers it.
    async fn settle(&self, id: &str, settlement: Settlement) -> anyhow::Result<Delivery> {
        let event = self.settle_now(id, settlement)?;
        Ok(self.deliver(event).await)
    }

    fn settle_now(&self, id: &str, settlement: Settlement) -> Result<Value, SettleError> {
        let mut state = lock(&self.state);
        let entry = state
            .sessions
            .iter_mut()
            .find(|entry| entry.session["id"] == id)
            .ok_or_else(|| SettleError::Unknown(id.to_owned()))?;
        let session = &mut entry.session;
        if session["status"] != "open" {
            let status = session["status"].as_str().unwrap_or("unknown").to_owned();
            return Err(SettleError::NotOpen(id.to_owned(), status));
        }
        session["url"] = Value::Null;
        let kind = match settlement {
            Settlement::Paid(amount_total) => {
                if let Some(amount) = amount_total {
                    session["amount_subtotal"] = json!(amount);
                    session["amount_total"] = json!(amount);
                }
                session["status"] = json!("complete");
                session["payment_status"] = json!("paid");
                session["payment_intent"] = json!(new_id("pi_"));
                session["customer_details"] = json!({ "email": session["customer_email"] });
                "checkout.session.completed"
            }
            Settlement::Expired => {
                session["status"] = json!("expired");
                "checkout.session.expired"
            }
        };
        let event = json!({
            "id": new_id("evt_"),
            "object": "event",
            "api_version": "2024-06-20",
            "created": Utc::now().timestamp(),
            "data": { "object": session.clone() },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": kind,
        });
        state.events.push(event.clone());
        Ok(event)
    }

    /// Sends an event, signed now, to the webhook URL.
    async fn deliver(&self, event: Value) -> Delivery {
        let Some(url) = lock(&self.webhook_url).clone() else {
            return Delivery {
                event,
                status: None,
            };
        };
        let body = event.to_string();
        let signature = signature_header(
            self.webhook_secret.expose(),
            Utc::now().timestamp(),
            body.as_bytes(),
        );
        let sent = self
            .http
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .header(
                header::USER_AGENT,
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .header("Stripe-Signature", signature)
            .timeout(Duration::from_secs(10))
            .body(body)
            .send()
            .await;
        let status = match sent {
            Ok(response) => Some(response.status().as_u16()),
            Err(error) => {
                tracing::warn!(%error, "fake Stripe could not deliver a webhook");
                None
            }
        };
        Delivery { event, status }
    }
}

/// A Stripe-style error response.
pub(super) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<String>,
}

impl ApiError {
    fn invalid(message: impl Into<String>, param: Option<&str>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    fn missing(param: &str) -> ApiError {
        ApiError::invalid(format!("Missing required param: {param}."), Some(param))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "type": self.kind, "message": self.message });
        if let Some(param) = self.param {
            error["param"] = json!(param);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

/// Checks the secret key as Stripe does, naming the key it got only by its last characters.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthorized = |message: String| ApiError {
        status: StatusCode::UNAUTHORIZED,
        kind: "invalid_request_error",
        message,
        param: None,
    };
    match bearer_token(headers) {
        None => Err(unauthorized(
            "You did not provide an API key. You need to provide your API key in the \
             Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
             YOUR_SECRET_KEY')."
                .to_owned(),
        )),
        Some(key) if key != shared.secret_key.expose() => {
            let tail = key
                .char_indices()
                .rev()
                .nth(3)
                .map_or(key.as_str(), |(at, _)| &key[at..]);
            Err(unauthorized(format!(
                "Invalid API Key provided: sk_****{tail}"
            )))
        }
        Some(_) => Ok(()),
    }
}

/// The parameters the fake understands; anything else is refused as Stripe refuses it.
const KNOWN_PARAMS: [&str; 10] = [
    "mode",
    "success_url",
    "cancel_url",
    "client_reference_id",
    "customer_email",
    "expires_at",
    "line_items[0][price_data][currency]",
    "line_items[0][price_data][unit_amount]",
    "line_items[0][price_data][product_data][name]",
    "line_items[0][quantity]",
];

async fn create_session(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if let Err(error) = authenticate(&shared, &headers) {
        return error.into_response();
    }
    let Ok(Form(mut params)) = form else {
        return ApiError::invalid("Invalid request body: expected a form.", None).into_response();
    };
    params.sort();
    let key = header_text(&headers, "idempotency-key");
    // One lock from the replay check to the insert, so concurrent retries make one session.
    let mut state = lock(&shared.state);
    if let Some(key) = &key {
        if let Some(reply) = state.replies.iter().find(|reply| reply.key == *key) {
            if reply.params != params {
                return ApiError {
                    status: StatusCode::BAD_REQUEST,
                    kind: "idempotency_error",
                    message: format!(
                        "Keys for idempotent requests can only be used with the same \
                         parameters they were first used with. Try using a key other than \
                         '{key}' if you meant to execute a different request."
                    ),
                    param: None,
                }
                .into_response();
            }
            let mut response = Json(reply.session.clone()).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return response;
        }
    }
    // Stripe saves no idempotent result for a request that failed validation.
    let entry = match new_session(&shared.base_url, &params, Utc::now()) {
        Ok(entry) => entry,
        Err(error) => return error.into_response(),
    };
    let reply = entry.session.clone();
    state.sessions.push(entry);
    if let Some(key) = key {
        state.replies.push(Reply {
            key,
            params,
            session: reply.clone(),
        });
    }
    Json(reply).into_response()
}

/// Validates a create request's parameters and makes the open session.
fn new_session(
    base_url: &str,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Entry, ApiError> {
    if let Some((unknown, _)) = params
        .iter()
        .find(|(name, _)| !KNOWN_PARAMS.contains(&name.as_str()) && !is_metadata(name))
    {
        return Err(ApiError::invalid(
            format!("Received unknown parameter: {unknown}"),
            Some(unknown),
        ));
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let required = |name: &str| {
        get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::missing(name))
    };
    let integer = |name: &str, value: &str| {
        value
            .parse::<i64>()
            .map_err(|_| ApiError::invalid(format!("Invalid integer: {value}"), Some(name)))
    };

    match required("mode")? {
        "payment" => {}
        other => {
            return Err(ApiError::invalid(
                format!("The fake Stripe supports mode=payment only, not {other}."),
                Some("mode"),
            ))
        }
    }
    let success_url = required("success_url")?;
    const CURRENCY: &str = "line_items[0][price_data][currency]";
    let currency = required(CURRENCY)?;
    if currency != currency.to_ascii_lowercase() || minor_unit_exponent(currency).is_err() {
        return Err(ApiError::invalid(
            format!("Invalid currency: {currency}. Stripe currently supports these currencies: usd, eur, jpy, …"),
            Some(CURRENCY),
        ));
    }
    const UNIT_AMOUNT: &str = "line_items[0][price_data][unit_amount]";
    let unit_amount = integer(UNIT_AMOUNT, required(UNIT_AMOUNT)?)?;
    const QUANTITY: &str = "line_items[0][quantity]";
    let quantity = integer(QUANTITY, required(QUANTITY)?)?;
    if unit_amount < 0 || quantity < 1 {
        let param = if unit_amount < 0 {
            UNIT_AMOUNT
        } else {
            QUANTITY
        };
        return Err(ApiError::invalid(
            "This value must be greater than or equal to its minimum (0 for amounts, 1 for quantities).",
            Some(param),
        ));
    }
    let product_name = required("line_items[0][price_data][product_data][name]")?;
    let amount_total = unit_amount
        .checked_mul(quantity)
        .ok_or_else(|| ApiError::invalid("The total amount is too large.", Some(UNIT_AMOUNT)))?;
    let created = now.timestamp();
    let expires_at = match get("expires_at") {
        None => created + 86_400,
        Some(value) => {
            let expires_at = integer("expires_at", value)?;
            if expires_at < created + 30 * 60 {
                return Err(ApiError::invalid(
                    "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                    Some("expires_at"),
                ));
            }
            if expires_at > created + 86_400 {
                return Err(ApiError::invalid(
                    "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                    Some("expires_at"),
                ));
            }
            expires_at
        }
    };
    let metadata: Map<String, Value> = params
        .iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((key.to_owned(), json!(value)))
        })
        .collect();
    let id = new_id("cs_test_");
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "cancel_url": get("cancel_url"),
        "client_reference_id": get("client_reference_id"),
        "created": created,
        "currency": currency,
        "customer_details": null,
        "customer_email": get("customer_email"),
        "expires_at": expires_at,
        "livemode": false,
        "metadata": metadata,
        "mode": "payment",
        "payment_intent": null,
        "payment_status": "unpaid",
        "status": "open",
        "success_url": success_url,
        "url": format!("{base_url}/pay/{id}"),
    });
    Ok(Entry {
        session,
        product_name: product_name.to_owned(),
    })
}

fn is_metadata(name: &str) -> bool {
    name.strip_prefix("metadata[")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|key| !key.is_empty() && !key.contains(['[', ']']))
}

/// An id with Stripe's prefix and 24 random letters and digits.
fn new_id(prefix: &str) -> String {
    let tail: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

async fn hosted_page(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let state = lock(&shared.state);
    let Some(entry) = state
        .sessions
        .iter()
        .find(|entry| entry.session["id"] == id)
    else {
        return page(
            StatusCode::NOT_FOUND,
            "Checkout not found",
            "<p>There is no such checkout session.</p>",
        );
    };
    let session = &entry.session;
    let amount = shown_amount(session);
    let name = escape(&entry.product_name);
    if session["status"] != "open" {
        let status = escape(session["status"].as_str().unwrap_or("closed"));
        return page(
            StatusCode::OK,
            &name,
            &format!("<p id=\"closed\">This checkout session is {status}.</p>"),
        );
    }
    let cancel = session["cancel_url"]
        .as_str()
        .map(|url| format!("<a id=\"cancel\" href=\"{}\">Cancel</a>", escape(url)))
        .unwrap_or_default();
    let body = format!(
        "<h1>{name}</h1>\n<p class=\"amount\">{amount}</p>\n\
         <p>Fake Stripe Checkout, test mode: no card needed.</p>\n\
         <form method=\"post\" action=\"/pay/{id}\">\
         <button type=\"submit\" id=\"pay\">Pay {amount}</button></form>\n{cancel}",
        id = escape(&id),
    );
    page(StatusCode::OK, &name, &body)
}

async fn pay_from_page(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let event = match shared.settle_now(&id, Settlement::Paid(None)) {
        Ok(event) => event,
        Err(error @ SettleError::Unknown(_)) => {
            return page(
                StatusCode::NOT_FOUND,
                "Checkout not found",
                &escape(&error.to_string()),
            )
        }
        Err(error @ SettleError::NotOpen(..)) => {
            return page(
                StatusCode::CONFLICT,
                "Checkout closed",
                &escape(&error.to_string()),
            )
        }
    };
    let success_url = event["data"]["object"]["success_url"]
        .as_str()
        .unwrap_or_default()
        .replace("{CHECKOUT_SESSION_ID}", &id);
    shared.deliver(event).await;
    Redirect::to(&success_url).into_response()
}

/// `25.00 USD` from a session's minor units and currency.
fn shown_amount(session: &Value) -> String {
    let minor = session["amount_total"].as_i64().unwrap_or(0);
    let currency = session["currency"].as_str().unwrap_or("");
    let exponent = minor_unit_exponent(currency).unwrap_or(2);
    let code = currency.to_ascii_uppercase();
    if exponent == 0 {
        return format!("{minor} {code}");
    }
    let scale = 10_i64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let (whole, fraction) = (
        minor.unsigned_abs() / scale as u64,
        minor.unsigned_abs() % scale as u64,
    );
    format!(
        "{sign}{whole}.{fraction:0width$} {code}",
        width = exponent as usize
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title} · Fake Stripe Checkout</title></head>\n<body><main>\n{body}\n</main></body></html>\n"
    );
    (status, Html(html)).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn unknown_url(method: Method, uri: Uri) -> Response {
    let mut error = ApiError::invalid(
        format!("Unrecognized request URL ({method}: {}).", uri.path()),
        None,
    );
    error.status = StatusCode::NOT_FOUND;
    error.into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn amounts_on_the_page_follow_the_currency() {
        let show = |minor: i64, currency: &str| {
            shown_amount(&json!({ "amount_total": minor, "currency": currency }))
        };
        assert_eq!(show(2500, "usd"), "25.00 USD");
        assert_eq!(show(5, "eur"), "0.05 EUR");
        assert_eq!(show(500, "jpy"), "500 JPY");
        assert_eq!(show(5120, "kwd"), "5.120 KWD");
    }

    #[test]
    fn only_flat_metadata_keys_are_accepted() {
        assert!(is_metadata("metadata[order_id]"));
        assert!(!is_metadata("metadata[]"));
        assert!(!is_metadata("metadata[a][b]"));
        assert!(!is_metadata("metadatas"));
    }

    #[test]
    fn hosted_page_urls_never_point_at_an_unspecified_address() {
        assert_eq!(
            base_url("0.0.0.0:4242".parse().unwrap()),
            "http://127.0.0.1:4242"
        );
        assert_eq!(
            base_url("10.1.2.3:4242".parse().unwrap()),
            "http://10.1.2.3:4242"
        );
    }
}

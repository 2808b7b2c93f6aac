//! Top-ups in the portal: the recharge page (amount, payment method, prepaid code), each order's
//! page with its state (updating itself while pending), the sandbox pay page, and the recharge
//! records — as pages and JSON.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use chrono::Utc;
use modelrouter_domain::aggregate_types::{ACCOUNT, RECHARGE_ORDER};
use modelrouter_domain::recharge::PaymentMethod;
use modelrouter_domain::Money;
use modelrouter_projections::sql::recharges::{self, HistoryRow, OrderQuery, OrderRow};
use modelrouter_projections::sql::{self, Projection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::account::tenant_meta;
use super::code_guesses::CodeTries;
use super::format;
use super::session::ApiWriter;
use super::{render, Chrome, PortalError, SignedIn};
use crate::billing::orders::{self, Confirmation, TopUpError};
use crate::gateway::{AppState, Caller, RequestId};

impl From<TopUpError> for PortalError {
    fn from(error: TopUpError) -> Self {
        match error {
            TopUpError::Invalid { field, message } => PortalError::Invalid { field, message },
            TopUpError::NotFound => PortalError::NotFound,
            TopUpError::Payment(error) => {
                tracing::error!(%error, "payment provider failed");
                PortalError::invalid(
                    "method",
                    "The payment provider could not start the payment. Try again in a moment.",
                )
            }
            TopUpError::Command(error) => error.into(),
            TopUpError::Store(error) => error.into(),
        }
    }
}

/// Reads an amount typed as a decimal (`25`, `25.5`, `0.000001`) into micro-units exactly.
pub fn parse_amount(text: &str) -> Option<Money> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 6
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
    whole
        .checked_mul(1_000_000)?
        .checked_add(fraction)
        .map(Money)
}

fn method_of(text: &str) -> Option<PaymentMethod> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

/// The tenant's order, fresh: the log read up to it first, so the page after paying shows it.
pub(super) async fn own_order(
    state: &AppState,
    signed_in: &SignedIn,
    order_id: &str,
) -> Result<(OrderRow, Vec<HistoryRow>), PortalError> {
    state
        .live
        .include(&state.db, RECHARGE_ORDER, order_id)
        .await?;
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    let order = recharges::order(&state.db, order_id)
        .await?
        .filter(|o| o.tenant_id == signed_in.scope.tenant_id())
        .ok_or(PortalError::NotFound)?;
    let history = recharges::order_history(&state.db, order_id).await?;
    Ok((order, history))
}

/// Brings the balance and records up to the tenant's newest credit, for the page that follows.
async fn show_credit(state: &AppState, signed_in: &SignedIn) -> Result<(), PortalError> {
    let tenant = signed_in.scope.tenant_id();
    state.live.include(&state.db, ACCOUNT, tenant).await?;
    state.live.refresh(&state.db).await?;
    Ok(())
}

// ---- pages ----

struct MethodChoice {
    value: &'static str,
    label: &'static str,
    checked: bool,
}

struct OrderLine {
    id: String,
    placed: String,
    amount: String,
    method: &'static str,
    state: String,
    ok: bool,
}

fn order_line(order: &OrderRow) -> OrderLine {
    OrderLine {
        id: order.order_id.clone(),
        placed: format::time(&order.placed_at),
        amount: format::money(order.amount),
        method: orders::method_name(&order.method),
        state: orders::state_text(order),
        ok: order.state == "paid",
    }
}

#[derive(Template)]
#[template(path = "portal/recharge.html")]
struct RechargePage {
    chrome: Chrome,
    balance: String,
    currency: String,
    methods: Vec<MethodChoice>,
    min: String,
    max: String,
    amount: String,
    manual_instructions: Option<String>,
    orders: Vec<OrderLine>,
    error: Option<String>,
    redeem_error: Option<String>,
    notice: Option<String>,
}

async fn recharge_view(
    state: &AppState,
    signed_in: &SignedIn,
    amount: String,
    chosen: Option<&str>,
) -> Result<RechargePage, PortalError> {
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    let offered = orders::methods(state);
    let methods = offered
        .iter()
        .enumerate()
        .map(|(i, method)| {
            let value = match method {
                PaymentMethod::Stripe => "stripe",
                PaymentMethod::Manual => "manual",
                PaymentMethod::Sandbox => "sandbox",
            };
            MethodChoice {
                value,
                label: orders::method_name(value),
                checked: chosen.map_or(i == 0, |c| c == value),
            }
        })
        .collect();
    let payments = &state.settings.payments;
    let orders = recharges::orders(&state.db, OrderQuery::Tenant(signed_in.scope.tenant_id()))
        .await?
        .iter()
        .take(10)
        .map(order_line)
        .collect();
    Ok(RechargePage {
        chrome: Chrome::new(signed_in, "recharge"),
        balance: format::money(signed_in.scope.balance(&state.db).await?.0),
        currency: state.settings.currency.clone(),
        methods,
        min: format::money(payments.min_order.0),
        max: format::money(payments.max_order.0),
        amount,
        manual_instructions: payments.manual_instructions.clone(),
        orders,
        error: None,
        redeem_error: None,
        notice: None,
    })
}

#[derive(Deserialize)]
pub struct RechargeQuery {
    redeemed: Option<String>,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<RechargeQuery>,
) -> Result<Response, PortalError> {
    let mut page = recharge_view(&state, &signed_in, "25.00".into(), None).await?;
    page.notice = query
        .redeemed
        .as_deref()
        .and_then(|micros| micros.parse::<i64>().ok())
        .map(|micros| {
            format!(
                "The code was redeemed: {} {} added to your balance.",
                format::money(micros),
                state.settings.currency
            )
        });
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct OrderForm {
    csrf: String,
    amount: String,
    #[serde(default)]
    method: String,
}

pub async fn place_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    signed_in: SignedIn,
    Form(form): Form<OrderForm>,
) -> Result<Response, PortalError> {
    signed_in.verify_csrf(&form.csrf)?;
    let attempt = async {
        let amount = parse_amount(&form.amount).ok_or_else(|| {
            PortalError::invalid("amount", "Enter the amount as a number, e.g. 25 or 25.50.")
        })?;
        let method = method_of(&form.method)
            .ok_or_else(|| PortalError::invalid("method", "Choose how to pay."))?;
        let base = super::models::base_url(&state, &caller);
        Ok::<_, PortalError>(
            orders::place(
                &state,
                signed_in.scope.tenant_id(),
                &signed_in.email,
                amount,
                method,
                &base,
                &tenant_meta(&signed_in, &request),
            )
            .await?,
        )
    };
    match attempt.await {
        Ok(placed) => {
            // Same-site pay pages (the sandbox) directly; a provider's page from the order page's
            // Pay link, because the portal's CSP lets forms lead only to this site.
            let to = placed
                .pay_url
                .filter(|url| url.starts_with('/'))
                .unwrap_or_else(|| format!("/portal/recharge/orders/{}", placed.order_id));
            Ok(Redirect::to(&to).into_response())
        }
        Err(error @ PortalError::Invalid { .. }) => {
            let mut page =
                recharge_view(&state, &signed_in, form.amount.clone(), Some(&form.method)).await?;
            page.error = Some(error.to_string());
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

#[derive(Deserialize)]
pub struct RedeemForm {
    csrf: String,
    code: String,
}

pub async fn redeem_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    signed_in: SignedIn,
    Form(form): Form<RedeemForm>,
) -> Result<Response, PortalError> {
    signed_in.verify_csrf(&form.csrf)?;
    let redeemed = redeem(&state, &signed_in, &request, &form.code).await;
    match redeemed {
        Ok(amount) => {
            show_credit(&state, &signed_in).await?;
            Ok(Redirect::to(&format!("/portal/recharge?redeemed={}", amount.0)).into_response())
        }
        Err(error @ (PortalError::Invalid { .. } | PortalError::TooManyCodes(_))) => {
            let mut page = recharge_view(&state, &signed_in, "25.00".into(), None).await?;
            page.redeem_error = Some(error.to_string());
            let mut response = (error.status(), render(&page)?).into_response();
            let retry_after = error.retry_after().map(|seconds| seconds.to_string());
            if let Some(value) = retry_after.and_then(|seconds| seconds.parse().ok()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
            Ok(response)
        }
        Err(other) => Err(other),
    }
}

/// Redeems a code for the signed-in tenant, unless too many wrong codes came from its account
/// or address lately (`code_guesses`); a wrong code is counted.
async fn redeem(
    state: &AppState,
    signed_in: &SignedIn,
    request: &RequestId,
    code: &str,
) -> Result<Money, PortalError> {
    let tries = CodeTries::redeem(state, signed_in.scope.tenant_id(), request);
    tries.allowed(state).await?;
    let redeemed = orders::redeem(
        &state.commands,
        signed_in.scope.tenant_id(),
        code,
        &tenant_meta(signed_in, request),
    )
    .await;
    if let Err(TopUpError::Invalid { .. }) = &redeemed {
        tries.failed(state).await?;
    }
    Ok(redeemed?)
}

struct HistoryLine {
    at: String,
    kind: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "portal/order.html")]
struct OrderPage {
    chrome: Chrome,
    order: OrderLine,
    currency: String,
    pending: bool,
    pay_url: Option<String>,
    provider_ref: String,
    manual_instructions: Option<String>,
    history: Vec<HistoryLine>,
    returned: bool,
    cancelled: bool,
}

#[derive(Deserialize)]
pub struct OrderQueryString {
    returned: Option<String>,
    cancelled: Option<String>,
}

pub async fn order_page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(order_id): Path<String>,
    Query(query): Query<OrderQueryString>,
) -> Result<Response, PortalError> {
    let (order, history) = own_order(&state, &signed_in, &order_id).await?;
    let pending = order.state == "pending";
    let page = OrderPage {
        chrome: Chrome::new(&signed_in, "recharge"),
        currency: order.currency.clone(),
        pending,
        // The sandbox's page is this site's own; a provider's checkout is stored with the order.
        pay_url: if order.method == "sandbox" && state.settings.payments.sandbox {
            Some(format!("/portal/recharge/sandbox/{}", order.order_id))
        } else {
            order.pay_url.clone()
        }
        .filter(|_| pending),
        provider_ref: order.provider_ref.clone().unwrap_or_else(|| "—".into()),
        manual_instructions: state
            .settings
            .payments
            .manual_instructions
            .clone()
            .filter(|_| pending && order.method == "manual"),
        history: history
            .into_iter()
            .map(|h| HistoryLine {
                at: format::time(&h.at),
                kind: h.kind,
                detail: h.detail,
            })
            .collect(),
        returned: query.returned.is_some(),
        cancelled: query.cancelled.is_some(),
        order: order_line(&order),
    };
    Ok(render(&page)?.into_response())
}

#[derive(Template)]
#[template(path = "portal/sandbox_pay.html")]
struct SandboxPage {
    chrome: Chrome,
    order: OrderLine,
    currency: String,
}

async fn sandbox_order(
    state: &AppState,
    signed_in: &SignedIn,
    order_id: &str,
) -> Result<OrderRow, PortalError> {
    if !state.settings.payments.sandbox {
        return Err(PortalError::NotFound);
    }
    let (order, _) = own_order(state, signed_in, order_id).await?;
    if order.method != "sandbox" {
        return Err(PortalError::NotFound);
    }
    Ok(order)
}

pub async fn sandbox_page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(order_id): Path<String>,
) -> Result<Response, PortalError> {
    let order = sandbox_order(&state, &signed_in, &order_id).await?;
    let page = SandboxPage {
        chrome: Chrome::new(&signed_in, "recharge"),
        currency: order.currency.clone(),
        order: order_line(&order),
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct SandboxForm {
    csrf: String,
    outcome: String,
}

/// The sandbox "provider" answers: pay the order in full, or fail it. No money moves.
pub async fn sandbox_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    signed_in: SignedIn,
    Path(order_id): Path<String>,
    Form(form): Form<SandboxForm>,
) -> Result<Response, PortalError> {
    signed_in.verify_csrf(&form.csrf)?;
    let order = sandbox_order(&state, &signed_in, &order_id).await?;
    let metadata = tenant_meta(&signed_in, &request);
    let event = format!("sandbox:{}", uuid::Uuid::new_v4().simple());
    if form.outcome == "pay" {
        let confirmation = Confirmation {
            amount: Money(order.amount),
            currency: order.currency.clone(),
            provider_ref: format!("sandbox:{order_id}"),
            provider_event: event,
            paid_at: Utc::now(),
            confirmed_by: "sandbox".into(),
        };
        orders::confirm(&state.commands, &order_id, confirmation, &metadata).await?;
    } else {
        let reason = "the sandbox payment was declined".to_string();
        orders::fail(&state.commands, &order_id, reason, Some(event), &metadata).await?;
    }
    show_credit(&state, &signed_in).await?;
    Ok(Redirect::to(&format!("/portal/recharge/orders/{order_id}")).into_response())
}

#[derive(Template)]
#[template(path = "portal/records.html")]
struct RecordsPage {
    chrome: Chrome,
    currency: String,
    orders: Vec<OrderLine>,
    codes: Vec<CodeLine>,
}

struct CodeLine {
    redeemed: String,
    amount: String,
}

pub async fn records_page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
) -> Result<Response, PortalError> {
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    let tenant = signed_in.scope.tenant_id();
    let orders = recharges::orders(&state.db, OrderQuery::Tenant(tenant)).await?;
    let codes = recharges::codes(&state.db, Some(tenant)).await?;
    let page = RecordsPage {
        chrome: Chrome::new(&signed_in, "recharge"),
        currency: state.settings.currency.clone(),
        orders: orders.iter().map(order_line).collect(),
        codes: codes
            .iter()
            .map(|c| CodeLine {
                redeemed: c
                    .redeemed_at
                    .as_deref()
                    .map(format::time)
                    .unwrap_or_default(),
                amount: format::money(c.amount),
            })
            .collect(),
    };
    Ok(render(&page)?.into_response())
}

// ---- JSON ----

/// An order as the API shows it; amounts in micro-units.
#[derive(Serialize, ToSchema)]
pub struct OrderView {
    #[schema(value_type = Object)]
    order: OrderRow,
    #[schema(value_type = Vec<Object>)]
    history: Vec<HistoryRow>,
}

#[utoipa::path(get, path = "/api/portal/recharge/orders", tag = "recharge",
    responses((status = 200, body = Vec<Object>, description = "The tenant's orders, newest first")))]
pub async fn api_orders(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
) -> Result<Json<Vec<OrderRow>>, PortalError> {
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    Ok(Json(
        recharges::orders(&state.db, OrderQuery::Tenant(signed_in.scope.tenant_id())).await?,
    ))
}

#[utoipa::path(get, path = "/api/portal/recharge/orders/{id}", tag = "recharge",
    params(("id" = String, Path, description = "Order number")),
    responses((status = 200, body = OrderView), (status = 404, description = "No such order of this tenant")))]
pub async fn api_order(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, PortalError> {
    let (order, history) = own_order(&state, &signed_in, &order_id).await?;
    Ok(Json(OrderView { order, history }))
}

#[derive(Deserialize, ToSchema)]
pub struct NewOrder {
    /// Micro-units of the platform currency.
    amount: i64,
    /// `stripe`, `manual` or `sandbox` — one the platform offers.
    method: String,
}

#[derive(Serialize, ToSchema)]
pub struct PlacedOrder {
    order_id: String,
    /// Where to send the customer to pay (none for a bank transfer).
    pay_url: Option<String>,
}

#[utoipa::path(post, path = "/api/portal/recharge/orders", tag = "recharge", request_body = NewOrder,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 201, body = PlacedOrder), (status = 422, description = "Amount out of range or method not offered")))]
pub async fn api_place(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    ApiWriter(signed_in): ApiWriter,
    Json(body): Json<NewOrder>,
) -> Result<Response, PortalError> {
    let method = method_of(&body.method)
        .ok_or_else(|| PortalError::invalid("method", "Choose how to pay."))?;
    let placed = orders::place(
        &state,
        signed_in.scope.tenant_id(),
        &signed_in.email,
        Money(body.amount),
        method,
        &super::models::base_url(&state, &caller),
        &tenant_meta(&signed_in, &request),
    )
    .await?;
    let answer = PlacedOrder {
        order_id: placed.order_id,
        pay_url: placed.pay_url,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct Redeem {
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct Redeemed {
    /// Micro-units credited.
    amount: i64,
}

#[utoipa::path(post, path = "/api/portal/recharge/redeem", tag = "recharge", request_body = Redeem,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = Redeemed), (status = 422, description = "Unknown, expired, disabled or already redeemed code"),
        (status = 429, description = "Too many wrong codes from this account or address lately; `Retry-After` says when to try again")))]
pub async fn api_redeem(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    ApiWriter(signed_in): ApiWriter,
    Json(body): Json<Redeem>,
) -> Result<Json<Redeemed>, PortalError> {
    let amount = redeem(&state, &signed_in, &request, &body.code).await?;
    show_credit(&state, &signed_in).await?;
    Ok(Json(Redeemed { amount: amount.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_exactly_into_micro_units() {
        assert_eq!(parse_amount("25"), Some(Money(25_000_000)));
        assert_eq!(parse_amount(" 25.5 "), Some(Money(25_500_000)));
        assert_eq!(parse_amount("0.000001"), Some(Money(1)));
        assert_eq!(parse_amount(".5"), Some(Money(500_000)));
        for bad in [
            "",
            ".",
            "-5",
            "1e3",
            "2.0000001",
            "12,50",
            "abc",
            "99999999999999999999",
        ] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }
}

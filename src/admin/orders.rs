//! Top-up orders in the console: the filtered list, one order with its history, confirming a
//! bank transfer and refunding a paid order — as pages and JSON.
//!
//! Confirmation follows `modelrouter orders confirm` (`billing::operator::confirm_manual`): only
//! manual transfers, and an amount other than the order's is refused and flagged. Refunds follow
//! `billing::refunds`: the refund form carries a refund id made when the page was rendered, so a
//! form submitted twice — one after the other or at the same moment — refunds once.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use modelrouter_domain::Money;
use modelrouter_projections::sql::recharges::{self, HistoryRow, OrderFilter, OrderRow};
use modelrouter_projections::sql::{self, Projection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::session::{AdminWriter, SignedInOperator};
use crate::billing::operator::confirm_manual;
use crate::billing::orders::{method_name, state_text, Confirmed};
use crate::billing::refunds::{self, RefundRequest};
use crate::gateway::{AppState, RequestId};
use crate::portal::error::urlencode;
use crate::portal::format;
use crate::portal::recharge::parse_amount;
use crate::portal::{render, Chrome, PortalError};
use crate::store::{email_owner, LoginKind};

const PER_PAGE: i64 = 50;

pub fn pages() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/orders", get(list_page))
        .route("/admin/orders/{id}", get(order_page))
        .route("/admin/orders/{id}/confirm", post(confirm_submit))
        .route("/admin/orders/{id}/refund", post(refund_submit))
}

pub fn api() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/orders", get(api_list))
        .route("/api/admin/orders/{id}", get(api_order))
        .route("/api/admin/orders/{id}/confirm", post(api_confirm))
        .route("/api/admin/orders/{id}/refund", post(api_refund))
}

#[derive(OpenApi)]
#[openapi(
    paths(api_list, api_order, api_confirm, api_refund),
    components(schemas(OrderList, OrderDetail, Transfer, ConfirmOutcome, RefundBody, RefundOutcome)),
    tags((name = "admin-orders", description = "Operations console: top-up orders, bank-transfer confirmation and refunds")),
)]
pub struct Api;

// ---- reads ----

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct OrderQuery {
    /// `pending`, `paid`, `failed` or `expired`.
    #[serde(default)]
    state: String,
    /// `stripe`, `manual` or `sandbox`.
    #[serde(default)]
    method: String,
    /// The tenant's sign-in email.
    #[serde(default)]
    tenant: String,
    /// From 1.
    page: Option<i64>,
}

impl OrderQuery {
    fn as_query(&self) -> String {
        [
            ("state", &self.state),
            ("method", &self.method),
            ("tenant", &self.tenant),
        ]
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", urlencode(value)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// One page of orders (newest first) and how many match.
#[derive(Serialize, ToSchema)]
pub struct OrderList {
    #[schema(value_type = Vec<Object>)]
    orders: Vec<OrderRow>,
    total: i64,
    page: i64,
    per_page: i64,
}

fn some(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

async fn search(state: &AppState, query: &OrderQuery) -> Result<OrderList, PortalError> {
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    let page = query.page.unwrap_or(1).max(1);
    let tenant = match some(&query.tenant) {
        None => None,
        Some(email) => {
            let email = email.to_lowercase();
            match email_owner(&state.db, &email, LoginKind::Tenant).await? {
                Some(id) => Some(id),
                // No such tenant: nothing matches.
                None => {
                    return Ok(OrderList {
                        orders: vec![],
                        total: 0,
                        page,
                        per_page: PER_PAGE,
                    })
                }
            }
        }
    };
    let filter = OrderFilter {
        state: some(&query.state),
        method: some(&query.method),
        tenant_id: tenant.as_deref(),
    };
    let (orders, total) =
        recharges::search(&state.db, filter, PER_PAGE, (page - 1) * PER_PAGE).await?;
    Ok(OrderList {
        orders,
        total,
        page,
        per_page: PER_PAGE,
    })
}

/// An order, its history, its tenant's email and what may still be refunded of it.
#[derive(Serialize, ToSchema)]
pub struct OrderDetail {
    #[schema(value_type = Object)]
    order: OrderRow,
    #[schema(value_type = Vec<Object>)]
    history: Vec<HistoryRow>,
    tenant_email: Option<String>,
    /// Micro-units.
    refundable: i64,
    /// A refund taken from the balance that the order does not record yet (Stripe did not
    /// confirm it, or the process stopped): send it again, with this id, to finish it.
    unfinished_refund: Option<UnfinishedRefund>,
}

#[derive(Serialize, ToSchema)]
pub struct UnfinishedRefund {
    refund_id: String,
    /// Micro-units.
    amount: i64,
}

async fn detail(state: &AppState, order_id: &str) -> Result<OrderDetail, PortalError> {
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    let order = recharges::order(&state.db, order_id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let history = recharges::order_history(&state.db, order_id).await?;
    let tenant_email = state
        .live
        .view()
        .tenants
        .get(&order.tenant_id)
        .map(|t| t.email.clone());
    let refundable = match order.state.as_str() {
        "paid" => order.paid_amount.unwrap_or(order.amount) - order.refunded,
        _ => 0,
    };
    let aggregate = state.commands.recharges.load(order_id).await?;
    let unfinished_refund = refunds::unfinished(&state.commands, &aggregate, order_id)
        .await
        .map_err(PortalError::internal)?
        .map(|u| UnfinishedRefund {
            refund_id: u.refund_id,
            amount: u.amount.0,
        });
    Ok(OrderDetail {
        order,
        history,
        tenant_email,
        refundable,
        unfinished_refund,
    })
}

// ---- pages ----

struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn choices(options: &[(&'static str, &'static str)], chosen: &str) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice {
            value,
            label,
            selected: *value == chosen,
        })
        .collect()
}

struct Line {
    id: String,
    tenant: String,
    placed: String,
    amount: String,
    method: &'static str,
    state: String,
    ok: bool,
    pending: bool,
}

#[derive(Template)]
#[template(path = "admin/orders.html")]
struct ListPage {
    chrome: Chrome,
    currency: String,
    states: Vec<Choice>,
    methods: Vec<Choice>,
    tenant: String,
    lines: Vec<Line>,
    total: i64,
    page: i64,
    pages: i64,
    filters: String,
}

pub async fn list_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Query(query): Query<OrderQuery>,
) -> Result<Response, PortalError> {
    let list = search(&state, &query).await?;
    let view = state.live.view();
    let states = [
        ("pending", "Pending"),
        ("paid", "Paid"),
        ("failed", "Failed"),
        ("expired", "Expired"),
    ];
    let methods = [
        ("manual", "Bank transfer"),
        ("stripe", "Card (Stripe)"),
        ("sandbox", "Sandbox"),
    ];
    let page = ListPage {
        chrome: operator.chrome("orders"),
        currency: state.settings.currency.clone(),
        states: choices(&states, &query.state),
        methods: choices(&methods, &query.method),
        tenant: query.tenant.clone(),
        lines: list
            .orders
            .iter()
            .map(|o| Line {
                id: o.order_id.clone(),
                tenant: view
                    .tenants
                    .get(&o.tenant_id)
                    .map_or_else(|| o.tenant_id.clone(), |t| t.email.clone()),
                placed: format::time(&o.placed_at),
                amount: format::money(o.amount),
                method: method_name(&o.method),
                state: state_text(o),
                ok: o.state == "paid",
                pending: o.state == "pending",
            })
            .collect(),
        total: list.total,
        page: list.page,
        pages: ((list.total + PER_PAGE - 1) / PER_PAGE).max(1),
        filters: query.as_query(),
    };
    Ok(render(&page)?.into_response())
}

struct HistoryLine {
    at: String,
    kind: String,
    detail: String,
}

/// What the operator typed into the order's forms, shown again with an error.
#[derive(Default)]
struct Entered {
    confirm_amount: String,
    reference: String,
    refund_amount: String,
    refund_reason: String,
}

#[derive(Template)]
#[template(path = "admin/order.html")]
struct OrderPage {
    chrome: Chrome,
    currency: String,
    id: String,
    tenant_id: String,
    tenant_email: String,
    amount: String,
    method: &'static str,
    state: String,
    ok: bool,
    pending: bool,
    placed: String,
    expires: String,
    paid: String,
    confirmed_by: String,
    provider_ref: String,
    mismatches: i64,
    refunded: String,
    credited: String,
    history: Vec<HistoryLine>,
    can_confirm: bool,
    can_refund: bool,
    stripe: bool,
    refundable: String,
    refund_id: String,
    /// An unfinished refund's id and amount; the form is filled in to finish it.
    unfinished: Option<(String, String)>,
    notice: Option<&'static str>,
    /// The form an error belongs to (`confirm` or `refund`) and its message.
    error: Option<(&'static str, String)>,
    entered: Entered,
}

impl OrderPage {
    fn error_for(&self, form: &str) -> Option<&str> {
        match &self.error {
            Some((which, message)) if *which == form => Some(message),
            _ => None,
        }
    }
}

async fn order_view(
    state: &AppState,
    operator: &SignedInOperator,
    order_id: &str,
) -> Result<OrderPage, PortalError> {
    let OrderDetail {
        order,
        history,
        tenant_email,
        refundable,
        unfinished_refund,
    } = detail(state, order_id).await?;
    let paid = order.state == "paid";
    let card = order.method == "stripe";
    let mut entered = Entered::default();
    let refund_id = match &unfinished_refund {
        Some(unfinished) => {
            entered.refund_amount = format::money(unfinished.amount);
            unfinished.refund_id.clone()
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    Ok(OrderPage {
        chrome: operator.chrome("orders"),
        currency: order.currency.clone(),
        id: order.order_id.clone(),
        tenant_email: tenant_email.unwrap_or_else(|| order.tenant_id.clone()),
        tenant_id: order.tenant_id.clone(),
        amount: format::money(order.amount),
        method: method_name(&order.method),
        state: state_text(&order),
        ok: paid,
        pending: order.state == "pending",
        placed: format::time(&order.placed_at),
        expires: format::time(&order.expires_at),
        paid: match (&order.paid_at, order.paid_amount) {
            (Some(at), Some(amount)) => {
                format!("{} on {}", format::money(amount), format::time(at))
            }
            _ => "—".into(),
        },
        confirmed_by: order.confirmed_by.clone().unwrap_or_else(|| "—".into()),
        provider_ref: order.provider_ref.clone().unwrap_or_else(|| "—".into()),
        mismatches: order.mismatches,
        refunded: format::money(order.refunded),
        credited: order
            .credited_at
            .as_deref()
            .map_or_else(|| "—".into(), format::time),
        history: history
            .into_iter()
            .map(|h| HistoryLine {
                at: format::time(&h.at),
                kind: h.kind,
                detail: h.detail,
            })
            .collect(),
        can_confirm: order.method == "manual" && !paid,
        can_refund: paid && refundable > 0 && (!card || state.stripe.is_some()),
        stripe: card,
        refundable: format::money(refundable),
        refund_id,
        unfinished: unfinished_refund.map(|u| (u.refund_id, format::money(u.amount))),
        notice: None,
        error: None,
        entered,
    })
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn order_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let mut page = order_view(&state, &operator, &id).await?;
    page.notice = match query.notice.as_deref() {
        Some("confirmed") => Some("The transfer is confirmed and the order credited."),
        Some("mismatch") => Some(
            "The amount differs from the order: the confirmation was refused and flagged; \
             nothing was credited.",
        ),
        Some("refunded") => Some("The refund is recorded and the balance debited."),
        _ => None,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reference: String,
}

async fn confirm(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    order_id: &str,
    received: Money,
    reference: &str,
) -> Result<Confirmed, PortalError> {
    let reference = match reference.trim() {
        "" => "bank transfer",
        reference => reference,
    };
    let confirmed_by = format!("operator:{}", operator.email);
    let outcome = confirm_manual(
        &state.commands,
        order_id,
        received,
        reference,
        &confirmed_by,
        &operator.handle.metadata(request),
    )
    .await?;
    state.live.refresh(&state.db).await?;
    Ok(outcome)
}

pub async fn confirm_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let result = match parse_amount(&form.amount) {
        Some(received) => {
            confirm(&state, &operator, &request, &id, received, &form.reference).await
        }
        None => Err(PortalError::invalid(
            "amount",
            "Enter the amount received as a number, e.g. 25 or 25.50.",
        )),
    };
    match result {
        Ok(Confirmed::Paid) => {
            Ok(Redirect::to(&format!("/admin/orders/{id}?notice=confirmed")).into_response())
        }
        Ok(Confirmed::Refused) => {
            Ok(Redirect::to(&format!("/admin/orders/{id}?notice=mismatch")).into_response())
        }
        Err(error @ PortalError::Invalid { .. }) => {
            let mut page = order_view(&state, &operator, &id).await?;
            page.error = Some(("confirm", error.to_string()));
            page.entered.confirm_amount = form.amount;
            page.entered.reference = form.reference;
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

#[derive(Deserialize)]
pub struct RefundForm {
    csrf: String,
    refund_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
}

async fn refund(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    order_id: &str,
    refund: RefundRequest<'_>,
) -> Result<refunds::Refunded, PortalError> {
    let refunded = refunds::refund(
        &state.commands,
        state.stripe.as_ref(),
        RefundRequest { order_id, ..refund },
        &state.settings.currency,
        &operator.handle.metadata(request),
    )
    .await?;
    state.live.refresh(&state.db).await?;
    Ok(refunded)
}

pub async fn refund_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let result = match parse_amount(&form.amount) {
        Some(amount) => {
            let request_body = RefundRequest {
                order_id: &id,
                refund_id: &form.refund_id,
                amount,
                reason: &form.reason,
            };
            refund(&state, &operator, &request, &id, request_body).await
        }
        None => Err(PortalError::invalid(
            "amount",
            "Enter the amount to refund as a number, e.g. 10 or 10.50.",
        )),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/admin/orders/{id}?notice=refunded")).into_response()),
        Err(error @ PortalError::Invalid { .. }) => {
            let mut page = order_view(&state, &operator, &id).await?;
            page.error = Some(("refund", error.to_string()));
            // The same refund id: sending the form again is the same refund.
            page.refund_id = form.refund_id;
            page.entered.refund_amount = form.amount;
            page.entered.refund_reason = form.reason;
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

// ---- JSON ----

#[utoipa::path(get, path = "/api/admin/orders", tag = "admin-orders", params(OrderQuery),
    responses((status = 200, body = OrderList, description = "Matching orders, newest first")))]
pub async fn api_list(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Query(query): Query<OrderQuery>,
) -> Result<Json<OrderList>, PortalError> {
    Ok(Json(search(&state, &query).await?))
}

#[utoipa::path(get, path = "/api/admin/orders/{id}", tag = "admin-orders",
    params(("id" = String, Path, description = "Order number")),
    responses((status = 200, body = OrderDetail), (status = 404, description = "No such order")))]
pub async fn api_order(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Path(id): Path<String>,
) -> Result<Json<OrderDetail>, PortalError> {
    Ok(Json(detail(&state, &id).await?))
}

/// A bank transfer that arrived.
#[derive(Deserialize, ToSchema)]
pub struct Transfer {
    /// Micro-units received.
    amount: i64,
    /// The bank's reference of the transfer.
    #[serde(default)]
    reference: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConfirmOutcome {
    /// `paid` (credited, now or before) or `refused` (the amount differs; flagged).
    outcome: &'static str,
}

#[utoipa::path(post, path = "/api/admin/orders/{id}/confirm", tag = "admin-orders", request_body = Transfer,
    params(("id" = String, Path, description = "Order number"),
        ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = ConfirmOutcome), (status = 404, description = "No such order"),
        (status = 422, description = "Not a bank-transfer order, or no amount")))]
pub async fn api_confirm(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<Transfer>,
) -> Result<Json<ConfirmOutcome>, PortalError> {
    let outcome = confirm(
        &state,
        &operator,
        &request,
        &id,
        Money(body.amount),
        &body.reference,
    )
    .await?;
    Ok(Json(ConfirmOutcome {
        outcome: match outcome {
            Confirmed::Paid => "paid",
            Confirmed::Refused => "refused",
        },
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct RefundBody {
    /// Micro-units to give back.
    amount: i64,
    reason: String,
    /// Makes retries safe: the same id is the same refund. One is made when absent.
    refund_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RefundOutcome {
    refund_id: String,
    /// What the order received, micro-units.
    paid: i64,
    /// What has been refunded of it in all, micro-units.
    refunded: i64,
}

#[utoipa::path(post, path = "/api/admin/orders/{id}/refund", tag = "admin-orders", request_body = RefundBody,
    params(("id" = String, Path, description = "Order number"),
        ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = RefundOutcome, description = "Refunded (now or by an earlier request with the same id)"),
        (status = 404, description = "No such order"),
        (status = 422, description = "Not paid, a card payment, more than was paid, or more than the unspent balance")))]
pub async fn api_refund(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<RefundBody>,
) -> Result<Response, PortalError> {
    let refund_id = body
        .refund_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let request_body = RefundRequest {
        order_id: &id,
        refund_id: &refund_id,
        amount: Money(body.amount),
        reason: &body.reason,
    };
    let refunded = refund(&state, &operator, &request, &id, request_body).await?;
    let answer = RefundOutcome {
        refund_id,
        paid: refunded.paid.0,
        refunded: refunded.refunded.0,
    };
    Ok((StatusCode::OK, Json(answer)).into_response())
}

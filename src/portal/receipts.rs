//! Receipts of paid top-ups: the tenant's own receipt (page and PDF) and the public check of a
//! receipt's verification code (page and JSON), throttled against guessing.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use modelrouter_domain::Money;
use modelrouter_projections::sql::recharges::{self, OrderRow};
use modelrouter_projections::sql::{self, Projection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::code_guesses::CodeTries;
use super::recharge::own_order;
use super::{render, Chrome, PortalError, SignedIn};
use crate::billing::orders;
use crate::gateway::{AppState, Caller, RequestId};
use crate::receipt::{self, Issuer, Receipt};

/// The receipt of a paid order, as the platform has it on record.
async fn receipt_of(state: &AppState, order: &OrderRow) -> Result<Receipt, PortalError> {
    let paid_at = order
        .paid_at
        .as_deref()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc))
        .ok_or(PortalError::NotFound)?;
    let view = state.live.view();
    let tenant = view.tenants.get(&order.tenant_id);
    Ok(Receipt {
        order_id: order.order_id.clone(),
        tenant_id: order.tenant_id.clone(),
        tenant_name: tenant.map(|t| t.name.clone()).unwrap_or_default(),
        tenant_email: tenant.map(|t| t.email.clone()).unwrap_or_default(),
        amount: Money(order.paid_amount.unwrap_or(order.amount)),
        currency: order.currency.clone(),
        method: orders::method_name(&order.method).to_string(),
        provider_ref: order.provider_ref.clone(),
        paid_at,
    })
}

async fn own_receipt(
    state: &AppState,
    signed_in: &SignedIn,
    order_id: &str,
) -> Result<Receipt, PortalError> {
    let (order, _) = own_order(state, signed_in, order_id).await?;
    if order.state != "paid" {
        return Err(PortalError::NotFound);
    }
    receipt_of(state, &order).await
}

fn issuer(state: &AppState, caller: &Caller) -> Issuer {
    Issuer {
        name: "Model Router".into(),
        verify_url: format!("{}/receipts/verify", super::models::base_url(state, caller)),
    }
}

#[derive(Template)]
#[template(path = "portal/receipt.html")]
struct ReceiptPage {
    chrome: Chrome,
    order_id: String,
    paid_at: String,
    name: String,
    email: String,
    tenant_id: String,
    amount: String,
    method: String,
    provider_ref: String,
    code: String,
    verify_url: String,
}

pub async fn receipt_page(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    signed_in: SignedIn,
    Path(order_id): Path<String>,
) -> Result<Response, PortalError> {
    let receipt = own_receipt(&state, &signed_in, &order_id).await?;
    let page = ReceiptPage {
        chrome: Chrome::new(&signed_in, "recharge"),
        code: receipt::verification_code(&state.master_key, &receipt),
        verify_url: issuer(&state, &caller).verify_url,
        order_id: receipt.order_id.clone(),
        paid_at: receipt.paid_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        name: receipt.tenant_name.clone(),
        email: receipt.tenant_email.clone(),
        tenant_id: receipt.tenant_id.clone(),
        amount: receipt::format_amount(receipt.amount, &receipt.currency),
        method: receipt.method.clone(),
        provider_ref: receipt.provider_ref.clone().unwrap_or_else(|| "—".into()),
    };
    Ok(render(&page)?.into_response())
}

pub async fn receipt_pdf(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    signed_in: SignedIn,
    Path(order_id): Path<String>,
) -> Result<Response, PortalError> {
    let receipt = own_receipt(&state, &signed_in, &order_id).await?;
    let code = receipt::verification_code(&state.master_key, &receipt);
    let pdf = receipt::render_pdf(&receipt, &code, &issuer(&state, &caller));
    let disposition = format!("attachment; filename=\"receipt-{}.pdf\"", receipt.order_id);
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/pdf".to_string(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        pdf,
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "portal/verify.html")]
struct VerifyPage {
    order: String,
    code: String,
    /// None before a check; Some(description) when genuine; Some("") never.
    verdict: Option<Verdict>,
}

struct Verdict {
    genuine: bool,
    amount: String,
    paid_at: String,
}

#[derive(Deserialize)]
pub struct VerifyQuery {
    order: Option<String>,
    code: Option<String>,
}

/// Anyone holding a receipt may check it: the order number and code match a paid order on
/// record, or they do not. It says nothing else about the order or its tenant.
pub async fn verify_page(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    Query(query): Query<VerifyQuery>,
) -> Result<Response, PortalError> {
    let order_id = query.order.unwrap_or_default().trim().to_string();
    let code = query.code.unwrap_or_default().trim().to_string();
    let mut verdict = None;
    if !order_id.is_empty() && !code.is_empty() {
        let checked = check_receipt(&state, &request, &order_id, &code).await?;
        verdict = Some(match checked {
            Some(receipt) => Verdict {
                genuine: true,
                amount: receipt::format_amount(receipt.amount, &receipt.currency),
                paid_at: receipt.paid_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            },
            None => Verdict {
                genuine: false,
                amount: String::new(),
                paid_at: String::new(),
            },
        });
    }
    let page = VerifyPage {
        order: order_id,
        code,
        verdict,
    };
    Ok(render(&page)?.into_response())
}

/// The receipt an order number and verification code prove, if they do: a paid order on
/// record whose code matches. Refused while too many wrong codes came from the caller's address
/// lately (`code_guesses`); a wrong code is counted.
async fn check_receipt(
    state: &AppState,
    request: &RequestId,
    order_id: &str,
    code: &str,
) -> Result<Option<Receipt>, PortalError> {
    let tries = CodeTries::receipt(state, request);
    tries.allowed(state).await?;
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    let order = recharges::order(&state.db, order_id)
        .await?
        .filter(|o| o.state == "paid");
    let checked = match &order {
        Some(order) => {
            let receipt = receipt_of(state, order).await?;
            receipt::verify(&state.master_key, &receipt, code).then_some(receipt)
        }
        None => None,
    };
    if checked.is_none() {
        tries.failed(state).await?;
    }
    Ok(checked)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct VerifyParams {
    /// The order number printed on the receipt.
    order: String,
    /// The receipt's verification code.
    code: String,
}

/// What a receipt check found: only whether it is genuine, and then its amount and date.
#[derive(Serialize, ToSchema)]
pub struct ReceiptCheck {
    genuine: bool,
    /// Micro-units paid, when genuine.
    amount: Option<i64>,
    currency: Option<String>,
    /// RFC 3339, when genuine.
    paid_at: Option<String>,
}

#[utoipa::path(get, path = "/api/portal/receipts/verify", tag = "recharge", params(VerifyParams), security(()),
    responses((status = 200, body = ReceiptCheck),
        (status = 429, description = "Too many wrong codes from this address lately; `Retry-After` says when to try again")))]
pub async fn api_verify(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    Query(params): Query<VerifyParams>,
) -> Result<Json<ReceiptCheck>, PortalError> {
    let order_id = params.order.trim();
    let code = params.code.trim();
    if order_id.is_empty() || code.is_empty() {
        return Err(PortalError::invalid(
            "code",
            "Enter the order number and the code.",
        ));
    }
    let checked = check_receipt(&state, &request, order_id, code).await?;
    Ok(Json(match checked {
        Some(receipt) => ReceiptCheck {
            genuine: true,
            amount: Some(receipt.amount.0),
            currency: Some(receipt.currency),
            paid_at: Some(
                receipt
                    .paid_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        },
        None => ReceiptCheck {
            genuine: false,
            amount: None,
            currency: None,
            paid_at: None,
        },
    }))
}

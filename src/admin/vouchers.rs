//! Prepaid codes in the console: issue a batch, list codes, revoke an unredeemed one — as pages
//! and JSON.
//!
//! A code exists in plaintext only in the answer that issues it: the store keeps its SHA-256 and
//! its first four characters (so lists can tell codes apart). The issued page offers the batch as
//! CSV by posting the codes it shows back to `/admin/vouchers/batch.csv`, which answers with the
//! codes it recognises as issued — nothing is kept on the server for the download.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use modelrouter_domain::aggregate_types::PREPAID_CODE;
use modelrouter_domain::prepaid::{code_id, PrepaidCommand};
use modelrouter_domain::Money;
use modelrouter_projections::sql::recharges::{self, CodeRow};
use modelrouter_projections::sql::{self, Projection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::session::{AdminWriter, SignedInOperator};
use crate::billing::operator::issue;
use crate::gateway::{AppState, RequestId};
use crate::portal::format;
use crate::portal::recharge::parse_amount;
use crate::portal::{render, Chrome, PortalError};

const PER_PAGE: usize = 50;
/// The most codes one batch issues.
const MAX_BATCH: usize = 500;

pub fn pages() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/vouchers", get(list_page).post(issue_submit))
        .route("/admin/vouchers/batch.csv", post(batch_csv))
        .route("/admin/vouchers/{id}/revoke", post(revoke_submit))
}

pub fn api() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/vouchers", get(api_list).post(api_issue))
        .route("/api/admin/vouchers/{id}/revoke", post(api_revoke))
}

#[derive(OpenApi)]
#[openapi(
    paths(api_list, api_issue, api_revoke),
    components(schemas(CodeList, CodeView, NewCodes, IssuedCodes, Revocation)),
    tags((name = "admin-vouchers", description = "Operations console: prepaid codes")),
)]
pub struct Api;

// ---- reads ----

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct CodeQuery {
    /// `issued` (unredeemed), `redeemed`, `disabled` or `expired`.
    #[serde(default)]
    state: String,
    /// From 1.
    page: Option<usize>,
    /// A notice to show (after a revocation).
    #[serde(default)]
    #[param(ignore)]
    notice: String,
}

/// A code as lists show it: never the code itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeView {
    /// The SHA-256 of the normalized code: the id to revoke it by.
    id: String,
    /// The code's first characters (absent on codes issued before they were recorded).
    prefix: Option<String>,
    /// Micro-units.
    amount: i64,
    currency: String,
    /// `issued` (unredeemed), `redeemed`, `disabled` or `expired`.
    state: String,
    note: String,
    issued_at: String,
    expires_at: Option<String>,
    redeemed_by: Option<String>,
    redeemed_by_email: Option<String>,
    redeemed_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CodeList {
    codes: Vec<CodeView>,
    total: usize,
    page: usize,
    per_page: usize,
}

/// A code's state as operators read it: an unredeemed code past its expiry is `expired`.
fn state_of(code: &CodeRow, now: &str) -> String {
    match (&code.state[..], &code.expires_at) {
        ("issued", Some(expires)) if expires.as_str() <= now => "expired".into(),
        (state, _) => state.into(),
    }
}

async fn list(state: &AppState, query: &CodeQuery) -> Result<CodeList, PortalError> {
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let view = state.live.view();
    let mut codes: Vec<CodeView> = recharges::codes(&state.db, None)
        .await?
        .into_iter()
        .map(|code| CodeView {
            state: state_of(&code, &now),
            redeemed_by_email: code
                .redeemed_by
                .as_ref()
                .and_then(|tenant| view.tenants.get(tenant))
                .map(|tenant| tenant.email.clone()),
            id: code.code_id,
            prefix: code.prefix,
            amount: code.amount,
            currency: code.currency,
            note: code.note,
            issued_at: code.issued_at,
            expires_at: code.expires_at,
            redeemed_by: code.redeemed_by,
            redeemed_at: code.redeemed_at,
        })
        .filter(|code| query.state.is_empty() || code.state == query.state)
        .collect();
    // Newest issued first.
    codes.sort_by(|a, b| b.issued_at.cmp(&a.issued_at).then(a.id.cmp(&b.id)));
    let total = codes.len();
    let page = query.page.unwrap_or(1).max(1);
    let codes = codes
        .into_iter()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .collect();
    Ok(CodeList {
        codes,
        total,
        page,
        per_page: PER_PAGE,
    })
}

// ---- issuing and revoking ----

/// What a batch is to be.
struct Batch {
    amount: Money,
    count: usize,
    expires_at: Option<DateTime<Utc>>,
    note: String,
}

fn check_batch(batch: &Batch) -> Result<(), PortalError> {
    if !batch.amount.is_positive() {
        return Err(PortalError::invalid(
            "amount",
            "Enter the value of each code, e.g. 10.",
        ));
    }
    if !(1..=MAX_BATCH).contains(&batch.count) {
        return Err(PortalError::invalid(
            "count",
            format!("Issue 1 to {MAX_BATCH} codes at a time."),
        ));
    }
    if batch.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(PortalError::invalid(
            "expires_at",
            "The expiry must be in the future.",
        ));
    }
    if batch.note.chars().count() > 200 {
        return Err(PortalError::invalid(
            "note",
            "Keep the note to 200 characters.",
        ));
    }
    Ok(())
}

async fn issue_batch(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    batch: &Batch,
) -> Result<Vec<String>, PortalError> {
    check_batch(batch)?;
    let codes = issue(
        &state.commands,
        batch.amount,
        &state.settings.currency,
        batch.count,
        batch.expires_at,
        batch.note.trim(),
        &operator.handle.metadata(request),
    )
    .await?;
    state.live.refresh(&state.db).await?;
    Ok(codes)
}

async fn revoke(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    id: &str,
    reason: &str,
) -> Result<(), PortalError> {
    let reason = match reason.trim() {
        "" => "revoked by an operator",
        reason => reason,
    };
    let disable = PrepaidCommand::Disable {
        reason: reason.to_string(),
    };
    state
        .commands
        .prepaid
        .execute(id, disable, &operator.handle.metadata(request))
        .await?;
    state.live.include(&state.db, PREPAID_CODE, id).await?;
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    Ok(())
}

// ---- pages ----

struct Line {
    id: String,
    prefix: String,
    amount: String,
    state: String,
    ok: bool,
    revocable: bool,
    note: String,
    issued: String,
    expires: String,
    redeemed: String,
}

struct Choice {
    value: &'static str,
    selected: bool,
}

#[derive(Default)]
struct Entered {
    amount: String,
    count: String,
    expires_on: String,
    note: String,
}

#[derive(Template)]
#[template(path = "admin/vouchers.html")]
struct ListPage {
    chrome: Chrome,
    currency: String,
    states: Vec<Choice>,
    lines: Vec<Line>,
    total: usize,
    page: usize,
    pages: usize,
    state: String,
    today: String,
    notice: Option<&'static str>,
    /// The form an error belongs to (`issue` or `revoke`) and its message.
    error: Option<(&'static str, String)>,
    entered: Entered,
}

impl ListPage {
    fn error_for(&self, form: &str) -> Option<&str> {
        match &self.error {
            Some((which, message)) if *which == form => Some(message),
            _ => None,
        }
    }
}

async fn list_view(
    state: &AppState,
    operator: &SignedInOperator,
    query: &CodeQuery,
) -> Result<ListPage, PortalError> {
    let list = list(state, query).await?;
    let time = |t: &Option<String>| t.as_deref().map(format::time).unwrap_or_default();
    Ok(ListPage {
        chrome: operator.chrome("vouchers"),
        currency: state.settings.currency.clone(),
        states: ["issued", "redeemed", "disabled", "expired"]
            .into_iter()
            .map(|value| Choice {
                value,
                selected: value == query.state,
            })
            .collect(),
        lines: list
            .codes
            .iter()
            .map(|c| Line {
                id: c.id.clone(),
                prefix: c
                    .prefix
                    .as_ref()
                    .map_or_else(|| "—".into(), |p| format!("{p}-…")),
                amount: format::money(c.amount),
                ok: c.state == "issued",
                revocable: c.state == "issued" || c.state == "expired",
                state: c.state.clone(),
                note: c.note.clone(),
                issued: format::time(&c.issued_at),
                expires: c
                    .expires_at
                    .as_deref()
                    .map_or_else(|| "never".into(), format::time),
                redeemed: match (&c.redeemed_by_email, &c.redeemed_by) {
                    (Some(email), _) => format!("{email}, {}", time(&c.redeemed_at)),
                    (None, Some(id)) => format!("{id}, {}", time(&c.redeemed_at)),
                    _ => String::new(),
                },
            })
            .collect(),
        total: list.total,
        page: list.page,
        pages: list.total.div_ceil(PER_PAGE).max(1),
        state: query.state.clone(),
        today: Utc::now().format("%Y-%m-%d").to_string(),
        notice: match query.notice.as_str() {
            "revoked" => Some("The code is revoked: it can no longer be redeemed."),
            _ => None,
        },
        error: None,
        entered: Entered {
            count: "1".into(),
            ..Entered::default()
        },
    })
}

pub async fn list_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Query(query): Query<CodeQuery>,
) -> Result<Response, PortalError> {
    Ok(render(&list_view(&state, &operator, &query).await?)?.into_response())
}

#[derive(Deserialize)]
pub struct IssueForm {
    csrf: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    count: String,
    /// `YYYY-MM-DD`: the codes are valid through this day (UTC).
    #[serde(default)]
    expires_on: String,
    #[serde(default)]
    note: String,
}

fn batch_of(form: &IssueForm) -> Result<Batch, PortalError> {
    let amount = parse_amount(&form.amount).ok_or_else(|| {
        PortalError::invalid(
            "amount",
            "Enter the value of each code as a number, e.g. 10.",
        )
    })?;
    let count = form
        .count
        .trim()
        .parse::<usize>()
        .map_err(|_| PortalError::invalid("count", "Enter how many codes to issue."))?;
    let expires_at = match form.expires_on.trim() {
        "" => None,
        day => {
            let day = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|_| PortalError::invalid("expires_at", "Choose a valid date."))?;
            // Valid through the chosen day: they expire when the next one starts.
            day.succ_opt()
                .and_then(|next| next.and_hms_opt(0, 0, 0))
                .map(|at| at.and_utc())
        }
    };
    Ok(Batch {
        amount,
        count,
        expires_at,
        note: form.note.clone(),
    })
}

struct IssuedLine {
    code: String,
}

#[derive(Template)]
#[template(path = "admin/vouchers_issued.html")]
struct IssuedPage {
    chrome: Chrome,
    currency: String,
    amount: String,
    expires: String,
    note: String,
    codes: Vec<IssuedLine>,
    all: String,
}

pub async fn issue_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Form(form): Form<IssueForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let issued = match batch_of(&form) {
        Ok(batch) => issue_batch(&state, &operator, &request, &batch)
            .await
            .map(|codes| (batch, codes)),
        Err(error) => Err(error),
    };
    match issued {
        // The codes are shown on this answer, never behind a redirect: this is their only time.
        Ok((batch, codes)) => {
            let page = IssuedPage {
                chrome: operator.chrome("vouchers"),
                currency: state.settings.currency.clone(),
                amount: format::money(batch.amount.0),
                expires: batch.expires_at.map_or_else(
                    || "never".into(),
                    |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
                ),
                note: batch.note.trim().to_string(),
                all: codes.join(" "),
                codes: codes.into_iter().map(|code| IssuedLine { code }).collect(),
            };
            Ok(render(&page)?.into_response())
        }
        Err(error @ PortalError::Invalid { .. }) => {
            let mut page = list_view(&state, &operator, &CodeQuery::default()).await?;
            page.error = Some(("issue", error.to_string()));
            page.entered = Entered {
                amount: form.amount,
                count: form.count,
                expires_on: form.expires_on,
                note: form.note,
            };
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

#[derive(Deserialize)]
pub struct BatchForm {
    csrf: String,
    #[serde(default)]
    codes: String,
}

/// The batch just issued as CSV, from the codes the issued page posts back. Only codes that were
/// issued are written, so this never echoes arbitrary text.
pub async fn batch_csv(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Form(form): Form<BatchForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    let known: std::collections::HashMap<String, CodeRow> = recharges::codes(&state.db, None)
        .await?
        .into_iter()
        .map(|code| (code.code_id.clone(), code))
        .collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["code", "amount", "currency", "expires_at", "note"])
        .map_err(PortalError::internal)?;
    for code in form.codes.split_whitespace().take(MAX_BATCH) {
        if let Some(row) = known.get(&code_id(code)) {
            out.write_record([
                code,
                &Money(row.amount).to_string(),
                &row.currency,
                row.expires_at.as_deref().unwrap_or(""),
                &row.note,
            ])
            .map_err(PortalError::internal)?;
        }
    }
    let body = out.into_inner().map_err(PortalError::internal)?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"prepaid-codes.csv\""),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn revoke_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    match revoke(&state, &operator, &request, &id, &form.reason).await {
        Ok(()) => Ok(Redirect::to("/admin/vouchers?notice=revoked").into_response()),
        Err(error @ PortalError::Invalid { .. }) => {
            let mut page = list_view(&state, &operator, &CodeQuery::default()).await?;
            page.error = Some(("revoke", error.to_string()));
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

// ---- JSON ----

#[utoipa::path(get, path = "/api/admin/vouchers", tag = "admin-vouchers", params(CodeQuery),
    responses((status = 200, body = CodeList, description = "Codes, newest issued first; never the codes themselves")))]
pub async fn api_list(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Query(query): Query<CodeQuery>,
) -> Result<Json<CodeList>, PortalError> {
    Ok(Json(list(&state, &query).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewCodes {
    /// Micro-units each code credits.
    amount: i64,
    /// 1 to 500.
    count: usize,
    expires_at: Option<DateTime<Utc>>,
    /// What the codes are for; never shown to tenants.
    #[serde(default)]
    note: String,
}

#[derive(Serialize, ToSchema)]
pub struct IssuedCodes {
    /// The codes: shown this once, stored only as hashes.
    codes: Vec<String>,
    amount: i64,
    currency: String,
    expires_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/admin/vouchers", tag = "admin-vouchers", request_body = NewCodes,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 201, body = IssuedCodes), (status = 422, description = "Bad amount, count, expiry or note")))]
pub async fn api_issue(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Json(body): Json<NewCodes>,
) -> Result<Response, PortalError> {
    let batch = Batch {
        amount: Money(body.amount),
        count: body.count,
        expires_at: body.expires_at,
        note: body.note,
    };
    let codes = issue_batch(&state, &operator, &request, &batch).await?;
    let answer = IssuedCodes {
        codes,
        amount: body.amount,
        currency: state.settings.currency.clone(),
        expires_at: body.expires_at,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct Revocation {
    #[serde(default)]
    reason: String,
}

#[utoipa::path(post, path = "/api/admin/vouchers/{id}/revoke", tag = "admin-vouchers", request_body = Revocation,
    params(("id" = String, Path, description = "The code's id (SHA-256 of the normalized code)"),
        ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "Revoked (or already)"), (status = 404, description = "No such code"),
        (status = 422, description = "Already redeemed")))]
pub async fn api_revoke(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(id): Path<String>,
    Json(body): Json<Revocation>,
) -> Result<StatusCode, PortalError> {
    revoke(&state, &operator, &request, &id, &body.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

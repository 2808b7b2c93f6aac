//! What an agent sees: its referral link, its referred tenants (name, sign-up date, spend — never
//! their emails, keys or prompts), and its commission by month with a statement per month, as
//! pages, CSV and JSON. Every read goes through the agent's [`AgentScope`](super::AgentScope).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Datelike, Utc};
use modelrouter_domain::agent::check_month;
use modelrouter_domain::Money;
use modelrouter_projections::live::LiveView;
use modelrouter_projections::sql::commissions::{MonthRow, ReferredTenant};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::session::SignedInAgent;
use crate::gateway::{AppState, Caller};
use crate::portal::format::{csv_cell, money, percent_bps};
use crate::portal::{render, Chrome, PortalError};

/// The current UTC month, `YYYY-MM`.
pub fn this_month() -> String {
    Utc::now().format("%Y-%m").to_string()
}

/// The UTC month before this one.
fn last_month() -> String {
    let now = Utc::now();
    let (year, month) = match now.month() {
        1 => (now.year() - 1, 12),
        m => (now.year(), m - 1),
    };
    format!("{year:04}-{month:02}")
}

/// A referred tenant as the agent sees it.
#[derive(Serialize, ToSchema)]
pub struct TenantView {
    /// The tenant's display name (never its email).
    name: String,
    /// When the tenant signed up (RFC 3339).
    signed_up_at: String,
    /// Settled spend this month and all time, micro-units.
    spend_this_month: i64,
    spend_total: i64,
    /// Commission earned on the tenant all time, micro-units.
    commission_total: i64,
}

fn tenant_view(view: &LiveView, tenant: &ReferredTenant) -> TenantView {
    TenantView {
        name: view
            .tenants
            .get(&tenant.tenant_id)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| "(unknown)".into()),
        signed_up_at: tenant.registered_at.clone(),
        spend_this_month: tenant.usage_month,
        spend_total: tenant.usage_total,
        commission_total: tenant.commission_total,
    }
}

/// An agent's figures at a glance.
#[derive(Serialize, ToSchema)]
pub struct Dashboard {
    name: String,
    referral_code: String,
    /// The link that attributes sign-ups to the agent.
    referral_link: String,
    commission_bps: u32,
    tenants: usize,
    commission_this_month: i64,
    commission_last_month: i64,
    /// Commission of every month not yet marked paid, the current one included.
    unpaid: i64,
    paid_total: i64,
}

async fn dashboard(
    state: &AppState,
    agent: &SignedInAgent,
    caller: &Caller,
) -> Result<(Dashboard, Vec<TenantView>), PortalError> {
    let this = this_month();
    let last = last_month();
    let tenants = agent.scope.tenants(&state.db, &this).await?;
    let months = agent.scope.months(&state.db).await?;
    let of = |month: &str| {
        months
            .iter()
            .find(|m| m.month == month)
            .map_or(0, |m| m.commission)
    };
    let unpaid = months
        .iter()
        .filter(|m| m.paid.is_none())
        .map(|m| m.commission)
        .sum();
    let paid_total = months
        .iter()
        .filter_map(|m| m.paid.as_ref().map(|p| p.amount))
        .sum();
    let base = crate::portal::models::base_url(state, caller);
    let dashboard = Dashboard {
        name: agent.name.clone(),
        referral_code: agent.referral_code.clone(),
        referral_link: format!("{base}/r/{}", agent.referral_code),
        commission_bps: agent.commission_bps,
        tenants: tenants.len(),
        commission_this_month: of(&this),
        commission_last_month: of(&last),
        unpaid,
        paid_total,
    };
    let view = state.live.view();
    let tenants = tenants.iter().map(|t| tenant_view(&view, t)).collect();
    Ok((dashboard, tenants))
}

#[derive(Template)]
#[template(path = "agent/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    d: Dashboard,
    rate: String,
    tenants: Vec<TenantView>,
    currency: String,
    notice: Option<&'static str>,
}

impl DashboardPage {
    fn money(&self, micros: &i64) -> String {
        money(*micros)
    }
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn dashboard_page(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
    caller: Caller,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let (d, tenants) = dashboard(&state, &agent, &caller).await?;
    let page = DashboardPage {
        chrome: agent.chrome("dashboard"),
        rate: percent_bps(d.commission_bps),
        d,
        tenants: tenants.into_iter().take(10).collect(),
        currency: state.settings.currency.clone(),
        notice: match query.notice.as_deref() {
            Some("password_changed") => Some("Your password was changed."),
            _ => None,
        },
    };
    Ok(render(&page)?.into_response())
}

#[derive(Template)]
#[template(path = "agent/tenants.html")]
struct TenantsPage {
    chrome: Chrome,
    tenants: Vec<TenantView>,
    currency: String,
}

impl TenantsPage {
    fn money(&self, micros: &i64) -> String {
        money(*micros)
    }
}

pub async fn tenants_page(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
) -> Result<Response, PortalError> {
    let tenants = agent.scope.tenants(&state.db, &this_month()).await?;
    let view = state.live.view();
    let page = TenantsPage {
        chrome: agent.chrome("tenants"),
        tenants: tenants.iter().map(|t| tenant_view(&view, t)).collect(),
        currency: state.settings.currency.clone(),
    };
    Ok(render(&page)?.into_response())
}

/// One month of commission.
#[derive(Serialize, ToSchema)]
pub struct MonthView {
    month: String,
    tenants: i64,
    usage: i64,
    calls: i64,
    commission: i64,
    /// Null while unpaid.
    paid_amount: Option<i64>,
    paid_at: Option<String>,
    paid_reference: Option<String>,
}

impl From<MonthRow> for MonthView {
    fn from(row: MonthRow) -> Self {
        MonthView {
            month: row.month,
            tenants: row.tenants,
            usage: row.usage,
            calls: row.calls,
            commission: row.commission,
            paid_amount: row.paid.as_ref().map(|p| p.amount),
            paid_at: row.paid.as_ref().map(|p| p.paid_at.clone()),
            paid_reference: row.paid.map(|p| p.reference),
        }
    }
}

#[derive(Template)]
#[template(path = "agent/commission.html")]
struct CommissionPage {
    chrome: Chrome,
    months: Vec<MonthView>,
    rate: String,
    currency: String,
}

impl CommissionPage {
    fn money(&self, micros: &i64) -> String {
        money(*micros)
    }
}

pub async fn commission_page(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
) -> Result<Response, PortalError> {
    let months = agent.scope.months(&state.db).await?;
    let page = CommissionPage {
        chrome: agent.chrome("commission"),
        months: months.into_iter().map(MonthView::from).collect(),
        rate: percent_bps(agent.commission_bps),
        currency: state.settings.currency.clone(),
    };
    Ok(render(&page)?.into_response())
}

/// A month's statement: a line per referred tenant with settled usage that month.
#[derive(Serialize, ToSchema)]
pub struct Statement {
    month: String,
    lines: Vec<StatementLineView>,
    usage: i64,
    commission: i64,
    paid_amount: Option<i64>,
    paid_at: Option<String>,
    paid_reference: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatementLineView {
    tenant: String,
    usage: i64,
    calls: i64,
    commission: i64,
}

async fn statement(
    state: &AppState,
    agent: &SignedInAgent,
    month: &str,
) -> Result<Statement, PortalError> {
    check_month(month).map_err(|_| PortalError::NotFound)?;
    let lines = agent.scope.statement(&state.db, month).await?;
    let paid = agent
        .scope
        .months(&state.db)
        .await?
        .into_iter()
        .find(|m| m.month == month)
        .and_then(|m| m.paid);
    let view = state.live.view();
    let lines: Vec<StatementLineView> = lines
        .into_iter()
        .map(|line| StatementLineView {
            tenant: view
                .tenants
                .get(&line.tenant_id)
                .map(|t| t.name.clone())
                .unwrap_or_else(|| "(unknown)".into()),
            usage: line.usage,
            calls: line.calls,
            commission: line.commission,
        })
        .collect();
    Ok(Statement {
        month: month.to_string(),
        usage: lines.iter().map(|l| l.usage).sum(),
        commission: lines.iter().map(|l| l.commission).sum(),
        lines,
        paid_amount: paid.as_ref().map(|p| p.amount),
        paid_at: paid.as_ref().map(|p| p.paid_at.clone()),
        paid_reference: paid.map(|p| p.reference),
    })
}

#[derive(Template)]
#[template(path = "agent/statement.html")]
struct StatementPage {
    chrome: Chrome,
    s: Statement,
    agent_name: String,
    rate: String,
    currency: String,
}

impl StatementPage {
    fn money(&self, micros: &i64) -> String {
        money(*micros)
    }
}

pub async fn statement_page(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
    Path(month): Path<String>,
) -> Result<Response, PortalError> {
    let s = statement(&state, &agent, &month).await?;
    let page = StatementPage {
        chrome: agent.chrome("commission"),
        s,
        agent_name: agent.name.clone(),
        rate: percent_bps(agent.commission_bps),
        currency: state.settings.currency.clone(),
    };
    Ok(render(&page)?.into_response())
}

pub async fn statement_csv(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
    Path(month): Path<String>,
) -> Result<Response, PortalError> {
    let month = month.trim_end_matches(".csv").to_string();
    let s = statement(&state, &agent, &month).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let header_row = [
        "month",
        "tenant",
        "calls",
        "spend",
        "commission",
        "spend_micros",
        "commission_micros",
    ];
    out.write_record(header_row)
        .map_err(PortalError::internal)?;
    for line in &s.lines {
        out.write_record([
            s.month.clone(),
            csv_cell(&line.tenant),
            line.calls.to_string(),
            Money(line.usage).to_string(),
            Money(line.commission).to_string(),
            line.usage.to_string(),
            line.commission.to_string(),
        ])
        .map_err(PortalError::internal)?;
    }
    let body = out.into_inner().map_err(PortalError::internal)?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"commission-{}.csv\"",
        s.month
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

// ---- JSON ----

#[utoipa::path(get, path = "/api/agent/dashboard", tag = "agent",
    responses((status = 200, body = Dashboard, description = "Referral link and commission at a glance")))]
pub async fn api_dashboard(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
    caller: Caller,
) -> Result<Json<Dashboard>, PortalError> {
    Ok(Json(dashboard(&state, &agent, &caller).await?.0))
}

#[utoipa::path(get, path = "/api/agent/tenants", tag = "agent",
    responses((status = 200, body = Vec<TenantView>, description = "Referred tenants, newest first")))]
pub async fn api_tenants(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
) -> Result<Json<Vec<TenantView>>, PortalError> {
    let tenants = agent.scope.tenants(&state.db, &this_month()).await?;
    let view = state.live.view();
    Ok(Json(
        tenants.iter().map(|t| tenant_view(&view, t)).collect(),
    ))
}

#[utoipa::path(get, path = "/api/agent/commission", tag = "agent",
    responses((status = 200, body = Vec<MonthView>, description = "Commission by month, newest first")))]
pub async fn api_commission(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
) -> Result<Json<Vec<MonthView>>, PortalError> {
    let months = agent.scope.months(&state.db).await?;
    Ok(Json(months.into_iter().map(MonthView::from).collect()))
}

#[utoipa::path(get, path = "/api/agent/commission/{month}", tag = "agent",
    params(("month" = String, Path, description = "YYYY-MM (UTC)")),
    responses((status = 200, body = Statement), (status = 404, description = "Not a month")))]
pub async fn api_statement(
    State(state): State<Arc<AppState>>,
    agent: SignedInAgent,
    Path(month): Path<String>,
) -> Result<Json<Statement>, PortalError> {
    Ok(Json(statement(&state, &agent, &month).await?))
}

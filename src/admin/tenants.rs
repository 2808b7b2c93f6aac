//! Tenants in the console: the searchable list and one tenant's page (facts, balance, keys,
//! usage), as pages and JSON. The actions on a tenant live in `tenant_actions.rs`.
//!
//! Reads come from the live view (tenants, keys, agents) and the SQL read models (balances,
//! usage); the list is filtered in memory, since the live view already holds every tenant.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use modelrouter_domain::aggregate_types::TENANT;
use modelrouter_domain::tenant::TenantStatus;
use modelrouter_projections::live::{LiveView, TenantEntry};
use modelrouter_projections::sql::balances::{self, BalanceRow};
use modelrouter_projections::sql::usage::UsageRow;
use modelrouter_projections::sql::usage_report::{self, ModelTotals, UsageFilter};
use modelrouter_projections::sql::{self, Projection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::session::SignedInOperator;
use super::tenant_actions;
use crate::gateway::AppState;
use crate::portal::error::urlencode;
use crate::portal::format;
use crate::portal::{render, Chrome, PortalError};

/// Tenants per page of the list.
const PER_PAGE: usize = 50;
/// Calls shown on a tenant's page.
const RECENT_CALLS: i64 = 20;

pub fn pages() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/tenants", get(list_page))
        .route("/admin/tenants/{id}", get(tenant_page))
        .merge(tenant_actions::pages())
}

pub fn api() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/tenants", get(api_list))
        .route("/api/admin/tenants/{id}", get(api_tenant))
        .merge(tenant_actions::api())
}

#[derive(OpenApi)]
#[openapi(
    paths(
        api_list,
        api_tenant,
        tenant_actions::api_suspend,
        tenant_actions::api_reactivate,
        tenant_actions::api_adjust,
        tenant_actions::api_reset_password,
        tenant_actions::api_set_plan,
    ),
    components(schemas(
        TenantSummary,
        TenantList,
        TenantDetail,
        BalanceView,
        KeySummary,
        tenant_actions::Suspension,
        tenant_actions::Adjustment,
        tenant_actions::Plan,
        tenant_actions::OneTimePassword,
    )),
    tags((name = "admin-tenants", description = "Operations console: tenants, their balance, keys and usage; suspension, adjustments, password resets and plans")),
)]
pub struct Api;

// ---- reads shared by pages and JSON ----

/// The list's filters, from the query string.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
pub struct TenantQuery {
    /// Part of the email or name, or the tenant id.
    #[serde(default)]
    q: String,
    /// `active` or `suspended`.
    #[serde(default)]
    status: String,
    #[serde(default)]
    plan: String,
    /// The referring agent's id, or `none` for tenants no agent referred.
    #[serde(default)]
    agent: String,
    /// From 1.
    page: Option<usize>,
}

impl TenantQuery {
    fn matches(&self, id: &str, tenant: &TenantEntry) -> bool {
        let q = self.q.trim().to_lowercase();
        let text = q.is_empty()
            || id == q
            || tenant.email.contains(&q)
            || tenant.name.to_lowercase().contains(&q);
        let status = match self.status.as_str() {
            "active" => tenant.status == TenantStatus::Active,
            "suspended" => tenant.status == TenantStatus::Suspended,
            _ => true,
        };
        let plan = self.plan.is_empty() || tenant.plan == self.plan;
        let agent = match self.agent.as_str() {
            "" => true,
            "none" => tenant.agent_id.is_none(),
            agent => tenant.agent_id.as_deref() == Some(agent),
        };
        text && status && plan && agent
    }

    /// The filters as a query string, for the pager's links.
    fn as_query(&self) -> String {
        [
            ("q", &self.q),
            ("status", &self.status),
            ("plan", &self.plan),
            ("agent", &self.agent),
        ]
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", urlencode(value)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// A tenant as lists show it; amounts in micro-units.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantSummary {
    id: String,
    email: String,
    name: String,
    /// `active` or `suspended`.
    status: &'static str,
    plan: String,
    agent_id: Option<String>,
    agent_email: Option<String>,
    registered_at: DateTime<Utc>,
    balance: i64,
}

fn status_name(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
    }
}

fn summary(view: &LiveView, id: &str, tenant: &TenantEntry, balance: i64) -> TenantSummary {
    TenantSummary {
        id: id.to_string(),
        email: tenant.email.clone(),
        name: tenant.name.clone(),
        status: status_name(tenant.status),
        plan: tenant.plan.clone(),
        agent_id: tenant.agent_id.clone(),
        agent_email: tenant
            .agent_id
            .as_ref()
            .and_then(|agent| view.agents.get(agent))
            .map(|agent| agent.email.clone()),
        registered_at: tenant.registered_at,
        balance,
    }
}

/// One page of the list, and how many tenants match.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    tenants: Vec<TenantSummary>,
    total: usize,
    page: usize,
    per_page: usize,
}

async fn search(state: &AppState, query: &TenantQuery) -> Result<TenantList, PortalError> {
    sql::catch_up(&state.db, Projection::Balances, 1000).await?;
    let balances: HashMap<String, i64> = balances::all(&state.db, None)
        .await?
        .into_iter()
        .map(|row| (row.tenant_id, row.balance))
        .collect();
    let view = state.live.view();
    let mut matching: Vec<(&String, &TenantEntry)> = view
        .tenants
        .iter()
        .filter(|(id, tenant)| query.matches(id, tenant))
        .collect();
    // Newest first; the id breaks ties so pages never overlap.
    matching.sort_by(|a, b| b.1.registered_at.cmp(&a.1.registered_at).then(a.0.cmp(b.0)));
    let page = query.page.unwrap_or(1).max(1);
    let tenants = matching
        .iter()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .map(|(id, tenant)| {
            let balance = balances.get(*id).copied().unwrap_or(0);
            summary(&view, id, tenant, balance)
        })
        .collect();
    Ok(TenantList {
        tenants,
        total: matching.len(),
        page,
        per_page: PER_PAGE,
    })
}

/// The balance as the balances read model has it, and what is available to spend or take.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct BalanceView {
    balance: i64,
    credited: i64,
    adjusted: i64,
    refunded: i64,
    /// Settled usage.
    charged: i64,
    /// Allowance gateway replicas hold for calls in flight.
    outstanding: i64,
    /// Balance less outstanding: what a debit or refund may take.
    available: i64,
    calls: i64,
}

impl BalanceView {
    fn of(row: Option<BalanceRow>) -> BalanceView {
        row.map(|row| BalanceView {
            balance: row.balance,
            credited: row.credited,
            adjusted: row.adjusted,
            refunded: row.refunded,
            charged: row.settled,
            outstanding: row.outstanding,
            available: row.balance - row.outstanding,
            calls: row.calls,
        })
        .unwrap_or_default()
    }
}

/// A key as the console shows it: never its hash or plaintext.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeySummary {
    id: String,
    name: String,
    prefix: String,
    /// `all models`, or the models it is limited to.
    scope: String,
    /// `active`, `expired` or `revoked`.
    status: &'static str,
    created_at: DateTime<Utc>,
    last_used_at: Option<String>,
    requests: i64,
}

/// Everything the console knows about one tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDetail {
    tenant: TenantSummary,
    balance: BalanceView,
    keys: Vec<KeySummary>,
    /// Totals per model over all time, highest cost first.
    #[schema(value_type = Vec<Object>)]
    usage: Vec<ModelTotals>,
    /// The newest calls.
    #[schema(value_type = Vec<Object>)]
    recent_calls: Vec<UsageRow>,
}

/// The tenant's id if it exists (reading the log once more for one registered a moment ago).
pub(super) async fn known_tenant(state: &AppState, id: &str) -> Result<TenantEntry, PortalError> {
    if let Some(tenant) = state.live.view().tenants.get(id) {
        return Ok(tenant.clone());
    }
    state.live.include(&state.db, TENANT, id).await?;
    state
        .live
        .view()
        .tenants
        .get(id)
        .cloned()
        .ok_or(PortalError::NotFound)
}

async fn detail(state: &AppState, id: &str) -> Result<TenantDetail, PortalError> {
    let tenant = known_tenant(state, id).await?;
    sql::catch_up(&state.db, Projection::Balances, 1000).await?;
    let balance = BalanceView::of(balances::balance_of(&state.db, id).await?);
    let filter = UsageFilter {
        tenant_id: id,
        from: None,
        until: None,
        key_id: None,
        model: None,
    };
    let usage = usage_report::totals_by_model(&state.db, &filter).await?;
    let recent_calls = usage_report::page(&state.db, &filter, RECENT_CALLS, 0).await?;
    let totals: HashMap<String, usage_report::KeyTotals> = usage_report::by_key(&state.db, id)
        .await?
        .into_iter()
        .map(|totals| (totals.key_id.clone(), totals))
        .collect();
    let view = state.live.view();
    let now = Utc::now();
    let mut keys: Vec<KeySummary> = view
        .keys_of(id)
        .into_iter()
        .map(|key| {
            let used = totals.get(&key.key_id);
            KeySummary {
                id: key.key_id.clone(),
                name: key.name.clone(),
                prefix: key.prefix.clone(),
                scope: scope_text(&key.scope),
                status: if key.revoked {
                    "revoked"
                } else if key.usable_at(now) {
                    "active"
                } else {
                    "expired"
                },
                created_at: key.created_at,
                last_used_at: used.and_then(|t| t.last_used.clone()),
                requests: used.map_or(0, |t| t.requests),
            }
        })
        .collect();
    keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(TenantDetail {
        tenant: summary(&view, id, &tenant, balance.balance),
        balance,
        keys,
        usage,
        recent_calls,
    })
}

fn scope_text(scope: &modelrouter_domain::api_key::KeyScope) -> String {
    use modelrouter_domain::api_key::KeyScope;
    match scope {
        KeyScope::Auto => "all models".into(),
        KeyScope::Models(models) => models.join(", "),
        KeyScope::Fixed(model) => format!("only {model}"),
    }
}

// ---- pages ----

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

struct Row {
    id: String,
    email: String,
    name: String,
    plan: String,
    agent: String,
    status: &'static str,
    balance: String,
    registered: String,
}

#[derive(Template)]
#[template(path = "admin/tenants.html")]
struct ListPage {
    chrome: Chrome,
    currency: String,
    q: String,
    statuses: Vec<Choice>,
    plans: Vec<Choice>,
    agents: Vec<Choice>,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    filters: String,
}

fn choices(options: Vec<(String, String)>, chosen: &str) -> Vec<Choice> {
    options
        .into_iter()
        .map(|(value, label)| Choice {
            selected: value == chosen,
            value,
            label,
        })
        .collect()
}

pub async fn list_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Query(query): Query<TenantQuery>,
) -> Result<Response, PortalError> {
    let list = search(&state, &query).await?;
    let view = state.live.view();
    let plans: BTreeSet<String> = view.tenants.values().map(|t| t.plan.clone()).collect();
    let mut agents: Vec<(String, String)> = view
        .agents
        .iter()
        .map(|(id, agent)| (id.clone(), agent.email.clone()))
        .collect();
    agents.sort_by(|a, b| a.1.cmp(&b.1));
    agents.insert(0, ("none".into(), "No agent".into()));
    let statuses = vec![
        ("active".to_string(), "Active".to_string()),
        ("suspended".to_string(), "Suspended".to_string()),
    ];
    let page = ListPage {
        chrome: operator.chrome("tenants"),
        currency: state.settings.currency.clone(),
        q: query.q.clone(),
        statuses: choices(statuses, &query.status),
        plans: choices(
            plans.into_iter().map(|p| (p.clone(), p)).collect(),
            &query.plan,
        ),
        agents: choices(agents, &query.agent),
        rows: list
            .tenants
            .iter()
            .map(|t| Row {
                id: t.id.clone(),
                email: t.email.clone(),
                name: t.name.clone(),
                plan: t.plan.clone(),
                agent: t.agent_email.clone().unwrap_or_default(),
                status: t.status,
                balance: format::money(t.balance),
                registered: t.registered_at.format("%Y-%m-%d").to_string(),
            })
            .collect(),
        total: list.total,
        page: list.page,
        pages: list.total.div_ceil(PER_PAGE).max(1),
        filters: query.as_query(),
    };
    Ok(render(&page)?.into_response())
}

pub(super) struct KeyLine {
    name: String,
    prefix: String,
    scope: String,
    status: &'static str,
    last_used: String,
    requests: String,
}

pub(super) struct ModelLine {
    model: String,
    requests: String,
    errors: String,
    cost: String,
}

pub(super) struct CallLine {
    time: String,
    model: String,
    status: i64,
    ok: bool,
    cost: String,
}

/// What the operator typed into one of the tenant's forms, shown again with its error.
#[derive(Default)]
pub(super) struct Entered {
    pub suspend_reason: String,
    pub adjust_amount: String,
    pub adjust_reason: String,
    pub plan: String,
}

#[derive(Template)]
#[template(path = "admin/tenant.html")]
pub(super) struct TenantPage {
    chrome: Chrome,
    currency: String,
    id: String,
    email: String,
    name: String,
    plan: String,
    agent: String,
    registered: String,
    suspended: bool,
    balance: String,
    available: String,
    credited: String,
    adjusted: String,
    refunded: String,
    charged: String,
    outstanding: String,
    keys: Vec<KeyLine>,
    usage: Vec<ModelLine>,
    calls: Vec<CallLine>,
    pub notice: Option<String>,
    /// The form an error belongs to (`suspend`, `adjust`, `plan`, `password`) and its message.
    pub error: Option<(&'static str, String)>,
    pub entered: Entered,
}

impl TenantPage {
    /// The error message of one of the page's forms, if it has one.
    fn error_for(&self, form: &str) -> Option<&str> {
        match &self.error {
            Some((which, message)) if *which == form => Some(message),
            _ => None,
        }
    }
}

/// The tenant's page, without notice or error.
pub(super) async fn tenant_view(
    state: &AppState,
    operator: &SignedInOperator,
    id: &str,
) -> Result<TenantPage, PortalError> {
    let detail = detail(state, id).await?;
    let money = |m: i64| format::money(m);
    let tenant = &detail.tenant;
    Ok(TenantPage {
        chrome: operator.chrome("tenants"),
        currency: state.settings.currency.clone(),
        id: tenant.id.clone(),
        email: tenant.email.clone(),
        name: tenant.name.clone(),
        plan: tenant.plan.clone(),
        agent: tenant
            .agent_email
            .clone()
            .or_else(|| tenant.agent_id.clone())
            .unwrap_or_else(|| "—".into()),
        registered: tenant
            .registered_at
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        suspended: tenant.status == "suspended",
        balance: money(detail.balance.balance),
        available: money(detail.balance.available),
        credited: money(detail.balance.credited),
        adjusted: money(detail.balance.adjusted),
        refunded: money(detail.balance.refunded),
        charged: money(detail.balance.charged),
        outstanding: money(detail.balance.outstanding),
        keys: detail
            .keys
            .iter()
            .map(|k| KeyLine {
                name: k.name.clone(),
                prefix: k.prefix.clone(),
                scope: k.scope.clone(),
                status: k.status,
                last_used: k
                    .last_used_at
                    .as_deref()
                    .map(format::time)
                    .unwrap_or_else(|| "never".into()),
                requests: format::count(k.requests),
            })
            .collect(),
        usage: detail
            .usage
            .iter()
            .map(|u| ModelLine {
                model: u.model.clone(),
                requests: format::count(u.requests),
                errors: format::count(u.errors),
                cost: money(u.cost),
            })
            .collect(),
        calls: detail
            .recent_calls
            .iter()
            .map(|c| CallLine {
                time: format::time(&c.started_at),
                model: c.model.clone(),
                status: c.status,
                ok: (200..300).contains(&c.status),
                cost: money(c.cost),
            })
            .collect(),
        notice: None,
        error: None,
        entered: Entered {
            plan: tenant.plan.clone(),
            ..Entered::default()
        },
    })
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn tenant_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let mut page = tenant_view(&state, &operator, &id).await?;
    page.notice = query
        .notice
        .as_deref()
        .and_then(notice_text)
        .map(String::from);
    Ok(render(&page)?.into_response())
}

/// The notices the actions redirect with; anything else shows nothing.
fn notice_text(notice: &str) -> Option<&'static str> {
    Some(match notice {
        "suspended" => "The tenant is suspended: its API keys are refused and its sessions ended.",
        "reactivated" => "The tenant is active again.",
        "adjusted" => "The balance was adjusted.",
        "plan" => "The plan was changed.",
        _ => return None,
    })
}

// ---- JSON ----

#[utoipa::path(get, path = "/api/admin/tenants", tag = "admin-tenants", params(TenantQuery),
    responses((status = 200, body = TenantList, description = "Matching tenants, newest first")))]
pub async fn api_list(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Query(query): Query<TenantQuery>,
) -> Result<Json<TenantList>, PortalError> {
    Ok(Json(search(&state, &query).await?))
}

#[utoipa::path(get, path = "/api/admin/tenants/{id}", tag = "admin-tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantDetail), (status = 404, description = "No such tenant")))]
pub async fn api_tenant(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Path(id): Path<String>,
) -> Result<Json<TenantDetail>, PortalError> {
    Ok(Json(detail(&state, &id).await?))
}

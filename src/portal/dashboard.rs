//! The dashboard: balance, this month's spend and requests, a 30-day spend chart, recent calls.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use modelrouter_projections::sql::usage::UsageRow;
use modelrouter_projections::sql::usage_report::{self, DayTotals};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::format::{self, Bar};
use super::{render, Chrome, PortalError, SignedIn};
use crate::gateway::AppState;

const CHART_DAYS: i64 = 30;

/// What the dashboard shows, in micro-units and counts.
#[derive(Serialize, ToSchema)]
pub struct Dashboard {
    /// Micro-units of the platform currency.
    balance: i64,
    currency: String,
    /// Spend since the first of this month (UTC), micro-units.
    month_spend: i64,
    month_requests: i64,
    active_keys: usize,
    available_models: usize,
    /// The last 30 days, oldest first, every day present.
    #[schema(value_type = Vec<Object>)]
    daily: Vec<DayTotals>,
}

fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

async fn dashboard(state: &AppState, signed_in: &SignedIn) -> Result<Dashboard, PortalError> {
    let scope = &signed_in.scope;
    let now = Utc::now();
    let month = usage_report::totals_by_model(
        &state.db,
        &scope.usage(Some(month_start(now)), None, None, None),
    )
    .await?;
    let today = now.date_naive();
    let first_day = today - Duration::days(CHART_DAYS - 1);
    let since = Utc.from_utc_datetime(&first_day.and_hms_opt(0, 0, 0).unwrap_or_default());
    let days = usage_report::daily(&state.db, &scope.usage(Some(since), None, None, None)).await?;
    let view = state.live.view();
    Ok(Dashboard {
        balance: scope.balance(&state.db).await?.0,
        currency: state.settings.currency.clone(),
        month_spend: month.iter().map(|m| m.cost).sum(),
        month_requests: month.iter().map(|m| m.requests).sum(),
        active_keys: scope
            .keys(&view)
            .iter()
            .filter(|k| k.usable_at(now))
            .count(),
        available_models: view.models_for(scope.tenant_id()).count(),
        daily: every_day(first_day, today, days),
    })
}

/// Fills the days without calls with zeros, so the chart has one bar per day.
fn every_day(first: NaiveDate, last: NaiveDate, days: Vec<DayTotals>) -> Vec<DayTotals> {
    let mut out = Vec::new();
    let mut given = days.into_iter().peekable();
    let mut day = first;
    while day <= last {
        let label = day.format("%Y-%m-%d").to_string();
        match given.peek() {
            Some(d) if d.day == label => out.extend(given.next()),
            _ => out.push(DayTotals {
                day: label,
                requests: 0,
                cost: 0,
            }),
        }
        day += Duration::days(1);
    }
    out
}

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    name: String,
    notice: Option<&'static str>,
    /// The reminder to verify the email, while it waits.
    verification: Option<super::verification::PendingVerification>,
    balance: String,
    currency: String,
    low_balance: bool,
    month_spend: String,
    month_requests: String,
    active_keys: usize,
    available_models: usize,
    chart: String,
    recent: Vec<RecentCall>,
}

struct RecentCall {
    time: String,
    model: String,
    tokens: String,
    cost: String,
    status: i64,
}

impl RecentCall {
    fn from_row(row: &UsageRow) -> RecentCall {
        let total = row.input_tokens.unwrap_or(0) + row.output_tokens.unwrap_or(0);
        RecentCall {
            time: format::time(&row.started_at),
            model: row.model.clone(),
            tokens: format::count(total),
            cost: format::money_column(row.cost),
            status: row.status,
        }
    }
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let data = dashboard(&state, &signed_in).await?;
    let recent = usage_report::page(
        &state.db,
        &signed_in.scope.usage(None, None, None, None),
        5,
        0,
    )
    .await?;
    let bars: Vec<Bar> = data
        .daily
        .iter()
        .map(|d| Bar {
            day: d.day.clone(),
            cost: d.cost,
            requests: d.requests,
        })
        .collect();
    let page = DashboardPage {
        chrome: Chrome::new(&signed_in, "dashboard"),
        name: signed_in.name.clone(),
        notice: match query.notice.as_deref() {
            Some("welcome") => Some("Welcome! Create an API key to make your first call."),
            Some("verification_sent") => Some("We sent you a new verification link."),
            _ => None,
        },
        verification: super::verification::pending(&state, &signed_in).await?,
        balance: format::money(data.balance),
        low_balance: data.balance <= 0,
        currency: data.currency.clone(),
        month_spend: format::money(data.month_spend),
        month_requests: format::count(data.month_requests),
        active_keys: data.active_keys,
        available_models: data.available_models,
        chart: format::spend_chart(&bars, &data.currency),
        recent: recent.iter().map(RecentCall::from_row).collect(),
    };
    Ok(render(&page)?.into_response())
}

#[utoipa::path(get, path = "/api/portal/dashboard", tag = "dashboard",
    responses((status = 200, body = Dashboard), (status = 401, description = "Not signed in")))]
pub async fn api(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
) -> Result<Json<Dashboard>, PortalError> {
    Ok(Json(dashboard(&state, &signed_in).await?))
}

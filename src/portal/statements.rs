//! Statements: per day or per month, what was credited (top-ups, codes, trial credit), adjusted
//! and charged (the calls made that period, at their charged prices), and the balance at the
//! end of each period — as a page, CSV and JSON.
//!
//! Credits and adjustments come from the tenant's Account events, by the day they were recorded;
//! charges from the usage read model, by the day each call started. A call's charge reaches the
//! Account balance when the replica settles it (within seconds), so the newest period's closing
//! balance may lead the dashboard's balance by those seconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use modelrouter_domain::account::AccountEvent;
use modelrouter_domain::aggregate_types::ACCOUNT;
use modelrouter_projections::sql::usage_report;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::format;
use super::{render, Chrome, PortalError, SignedIn};
use crate::gateway::AppState;

/// One period of a statement; amounts in micro-units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatementRow {
    /// `YYYY-MM-DD` or `YYYY-MM` (UTC).
    pub period: String,
    pub credits: i64,
    pub adjustments: i64,
    /// Refunds of top-ups, given back to the tenant (a positive amount that lowers the balance).
    pub refunds: i64,
    pub charges: i64,
    pub requests: i64,
    /// Credits and adjustments less refunds and charges, from the first period to the end of
    /// this one.
    pub closing_balance: i64,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct StatementQuery {
    /// `daily` or `monthly` (default).
    period: Option<String>,
}

impl StatementQuery {
    /// How many leading characters of a `YYYY-MM-DD…` time name its period.
    fn key_len(&self) -> Result<usize, PortalError> {
        match self.period.as_deref().unwrap_or("monthly") {
            "monthly" => Ok(7),
            "daily" => Ok(10),
            _ => Err(PortalError::invalid(
                "period",
                "Choose a daily or monthly statement.",
            )),
        }
    }
}

/// The tenant's statement, newest period first.
async fn statement(
    state: &AppState,
    signed_in: &SignedIn,
    key_len: usize,
) -> Result<Vec<StatementRow>, PortalError> {
    let scope = &signed_in.scope;
    let mut rows: BTreeMap<String, StatementRow> = BTreeMap::new();
    fn entry<'a>(
        rows: &'a mut BTreeMap<String, StatementRow>,
        key_len: usize,
        time: &str,
    ) -> &'a mut StatementRow {
        let period = time.get(..key_len).unwrap_or(time).to_string();
        rows.entry(period.clone()).or_insert_with(|| StatementRow {
            period,
            ..StatementRow::default()
        })
    }
    for event in state.db.events_of(ACCOUNT, scope.tenant_id()).await? {
        match serde_json::from_value::<AccountEvent>(event.payload.clone()) {
            Ok(AccountEvent::Credited { amount, .. }) => {
                entry(&mut rows, key_len, &event.recorded_at).credits += amount.0
            }
            Ok(AccountEvent::Adjusted { amount, .. }) => {
                entry(&mut rows, key_len, &event.recorded_at).adjustments += amount.0
            }
            Ok(AccountEvent::Refunded { amount, .. }) => {
                entry(&mut rows, key_len, &event.recorded_at).refunds += amount.0
            }
            Ok(_) => {}
            Err(error) => return Err(PortalError::internal(error)),
        }
    }
    let days = usage_report::daily(&state.db, &scope.usage(None, None, None, None)).await?;
    for day in days {
        let row = entry(&mut rows, key_len, &day.day);
        row.charges += day.cost;
        row.requests += day.requests;
    }
    let mut balance = 0;
    let mut out: Vec<StatementRow> = rows
        .into_values()
        .map(|mut row| {
            balance += row.credits + row.adjustments - row.refunds - row.charges;
            row.closing_balance = balance;
            row
        })
        .collect();
    out.reverse();
    Ok(out)
}

struct Line {
    period: String,
    credits: String,
    adjustments: String,
    refunds: String,
    charges: String,
    requests: String,
    closing: String,
}

#[derive(Template)]
#[template(path = "portal/statements.html")]
struct StatementsPage {
    chrome: Chrome,
    currency: String,
    monthly: bool,
    period: &'static str,
    lines: Vec<Line>,
    total: Line,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<StatementQuery>,
) -> Result<Response, PortalError> {
    let key_len = query.key_len()?;
    let rows = statement(&state, &signed_in, key_len).await?;
    let line = |period: String,
                [credits, adjustments, refunds, charges]: [i64; 4],
                requests: i64,
                closing: i64| Line {
        period,
        credits: format::money_column(credits),
        adjustments: format::money_column(adjustments),
        refunds: format::money_column(refunds),
        charges: format::money_column(charges),
        requests: format::count(requests),
        closing: format::money_column(closing),
    };
    let sum = |f: fn(&StatementRow) -> i64| rows.iter().map(f).sum::<i64>();
    let total = line(
        "Total".into(),
        [
            sum(|r| r.credits),
            sum(|r| r.adjustments),
            sum(|r| r.refunds),
            sum(|r| r.charges),
        ],
        sum(|r| r.requests),
        rows.first().map_or(0, |r| r.closing_balance),
    );
    let page = StatementsPage {
        chrome: Chrome::new(&signed_in, "usage"),
        currency: state.settings.currency.clone(),
        monthly: key_len == 7,
        period: if key_len == 7 { "monthly" } else { "daily" },
        lines: rows
            .iter()
            .map(|r| {
                line(
                    r.period.clone(),
                    [r.credits, r.adjustments, r.refunds, r.charges],
                    r.requests,
                    r.closing_balance,
                )
            })
            .collect(),
        total,
    };
    Ok(render(&page)?.into_response())
}

pub async fn csv(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<StatementQuery>,
) -> Result<Response, PortalError> {
    let key_len = query.key_len()?;
    let rows = statement(&state, &signed_in, key_len).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let header_row = [
        "period",
        "credits",
        "adjustments",
        "charges",
        "requests",
        "closing_balance",
        "credits_micros",
        "adjustments_micros",
        "charges_micros",
        "closing_balance_micros",
        "refunds",
        "refunds_micros",
    ];
    out.write_record(header_row)
        .map_err(PortalError::internal)?;
    for r in &rows {
        let money = |m: i64| modelrouter_domain::Money(m).to_string();
        out.write_record([
            r.period.clone(),
            money(r.credits),
            money(r.adjustments),
            money(r.charges),
            r.requests.to_string(),
            money(r.closing_balance),
            r.credits.to_string(),
            r.adjustments.to_string(),
            r.charges.to_string(),
            r.closing_balance.to_string(),
            money(r.refunds),
            r.refunds.to_string(),
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
    let name = if key_len == 7 { "monthly" } else { "daily" };
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"statement-{name}.csv\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/portal/statements", tag = "usage", params(StatementQuery),
    responses((status = 200, body = Vec<StatementRow>, description = "Newest period first; CSV at /portal/statements.csv")))]
pub async fn api(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<StatementQuery>,
) -> Result<Json<Vec<StatementRow>>, PortalError> {
    let key_len = query.key_len()?;
    Ok(Json(statement(&state, &signed_in, key_len).await?))
}

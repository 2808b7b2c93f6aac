//! Usage: the tenant's calls with time, key, model, tokens, cost, latency and status; filters by
//! date range, key and model; totals by model; and a CSV export of exactly the filtered view.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::StreamExt as _;
use modelrouter_projections::sql::usage::UsageRow;
use modelrouter_projections::sql::usage_report::{self, ModelTotals, UsageFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::urlencode;
use super::format;
use super::{render, Chrome, PortalError, SignedIn, TenantScope};
use crate::gateway::AppState;

const PAGE_SIZE: i64 = 50;
const EXPORT_BATCH: i64 = 5_000;

/// A date range as `[from, until)`; either end may be open.
type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The filters of the usage page, its API and its export: all optional.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// First day, `YYYY-MM-DD` (UTC), inclusive.
    from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive.
    to: Option<String>,
    /// A key id.
    key: Option<String>,
    /// A model name.
    model: Option<String>,
    /// Page of the page view, from 1.
    page: Option<i64>,
    /// API: rows per response (at most 1000, default 50).
    limit: Option<i64>,
    /// API: rows to skip.
    offset: Option<i64>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn day(value: Option<&str>, field: &'static str) -> Result<Option<NaiveDate>, PortalError> {
    value
        .map(|text| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| PortalError::invalid(field, "Enter dates as YYYY-MM-DD."))
        })
        .transpose()
}

impl UsageQuery {
    /// The date range as `[from, until)` instants.
    fn range(&self) -> Result<Range, PortalError> {
        let from = day(non_empty(&self.from), "from")?;
        let to = day(non_empty(&self.to), "to")?;
        if let (Some(from), Some(to)) = (from, to) {
            if to < from {
                return Err(PortalError::invalid(
                    "to",
                    "The end date is before the start date.",
                ));
            }
        }
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        Ok((
            from.and_then(midnight),
            to.and_then(|d| midnight(d + Duration::days(1))),
        ))
    }

    fn filter<'a>(&'a self, scope: &'a TenantScope, range: Range) -> UsageFilter<'a> {
        scope.usage(
            range.0,
            range.1,
            non_empty(&self.key),
            non_empty(&self.model),
        )
    }

    /// The query string of these filters, for links (export, paging).
    fn query_string(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("from", &self.from),
            ("to", &self.to),
            ("key", &self.key),
            ("model", &self.model),
        ] {
            if let Some(v) = non_empty(value) {
                parts.push(format!("{name}={}", urlencode(v)));
            }
        }
        parts.join("&")
    }
}

/// A call's key as the tenant knows it: name and prefix, by key id.
fn key_names(scope: &TenantScope, state: &AppState) -> HashMap<String, (String, String)> {
    scope
        .keys(&state.live.view())
        .into_iter()
        .map(|k| (k.key_id.clone(), (k.name.clone(), k.prefix.clone())))
        .collect()
}

// ---- page ----

struct CallRow {
    time: String,
    key: String,
    model: String,
    input: String,
    cached: String,
    output: String,
    cost: String,
    estimated: bool,
    latency: String,
    status: i64,
    ok: bool,
    request_id: String,
}

struct TotalRow {
    model: String,
    requests: String,
    errors: String,
    input: String,
    output: String,
    cached: String,
    cost: String,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "portal/usage.html")]
struct UsagePage {
    chrome: Chrome,
    currency: String,
    from: String,
    to: String,
    keys: Vec<Choice>,
    models: Vec<Choice>,
    calls: Vec<CallRow>,
    totals: Vec<TotalRow>,
    grand_total: TotalRow,
    matching: String,
    page: i64,
    pages: i64,
    filters: String,
    error: Option<String>,
}

fn call_row(row: &UsageRow, names: &HashMap<String, (String, String)>) -> CallRow {
    CallRow {
        time: format::time(&row.started_at),
        key: names
            .get(&row.key_id)
            .map(|(name, prefix)| format!("{name} ({prefix}…)"))
            .unwrap_or_else(|| "—".into()),
        model: row.model.clone(),
        input: format::tokens(row.input_tokens),
        cached: format::tokens(row.cached_tokens),
        output: format::tokens(row.output_tokens),
        cost: format::money_column(row.cost),
        estimated: row.estimated,
        latency: format!("{} ms", format::count(row.latency_ms)),
        status: row.status,
        ok: row.status < 400,
        request_id: row.request_id.clone(),
    }
}

fn total_row(model: String, totals: &[&ModelTotals]) -> TotalRow {
    let sum = |f: fn(&ModelTotals) -> i64| totals.iter().map(|t| f(t)).sum::<i64>();
    TotalRow {
        model,
        requests: format::count(sum(|t| t.requests)),
        errors: format::count(sum(|t| t.errors)),
        input: format::count(sum(|t| t.input_tokens)),
        output: format::count(sum(|t| t.output_tokens)),
        cached: format::count(sum(|t| t.cached_tokens)),
        cost: format::money_column(sum(|t| t.cost)),
    }
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<UsageQuery>,
) -> Result<Response, PortalError> {
    let scope = &signed_in.scope;
    let names = key_names(scope, &state);
    let mut keys: Vec<Choice> = scope
        .keys(&state.live.view())
        .into_iter()
        .map(|k| Choice {
            selected: non_empty(&query.key) == Some(k.key_id.as_str()),
            value: k.key_id.clone(),
            label: format!("{} ({}…)", k.name, k.prefix),
        })
        .collect();
    keys.sort_by(|a, b| a.label.cmp(&b.label));
    let models: Vec<Choice> = state
        .live
        .view()
        .models
        .keys()
        .map(|name| Choice {
            selected: non_empty(&query.model) == Some(name.as_str()),
            value: name.clone(),
            label: name.clone(),
        })
        .collect();
    let page_number = query.page.unwrap_or(1).max(1);
    let (calls, totals, matching, error) = match query.range() {
        Ok(range) => {
            let filter = query.filter(scope, range);
            let matching = usage_report::count(&state.db, &filter).await?;
            let rows =
                usage_report::page(&state.db, &filter, PAGE_SIZE, (page_number - 1) * PAGE_SIZE)
                    .await?;
            let totals = usage_report::totals_by_model(&state.db, &filter).await?;
            (rows, totals, matching, None)
        }
        Err(error) => (Vec::new(), Vec::new(), 0, Some(error.to_string())),
    };
    let page = UsagePage {
        chrome: Chrome::new(&signed_in, "usage"),
        currency: state.settings.currency.clone(),
        from: non_empty(&query.from).unwrap_or("").to_string(),
        to: non_empty(&query.to).unwrap_or("").to_string(),
        keys,
        models,
        calls: calls.iter().map(|r| call_row(r, &names)).collect(),
        grand_total: total_row("All models".into(), &totals.iter().collect::<Vec<_>>()),
        totals: totals
            .iter()
            .map(|t| total_row(t.model.clone(), &[t]))
            .collect(),
        matching: format::count(matching),
        page: page_number,
        pages: ((matching + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
        filters: query.query_string(),
        error,
    };
    Ok(render(&page)?.into_response())
}

// ---- CSV ----

const CSV_HEADER: [&str; 18] = [
    "time",
    "request_id",
    "key_name",
    "key_prefix",
    "model",
    "protocol",
    "stream",
    "status",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "estimated",
    "cost",
    "cost_micros",
    "latency_ms",
    "ttft_ms",
];

use super::format::csv_cell as cell;

fn csv_rows(rows: &[UsageRow], names: &HashMap<String, (String, String)>) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for row in rows {
        let (name, prefix) = names.get(&row.key_id).cloned().unwrap_or_default();
        let record = [
            row.started_at.clone(),
            row.request_id.clone(),
            cell(&name),
            prefix,
            cell(&row.model),
            row.inbound_protocol.clone(),
            row.stream.to_string(),
            row.status.to_string(),
            opt(row.input_tokens),
            opt(row.cached_tokens),
            opt(row.cache_write_tokens),
            opt(row.output_tokens),
            opt(row.reasoning_tokens),
            row.estimated.to_string(),
            modelrouter_domain::Money(row.cost).to_string(),
            row.cost.to_string(),
            row.latency_ms.to_string(),
            opt(row.ttft_ms),
        ];
        if let Err(error) = out.write_record(&record) {
            tracing::error!(%error, "csv row not written");
        }
    }
    out.into_inner().unwrap_or_default()
}

/// The filtered calls as CSV, newest first, streamed in batches so any range exports whole.
pub async fn export_csv(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<UsageQuery>,
) -> Result<Response, PortalError> {
    let (from, until) = query.range()?;
    // Rows that arrive while the export runs would shift the pages: freeze the end.
    let now = Utc::now();
    let until = Some(until.map_or(now, |u| u.min(now)));
    let names = key_names(&signed_in.scope, &state);
    let scope = signed_in.scope.clone();
    let mut header_row = csv::Writer::from_writer(Vec::new());
    header_row
        .write_record(CSV_HEADER)
        .map_err(PortalError::internal)?;
    let first = header_row.into_inner().unwrap_or_default();
    let batches = futures::stream::unfold(Some(0i64), move |offset| {
        let state = state.clone();
        let scope = scope.clone();
        let query = query.clone();
        let names = names.clone();
        async move {
            let offset = offset?;
            let filter = query.filter(&scope, (from, until));
            match usage_report::page(&state.db, &filter, EXPORT_BATCH, offset).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = (rows.len() as i64 == EXPORT_BATCH).then_some(offset + EXPORT_BATCH);
                    Some((Ok::<_, std::io::Error>(csv_rows(&rows, &names)), next))
                }
                Err(error) => Some((Err(std::io::Error::other(error)), None)),
            }
        }
    });
    let body = futures::stream::once(async move { Ok(first) }).chain(batches);
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let filename = format!("usage-{}.csv", now.format("%Y%m%d-%H%M%S"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

// ---- JSON ----

#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    /// How many calls match the filters.
    total: i64,
    /// The requested slice of them, newest first. Costs are micro-units.
    #[schema(value_type = Vec<Object>)]
    calls: Vec<UsageRow>,
    #[schema(value_type = Vec<Object>)]
    totals_by_model: Vec<ModelTotals>,
}

#[utoipa::path(get, path = "/api/portal/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageReport), (status = 422, description = "A date is malformed or the range is reversed")))]
pub async fn api(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(query): Query<UsageQuery>,
) -> Result<Json<UsageReport>, PortalError> {
    let range = query.range()?;
    let filter = query.filter(&signed_in.scope, range);
    let limit = query.limit.unwrap_or(PAGE_SIZE).clamp(1, 1000);
    let offset = query.offset.unwrap_or(0).max(0);
    Ok(Json(UsageReport {
        total: usage_report::count(&state.db, &filter).await?,
        calls: usage_report::page(&state.db, &filter, limit, offset).await?,
        totals_by_model: usage_report::totals_by_model(&state.db, &filter).await?,
    }))
}

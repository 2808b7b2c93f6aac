//! The audit trail: the event log itself, searchable by aggregate, actor, event type and time,
//! newest first, with each event's payload — secrets redacted — and who caused it.
//!
//! Nothing here is a separate audit table: every change in the system is an event with its actor
//! in the metadata, so the log is the trail. Metered calls (InferenceCall events) are the bulk
//! of the log and are left out unless asked for.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use modelrouter_domain::aggregate_types as types;
use modelrouter_projections::live::LiveView;
use modelrouter_projections::{EventFilter, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::session::SignedInOperator;
use crate::gateway::AppState;
use crate::portal::error::urlencode;
use crate::portal::{render, Chrome, PortalError};

pub fn pages() -> Router<Arc<AppState>> {
    Router::new().route("/admin/audit", get(page))
}

pub fn api() -> Router<Arc<AppState>> {
    Router::new().route("/api/admin/audit", get(api_search))
}

#[derive(OpenApi)]
#[openapi(
    paths(api_search),
    tags((name = "admin-audit", description = "The event log as an audit trail")),
)]
pub struct Api;

const PAGE_SIZE: i64 = 50;

/// The aggregate types an operator can pick.
const AGGREGATE_TYPES: [&str; 12] = [
    types::TENANT,
    types::API_KEY,
    types::ACCOUNT,
    types::PROVIDER,
    types::CATALOG_MODEL,
    types::ROUTE,
    types::OPERATOR,
    types::AGENT,
    types::RECHARGE_ORDER,
    types::PREPAID_CODE,
    types::INFERENCE_CALL,
    "",
];

/// Payload fields that hold secrets or their stand-ins. They are never shown, even to operators:
/// a password hash can be attacked offline, a sealed credential is one master key away from the
/// plaintext, and a key hash is what the gateway looks keys up by.
const SECRET_FIELDS: [&str; 9] = [
    "password_hash",
    "ciphertext",
    "hash",
    "credential",
    "api_key",
    "secret",
    "token",
    "code",
    "password",
];

pub const REDACTED: &str = "[redacted]";

/// Replaces every secret field of a payload, at any depth, with [`REDACTED`].
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, field) in map.iter_mut() {
                if SECRET_FIELDS.contains(&name.as_str()) && !field.is_null() {
                    *field = Value::String(REDACTED.into());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Aggregate type, e.g. `Tenant`, `Provider`, `Route`.
    #[serde(default)]
    aggregate_type: String,
    /// Aggregate id (a tenant id, a provider name, a public model name, …).
    #[serde(default)]
    aggregate_id: String,
    /// Event type, e.g. `Suspended`, `CredentialRotated`.
    #[serde(default)]
    event_type: String,
    /// Who: an email (of a tenant, operator or agent), or an actor as stored
    /// (`operator:<id>`, `tenant:<id>`, `agent:<id>`, `cli`, `system`).
    #[serde(default)]
    actor: String,
    /// First day, `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    from: String,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    until: String,
    /// Only events before this position (the next page).
    before: Option<i64>,
    /// Include metered calls (`true`/`on`).
    #[serde(default)]
    calls: String,
}

fn non_empty(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

fn day(text: &str, field: &'static str) -> Result<Option<NaiveDate>, PortalError> {
    non_empty(text)
        .map(|t| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map_err(|_| PortalError::invalid(field, "Give the day as YYYY-MM-DD."))
        })
        .transpose()
}

/// The stored actor an operator's "who" names: an email of a known login, or the actor text.
fn resolve_actor(view: &LiveView, who: &str) -> String {
    let who = who.trim();
    let email = who.to_lowercase();
    if let Some((id, _)) = view.operators.iter().find(|(_, o)| o.email == email) {
        return format!("operator:{id}");
    }
    if let Some((id, _)) = view.tenants.iter().find(|(_, t)| t.email == email) {
        return format!("tenant:{id}");
    }
    if let Some((id, _)) = view.agents.iter().find(|(_, a)| a.email == email) {
        return format!("agent:{id}");
    }
    who.to_string()
}

/// An actor as people read it: the login's email where the actor is a known person.
fn actor_label(view: &LiveView, actor: &str) -> String {
    let email = match actor.split_once(':') {
        Some(("operator", id)) => view.operators.get(id).map(|o| o.email.clone()),
        Some(("tenant", id)) => view.tenants.get(id).map(|t| t.email.clone()),
        Some(("agent", id)) => view.agents.get(id).map(|a| a.email.clone()),
        _ => None,
    };
    match email {
        Some(email) => format!("{} ({email})", actor.split(':').next().unwrap_or("")),
        None => actor.to_string(),
    }
}

/// One event of the trail.
#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    position: i64,
    recorded_at: String,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    /// As stored (`operator:<id>`, `tenant:<id>`, `cli`, `system`, …).
    actor: String,
    /// The actor with the login's email, when it is a person.
    actor_label: String,
    request_id: Option<String>,
    client_ip: Option<String>,
    /// The event's data, secrets replaced by `[redacted]`.
    #[schema(value_type = Object)]
    payload: Value,
}

fn audit_event(view: &LiveView, event: StoredEvent) -> AuditEvent {
    let text = |name: &str| {
        event
            .metadata
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let actor = text("actor").unwrap_or_default();
    let mut payload = event.payload;
    redact(&mut payload);
    AuditEvent {
        position: event.position,
        actor_label: actor_label(view, &actor),
        request_id: text("request_id"),
        client_ip: text("client_ip"),
        actor,
        recorded_at: event.recorded_at,
        aggregate_type: event.aggregate_type,
        aggregate_id: event.aggregate_id,
        sequence: event.sequence,
        event_type: event.event_type,
        payload,
    }
}

/// A page of the trail, and the position to ask for the next one from.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    events: Vec<AuditEvent>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next_before: Option<i64>,
}

async fn search(state: &AppState, query: &AuditQuery) -> Result<AuditPage, PortalError> {
    let from = day(&query.from, "from")?;
    let until = day(&query.until, "until")?;
    let actor = non_empty(&query.actor).map(|who| resolve_actor(&state.live.view(), who));
    let start =
        |d: NaiveDate| -> Option<DateTime<Utc>> { d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()) };
    let filter = EventFilter {
        aggregate_type: non_empty(&query.aggregate_type),
        aggregate_id: non_empty(&query.aggregate_id),
        event_type: non_empty(&query.event_type),
        actor: actor.as_deref(),
        from: from.and_then(start),
        until: until.and_then(|d| d.succ_opt()).and_then(start),
        before: query.before,
        include_calls: matches!(query.calls.as_str(), "true" | "on" | "1")
            || query.aggregate_type == types::INFERENCE_CALL,
    };
    let mut events = state.db.search_events(&filter, PAGE_SIZE + 1).await?;
    let more = events.len() as i64 > PAGE_SIZE;
    events.truncate(PAGE_SIZE as usize);
    let next_before = more.then(|| events.last().map(|e| e.position)).flatten();
    let view = state.live.view();
    Ok(AuditPage {
        events: events.into_iter().map(|e| audit_event(&view, e)).collect(),
        next_before,
    })
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct Page {
    chrome: Chrome,
    q: AuditQuery,
    types: [&'static str; 12],
    result: AuditPage,
    error: Option<String>,
    next_link: Option<String>,
}

impl Page {
    fn pretty(&self, payload: &Value) -> String {
        serde_json::to_string_pretty(payload).unwrap_or_default()
    }
    fn time(&self, at: &str) -> String {
        crate::portal::format::time(at)
    }
}

/// The link to the next page: the same filters, older events.
fn next_link(query: &AuditQuery, before: i64) -> String {
    let mut link = format!("/admin/audit?before={before}");
    for (name, value) in [
        ("aggregate_type", &query.aggregate_type),
        ("aggregate_id", &query.aggregate_id),
        ("event_type", &query.event_type),
        ("actor", &query.actor),
        ("from", &query.from),
        ("until", &query.until),
        ("calls", &query.calls),
    ] {
        if !value.is_empty() {
            link.push_str(&format!("&{name}={}", urlencode(value)));
        }
    }
    link
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PortalError> {
    let (result, error) = match search(&state, &query).await {
        Ok(result) => (result, None),
        Err(error @ PortalError::Invalid { .. }) => (
            AuditPage {
                events: Vec::new(),
                next_before: None,
            },
            Some(error.to_string()),
        ),
        Err(other) => return Err(other),
    };
    let page = Page {
        chrome: operator.chrome("audit"),
        next_link: result.next_before.map(|before| next_link(&query, before)),
        q: query,
        types: AGGREGATE_TYPES,
        result,
        error,
    };
    Ok(render(&page)?.into_response())
}

#[utoipa::path(get, path = "/api/admin/audit", tag = "admin-audit", params(AuditQuery),
    responses((status = 200, body = AuditPage, description = "Newest first, 50 a page"),
        (status = 422, description = "A day is malformed")))]
pub async fn api_search(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, PortalError> {
    Ok(Json(search(&state, &query).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_nothing_else() {
        let mut payload = json!({
            "Registered": {"email": "a@example.com", "password_hash": "$argon2id$v=19$..."},
            "CredentialRotated": {"ciphertext": "v1:abc", "fingerprint": "f00d"},
            "Created": {"hash": "9f86d0", "prefix": "sk-mr-abc", "scope": {"kind": "auto"}},
            "list": [{"token": "t"}, {"note": "kept"}],
            "none": {"password_hash": null}
        });
        redact(&mut payload);
        let text = payload.to_string();
        for secret in ["$argon2id$", "v1:abc", "9f86d0", "\"t\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(payload["Created"]["prefix"], "sk-mr-abc");
        assert_eq!(payload["CredentialRotated"]["fingerprint"], "f00d");
        assert_eq!(payload["list"][1]["note"], "kept");
        assert_eq!(payload["none"]["password_hash"], Value::Null);
    }
}

//! Providers in the console: the rules and actions behind every form and JSON call — add (with
//! an optional credential), edit protocol, region and base URL, rotate the credential, enable or
//! disable — and what is shown of a provider. The pages are in `provider_pages.rs`, the JSON
//! handlers in `providers_api.rs`, the connection test in `connection.rs`.
//!
//! Credentials are write-only: an operator types one into a password field, it is sealed
//! (AES-256-GCM under the master key) before it reaches a command, and from then on the console
//! shows only that one is set, a short keyed fingerprint and when it was rotated — never the
//! plaintext, never the ciphertext.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use modelrouter_domain::aggregate_types::PROVIDER;
use modelrouter_domain::provider::{
    validate_id, ConnectionTest, ProviderCommand, ProviderConfig, UpstreamProtocol,
};
use modelrouter_domain::DomainError;
use modelrouter_projections::live::{LiveView, ProviderEntry};
use serde::Serialize;
use utoipa::ToSchema;

use super::session::SignedInOperator;
use super::{provider_pages, providers_api};
use crate::gateway::{AppState, RequestId};
use crate::portal::PortalError;
use crate::store::CommandError;

pub fn pages() -> Router<Arc<AppState>> {
    use provider_pages::*;
    Router::new()
        .route("/admin/providers", get(list_page).post(add_submit))
        .route("/admin/providers/{id}", get(detail_page).post(edit_submit))
        .route("/admin/providers/{id}/credential", post(credential_submit))
        .route("/admin/providers/{id}/enable", post(enable_submit))
        .route("/admin/providers/{id}/disable", post(disable_submit))
        .route("/admin/providers/{id}/test", post(test_submit))
}

pub fn api() -> Router<Arc<AppState>> {
    providers_api::router()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        providers_api::api_list,
        providers_api::api_add,
        providers_api::api_get,
        providers_api::api_update,
        providers_api::api_credential,
        providers_api::api_enable,
        providers_api::api_disable,
        providers_api::api_test,
    ),
    components(schemas(ProviderView, CredentialView, TestView)),
    tags((name = "admin-providers", description = "Upstream providers: protocol, region, base URL, write-only credentials, enable/disable, connection tests")),
)]
pub struct Api;

/// The protocols an operator can choose, as forms and the API name them.
pub const PROTOCOLS: [(&str, &str); 4] = [
    ("openai", "OpenAI-compatible"),
    ("anthropic", "Anthropic"),
    ("dashscope", "DashScope"),
    ("minimax", "MiniMax"),
];

pub fn parse_protocol(text: &str) -> Result<UpstreamProtocol, PortalError> {
    match text.trim() {
        "openai" | "openai-compatible" => Ok(UpstreamProtocol::Openai),
        "anthropic" => Ok(UpstreamProtocol::Anthropic),
        "dashscope" => Ok(UpstreamProtocol::Dashscope),
        "minimax" => Ok(UpstreamProtocol::Minimax),
        _ => Err(PortalError::invalid(
            "protocol",
            "Choose the protocol: openai (OpenAI-compatible), anthropic, dashscope or minimax.",
        )),
    }
}

/// A base URL as the console accepts it: http(s), a host, no credentials, query or fragment.
pub fn check_base_url(text: &str) -> Result<String, PortalError> {
    let text = text.trim();
    let invalid = |message: &str| PortalError::invalid("base_url", message);
    let url = reqwest::Url::parse(text).map_err(|_| {
        invalid("Enter the base URL as a full address, e.g. https://api.openai.com/v1.")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("The base URL must start with http:// or https://."));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("The base URL must name a host."));
    }
    // A user:password in the URL would be stored and shown in plaintext: credentials go only
    // into the write-only credential field.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "Do not put credentials in the URL; enter them in the credential field.",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "The base URL cannot have a query (?…) or fragment (#…).",
        ));
    }
    Ok(text.trim_end_matches('/').to_string())
}

pub fn check_region(text: &str) -> Result<String, PortalError> {
    let region = text.trim();
    if region.is_empty() || region.chars().count() > 64 || region.chars().any(char::is_control) {
        return Err(PortalError::invalid(
            "region",
            "Enter the region in at most 64 characters (e.g. us-east, cn-beijing).",
        ));
    }
    Ok(region.to_string())
}

pub fn check_name(text: &str) -> Result<String, PortalError> {
    let name = text.trim();
    validate_id(name).map_err(|_| {
        PortalError::invalid(
            "name",
            "Use 2 to 64 lower-case letters, digits and hyphens, starting with a letter or digit \
             (e.g. openai-main). The name cannot be changed later.",
        )
    })?;
    Ok(name.to_string())
}

/// Checks a credential without ever putting it into a message.
pub fn check_credential(text: &str) -> Result<&str, PortalError> {
    let credential = text.trim();
    if credential.is_empty() {
        return Err(PortalError::invalid("credential", "Enter the credential."));
    }
    if credential.len() > 4096 || !credential.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(PortalError::invalid(
            "credential",
            "The credential must be at most 4096 printable characters without spaces.",
        ));
    }
    Ok(credential)
}

/// What a caller asks to add.
pub struct NewProvider {
    pub name: String,
    pub protocol: String,
    pub region: String,
    pub base_url: String,
    /// Empty: add the provider without a credential for now.
    pub credential: String,
    pub enabled: bool,
}

fn commanded(error: CommandError) -> PortalError {
    match error {
        CommandError::Domain(DomainError::AlreadyExists(_)) => PortalError::invalid(
            "name",
            "A provider with this name already exists. Choose another name, or edit that one.",
        ),
        other => other.into(),
    }
}

/// Adds a provider (and its credential, if given); returns its id.
pub async fn add(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    new: NewProvider,
) -> Result<String, PortalError> {
    let name = check_name(&new.name)?;
    let config = ProviderConfig {
        protocol: parse_protocol(&new.protocol)?,
        base_url: check_base_url(&new.base_url)?,
        region: check_region(&new.region)?,
    };
    let credential = match new.credential.trim() {
        "" => None,
        text => Some(check_credential(text)?),
    };
    let meta = operator.handle.metadata(request);
    let providers = &state.commands.providers;
    providers
        .execute(&name, ProviderCommand::Register(config), &meta)
        .await
        .map_err(commanded)?;
    if let Some(credential) = credential {
        providers
            .execute(&name, seal(state, credential), &meta)
            .await?;
    }
    if !new.enabled {
        providers
            .execute(&name, ProviderCommand::Disable, &meta)
            .await?;
    }
    state.live.include(&state.db, PROVIDER, &name).await?;
    Ok(name)
}

fn seal(state: &AppState, credential: &str) -> ProviderCommand {
    ProviderCommand::RotateCredential {
        ciphertext: state.master_key.seal(credential),
        fingerprint: state.master_key.fingerprint(credential),
    }
}

/// The provider `id` as the live view has it (after reading the log once more if it is not
/// there yet: added a moment ago on another replica).
pub async fn entry(state: &AppState, id: &str) -> Result<ProviderEntry, PortalError> {
    if !state.live.view().providers.contains_key(id) {
        state.live.include(&state.db, PROVIDER, id).await?;
    }
    state
        .live
        .view()
        .providers
        .get(id)
        .cloned()
        .ok_or(PortalError::NotFound)
}

/// Changes protocol, region and base URL (each `None` stays); returns whether anything changed.
pub async fn update(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    id: &str,
    protocol: Option<&str>,
    region: Option<&str>,
    base_url: Option<&str>,
) -> Result<bool, PortalError> {
    let current = entry(state, id).await?.config;
    let config = ProviderConfig {
        protocol: protocol
            .map(parse_protocol)
            .transpose()?
            .unwrap_or(current.protocol),
        base_url: base_url
            .map(check_base_url)
            .transpose()?
            .unwrap_or_else(|| current.base_url.clone()),
        region: region
            .map(check_region)
            .transpose()?
            .unwrap_or_else(|| current.region.clone()),
    };
    if config == current {
        return Ok(false);
    }
    state
        .commands
        .providers
        .execute(
            id,
            ProviderCommand::Configure(config),
            &operator.handle.metadata(request),
        )
        .await?;
    state.live.include(&state.db, PROVIDER, id).await?;
    Ok(true)
}

/// Replaces the credential; returns false when it is the one already set (nothing recorded).
pub async fn rotate(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    id: &str,
    credential: &str,
) -> Result<bool, PortalError> {
    let current = entry(state, id).await?;
    let credential = check_credential(credential)?;
    if current.fingerprint.as_deref() == Some(&state.master_key.fingerprint(credential)) {
        return Ok(false);
    }
    state
        .commands
        .providers
        .execute(
            id,
            seal(state, credential),
            &operator.handle.metadata(request),
        )
        .await?;
    state.live.include(&state.db, PROVIDER, id).await?;
    Ok(true)
}

/// Enables or disables; the gateway on this replica routes accordingly from the next call on.
pub async fn set_enabled(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    id: &str,
    enabled: bool,
) -> Result<(), PortalError> {
    entry(state, id).await?;
    let command = if enabled {
        ProviderCommand::Enable
    } else {
        ProviderCommand::Disable
    };
    state
        .commands
        .providers
        .execute(id, command, &operator.handle.metadata(request))
        .await?;
    state.live.include(&state.db, PROVIDER, id).await?;
    Ok(())
}

// ---- what pages and the API show ----

/// A provider's credential, as far as anyone is ever shown it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub set: bool,
    /// The first characters of a keyed fingerprint (HMAC under the master key): tells two
    /// credentials apart without revealing either.
    pub fingerprint: Option<String>,
    pub rotated_at: Option<DateTime<Utc>>,
}

/// The result of a connection test.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestView {
    pub ok: bool,
    pub latency_ms: u64,
    /// The upstream's HTTP status, when one arrived.
    pub status: Option<u16>,
    /// Why it failed: short, sanitized, never the credential.
    pub error: Option<String>,
    pub upstream_model: String,
    pub tested_at: DateTime<Utc>,
}

impl TestView {
    pub fn of(test: &ConnectionTest) -> TestView {
        TestView {
            ok: test.ok,
            latency_ms: test.latency_ms,
            status: test.status,
            error: test.error.clone(),
            upstream_model: test.upstream_model.clone(),
            tested_at: test.tested_at,
        }
    }
}

/// A provider as the console shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    /// The provider's name (a slug), also its id.
    pub id: String,
    /// `openai` (OpenAI-compatible), `anthropic`, `dashscope` or `minimax`.
    pub protocol: &'static str,
    pub region: String,
    pub base_url: String,
    pub enabled: bool,
    pub credential: CredentialView,
    pub last_test: Option<TestView>,
    /// Public models whose route has a deployment on this provider.
    pub routes: Vec<String>,
}

const FINGERPRINT_SHOWN: usize = 8;

impl ProviderView {
    pub fn of(view: &LiveView, id: &str, entry: &ProviderEntry) -> ProviderView {
        ProviderView {
            id: id.to_string(),
            protocol: entry.config.protocol.as_str(),
            region: entry.config.region.clone(),
            base_url: entry.config.base_url.clone(),
            enabled: entry.enabled,
            credential: CredentialView {
                set: entry.credential.is_some(),
                fingerprint: entry
                    .fingerprint
                    .as_ref()
                    .map(|f| f.chars().take(FINGERPRINT_SHOWN).collect()),
                rotated_at: entry.credential_rotated_at,
            },
            last_test: entry.last_test.as_ref().map(TestView::of),
            routes: routes_of(view, id),
        }
    }
}

fn routes_of(view: &LiveView, id: &str) -> Vec<String> {
    let mut routes: Vec<String> = view
        .routes
        .iter()
        .filter(|(_, route)| route.deployments.iter().any(|d| d.provider == id))
        .map(|(model, _)| model.clone())
        .collect();
    routes.sort();
    routes
}

/// Every provider, by name.
pub fn all(view: &LiveView) -> Vec<ProviderView> {
    let mut ids: Vec<&String> = view.providers.keys().collect();
    ids.sort();
    ids.into_iter()
        .map(|id| ProviderView::of(view, id, &view.providers[id]))
        .collect()
}

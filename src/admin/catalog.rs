//! The model catalog in the console: publish a model (public name, display name, description,
//! context window, prices), edit its details, schedule a new price version, choose who may see
//! it, retire and restore it — as pages under `/admin/models` and JSON under
//! `/api/admin/models`.
//!
//! Every action is a `CatalogModel` command with the operator as actor; the page it redirects
//! to reads this replica's view after the event (`Live::include`), and other replicas apply it
//! as they tail the log. Prices are integers of micro-units per one million tokens end to end:
//! forms take decimal amounts and parse them without floats.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use axum_extra::extract::Form;
use chrono::{DateTime, NaiveDateTime, Utc};
use modelrouter_domain::aggregate_types::CATALOG_MODEL;
use modelrouter_domain::catalog::{
    default_max_output_tokens, CatalogModelCommand, ModelDetails, Visibility,
};
use modelrouter_domain::Pricing;
use modelrouter_projections::live::{LiveView, ModelEntry, PriceVersion};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::session::{AdminWriter, SignedInOperator};
use crate::gateway::{AppState, RequestId};
use crate::portal::account::CsrfForm;
use crate::portal::format;
use crate::portal::{render, Chrome, PortalError};

mod page;

pub fn pages() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/models", get(page::list).post(page::publish_submit))
        .route(
            "/admin/models/{name}",
            get(page::detail).post(page::details_submit),
        )
        .route("/admin/models/{name}/prices", post(page::prices_submit))
        .route(
            "/admin/models/{name}/visibility",
            post(page::visibility_submit),
        )
        .route("/admin/models/{name}/retire", post(page::retire_submit))
        .route("/admin/models/{name}/restore", post(page::restore_submit))
}

pub fn api() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/models", get(api_list).post(api_publish))
        .route(
            "/api/admin/models/{name}",
            get(api_get).patch(api_change_details),
        )
        .route("/api/admin/models/{name}/prices", post(api_change_prices))
        .route(
            "/api/admin/models/{name}/visibility",
            post(api_set_visibility),
        )
        .route("/api/admin/models/{name}/retire", post(api_retire))
        .route("/api/admin/models/{name}/restore", post(api_restore))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        api_list,
        api_publish,
        api_get,
        api_change_details,
        api_change_prices,
        api_set_visibility,
        api_retire,
        api_restore
    ),
    components(schemas(
        AdminModel,
        NewModel,
        ModelChange,
        NewPrices,
        Prices,
        PriceVersionView,
        VisibilitySpec
    )),
    tags((name = "admin-models", description = "Console: the model catalog — details, prices, visibility, retirement"))
)]
pub struct Api;

// ---- shapes of the JSON API ----

/// Who may see and call a model. Tenants are named by id or by email (answers always give
/// ids); plans by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VisibilitySpec {
    /// Every tenant.
    Everyone,
    /// Only the listed tenants and the tenants on one of the listed plans.
    Restricted {
        #[serde(default)]
        tenants: Vec<String>,
        #[serde(default)]
        plans: Vec<String>,
    },
}

/// Prices in micro-units of the platform currency per one million tokens.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct Prices {
    pub input: i64,
    pub output: i64,
    pub cached_input: i64,
    /// The price of cache writes; None: charged as input.
    #[serde(default)]
    pub cache_write: Option<i64>,
}

impl From<Prices> for Pricing {
    fn from(p: Prices) -> Pricing {
        Pricing {
            input: p.input,
            output: p.output,
            cached_input: p.cached_input,
            cache_write: p.cache_write,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceVersionView {
    version: u32,
    #[serde(flatten)]
    prices: Prices,
    effective_at: DateTime<Utc>,
}

fn price_view(price: &PriceVersion) -> PriceVersionView {
    PriceVersionView {
        version: price.version,
        prices: Prices {
            input: price.pricing.input,
            output: price.pricing.output,
            cached_input: price.pricing.cached_input,
            cache_write: price.pricing.cache_write,
        },
        effective_at: price.effective_at,
    }
}

/// A catalog model as the console sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminModel {
    /// The public name customers send as `model`.
    name: String,
    display_name: String,
    description: String,
    context_window: Option<u32>,
    max_output_tokens: u32,
    /// `offered` (tenants can call it), `unrouted` (published, but bound to no route yet) or
    /// `retired`.
    state: &'static str,
    visibility: VisibilitySpec,
    /// The version in effect now.
    current_price: PriceVersionView,
    /// Every price version, oldest first; scheduled ones lie in the future.
    price_versions: Vec<PriceVersionView>,
}

/// `offered`, `unrouted` or `retired`.
fn state_of(view: &LiveView, name: &str, model: &ModelEntry) -> &'static str {
    if model.retired {
        "retired"
    } else if view.routes.contains_key(name) {
        "offered"
    } else {
        "unrouted"
    }
}

fn admin_model(view: &LiveView, name: &str, model: &ModelEntry) -> AdminModel {
    AdminModel {
        name: name.to_string(),
        display_name: model.details.display_name.clone(),
        description: model.details.description.clone(),
        context_window: model.details.context_window,
        max_output_tokens: model.details.max_output_tokens,
        state: state_of(view, name, model),
        visibility: visibility_spec(&model.visibility),
        current_price: price_view(&model.price_at(Utc::now())),
        price_versions: model.prices.iter().map(price_view).collect(),
    }
}

fn visibility_spec(visibility: &Visibility) -> VisibilitySpec {
    match visibility {
        Visibility::Everyone => VisibilitySpec::Everyone,
        Visibility::Restricted { tenants, plans } => VisibilitySpec::Restricted {
            tenants: tenants.clone(),
            plans: plans.clone(),
        },
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewModel {
    /// The public name: letters, digits, `.`, `_`, `-` and `:`, up to 100 characters.
    name: String,
    display_name: String,
    #[serde(default)]
    description: String,
    context_window: Option<u32>,
    /// Output tokens held from the allowance for a request that sets no limit (default 4096).
    max_output_tokens: Option<u32>,
    prices: Prices,
    /// Who may see the model (default: everyone).
    visibility: Option<VisibilitySpec>,
}

/// Deserializes a present field (even `null`) as `Some`, so an absent field stays `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A change of details: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ModelChange {
    display_name: Option<String>,
    description: Option<String>,
    /// `null` clears the context window.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    context_window: Option<Option<u32>>,
    max_output_tokens: Option<u32>,
}

/// A new price version.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewPrices {
    #[serde(flatten)]
    prices: Prices,
    /// When the prices take effect (in the future); absent: now. Calls started before keep the
    /// version they were charged at.
    effective_at: Option<DateTime<Utc>>,
}

// ---- actions, shared by the pages and the JSON API ----

/// Public names go into URLs and clients' code: a conservative alphabet.
fn check_name(name: &str) -> Result<String, PortalError> {
    let name = name.trim();
    let fine = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if fine {
        Ok(name.to_string())
    } else {
        Err(PortalError::invalid(
            "name",
            "Give the model a public name of up to 100 letters, digits, '.', '_', '-' or ':'.",
        ))
    }
}

fn check_effective_at(at: Option<DateTime<Utc>>) -> Result<(), PortalError> {
    match at {
        Some(at) if at <= Utc::now() => Err(PortalError::invalid(
            "effective_at",
            "New prices take effect in the future; leave the time empty for now.",
        )),
        _ => Ok(()),
    }
}

/// Turns tenant emails into ids and checks that every named tenant exists.
fn resolve_visibility(view: &LiveView, spec: VisibilitySpec) -> Result<Visibility, PortalError> {
    let VisibilitySpec::Restricted { tenants, plans } = spec else {
        return Ok(Visibility::Everyone);
    };
    let mut ids = Vec::new();
    for tenant in tenants.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        if view.tenants.contains_key(tenant) {
            ids.push(tenant.to_string());
            continue;
        }
        let email = tenant.to_lowercase();
        match view.tenants.iter().find(|(_, t)| t.email == email) {
            Some((id, _)) => ids.push(id.clone()),
            None => {
                return Err(PortalError::invalid(
                    "visibility",
                    format!("There is no tenant '{tenant}'."),
                ))
            }
        }
    }
    Ok(Visibility::Restricted {
        tenants: ids,
        plans,
    })
}

async fn execute(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    name: &str,
    command: CatalogModelCommand,
) -> Result<(), PortalError> {
    let metadata = operator.handle.metadata(request);
    state
        .commands
        .models
        .execute(name, command, &metadata)
        .await?;
    state.live.include(&state.db, CATALOG_MODEL, name).await?;
    Ok(())
}

/// The model of this name, as the view has it now.
fn find(state: &AppState, name: &str) -> Result<AdminModel, PortalError> {
    let view = state.live.view();
    let model = view.models.get(name).ok_or(PortalError::NotFound)?;
    Ok(admin_model(&view, name, model))
}

fn exists(state: &AppState, name: &str) -> Result<(), PortalError> {
    if state.live.view().models.contains_key(name) {
        Ok(())
    } else {
        Err(PortalError::NotFound)
    }
}

async fn publish(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    new: NewModel,
) -> Result<String, PortalError> {
    let name = check_name(&new.name)?;
    if state.live.view().models.contains_key(&name) {
        return Err(PortalError::invalid(
            "name",
            format!("A model named '{name}' is already published; change it on its own page."),
        ));
    }
    let visibility = new
        .visibility
        .map(|spec| resolve_visibility(&state.live.view(), spec))
        .transpose()?;
    let publish = CatalogModelCommand::Publish {
        details: ModelDetails {
            display_name: new.display_name.trim().to_string(),
            description: new.description.trim().to_string(),
            max_output_tokens: new
                .max_output_tokens
                .unwrap_or_else(default_max_output_tokens),
            context_window: new.context_window,
            kind: Default::default(),
        },
        pricing: new.prices.into(),
        effective_at: None,
    };
    execute(state, operator, request, &name, publish).await?;
    if let Some(visibility) = visibility {
        let set = CatalogModelCommand::SetVisibility { visibility };
        execute(state, operator, request, &name, set).await?;
    }
    Ok(name)
}

async fn change_details(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    name: &str,
    change: ModelChange,
) -> Result<(), PortalError> {
    let mut details = state
        .live
        .view()
        .models
        .get(name)
        .ok_or(PortalError::NotFound)?
        .details
        .clone();
    if let Some(display_name) = change.display_name {
        details.display_name = display_name.trim().to_string();
    }
    if let Some(description) = change.description {
        details.description = description.trim().to_string();
    }
    if let Some(window) = change.context_window {
        details.context_window = window;
    }
    if let Some(max) = change.max_output_tokens {
        details.max_output_tokens = max;
    }
    let command = CatalogModelCommand::ChangeDetails { details };
    execute(state, operator, request, name, command).await
}

async fn change_prices(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    name: &str,
    new: NewPrices,
) -> Result<(), PortalError> {
    exists(state, name)?;
    check_effective_at(new.effective_at)?;
    let command = CatalogModelCommand::ChangePricing {
        pricing: new.prices.into(),
        effective_at: new.effective_at,
    };
    execute(state, operator, request, name, command).await
}

async fn set_visibility(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    name: &str,
    spec: VisibilitySpec,
) -> Result<(), PortalError> {
    exists(state, name)?;
    let visibility = resolve_visibility(&state.live.view(), spec)?;
    let command = CatalogModelCommand::SetVisibility { visibility };
    execute(state, operator, request, name, command).await
}

async fn retire_or_restore(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    name: &str,
    retire: bool,
) -> Result<(), PortalError> {
    exists(state, name)?;
    let command = if retire {
        CatalogModelCommand::Retire
    } else {
        CatalogModelCommand::Restore
    };
    execute(state, operator, request, name, command).await
}

// ---- JSON ----

#[utoipa::path(get, path = "/api/admin/models", tag = "admin-models",
    responses((status = 200, body = Vec<AdminModel>, description = "Every published model, retired ones included")))]
pub async fn api_list(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
) -> Json<Vec<AdminModel>> {
    let view = state.live.view();
    Json(
        view.models
            .iter()
            .map(|(name, model)| admin_model(&view, name, model))
            .collect(),
    )
}

#[utoipa::path(post, path = "/api/admin/models", tag = "admin-models", request_body = NewModel,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 201, body = AdminModel, description = "Published"),
              (status = 422, description = "Invalid name, details, prices or visibility, or the name is taken")))]
pub async fn api_publish(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Json(body): Json<NewModel>,
) -> Result<Response, PortalError> {
    let name = publish(&state, &operator, &request, body).await?;
    Ok((StatusCode::CREATED, Json(find(&state, &name)?)).into_response())
}

#[utoipa::path(get, path = "/api/admin/models/{name}", tag = "admin-models",
    params(("name" = String, Path, description = "Public model name")),
    responses((status = 200, body = AdminModel), (status = 404, description = "No such model")))]
pub async fn api_get(
    State(state): State<Arc<AppState>>,
    _operator: SignedInOperator,
    Path(name): Path<String>,
) -> Result<Json<AdminModel>, PortalError> {
    Ok(Json(find(&state, &name)?))
}

#[utoipa::path(patch, path = "/api/admin/models/{name}", tag = "admin-models", request_body = ModelChange,
    params(("name" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = AdminModel), (status = 404, description = "No such model"),
              (status = 422, description = "Invalid details, or the model is retired")))]
pub async fn api_change_details(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(name): Path<String>,
    Json(body): Json<ModelChange>,
) -> Result<Json<AdminModel>, PortalError> {
    change_details(&state, &operator, &request, &name, body).await?;
    Ok(Json(find(&state, &name)?))
}

#[utoipa::path(post, path = "/api/admin/models/{name}/prices", tag = "admin-models", request_body = NewPrices,
    params(("name" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = AdminModel, description = "A new price version (or none, if the same prices were already scheduled for the same time)"),
              (status = 404, description = "No such model"), (status = 422, description = "Negative prices or a time in the past")))]
pub async fn api_change_prices(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(name): Path<String>,
    Json(body): Json<NewPrices>,
) -> Result<Json<AdminModel>, PortalError> {
    change_prices(&state, &operator, &request, &name, body).await?;
    Ok(Json(find(&state, &name)?))
}

#[utoipa::path(post, path = "/api/admin/models/{name}/visibility", tag = "admin-models", request_body = VisibilitySpec,
    params(("name" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = AdminModel), (status = 404, description = "No such model"),
              (status = 422, description = "An unknown tenant, or a restriction that names nobody")))]
pub async fn api_set_visibility(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(name): Path<String>,
    Json(body): Json<VisibilitySpec>,
) -> Result<Json<AdminModel>, PortalError> {
    set_visibility(&state, &operator, &request, &name, body).await?;
    Ok(Json(find(&state, &name)?))
}

#[utoipa::path(post, path = "/api/admin/models/{name}/retire", tag = "admin-models",
    params(("name" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = AdminModel, description = "Retired: offered to no tenant (retiring twice is fine)"),
              (status = 404, description = "No such model")))]
pub async fn api_retire(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(name): Path<String>,
) -> Result<Json<AdminModel>, PortalError> {
    retire_or_restore(&state, &operator, &request, &name, true).await?;
    Ok(Json(find(&state, &name)?))
}

#[utoipa::path(post, path = "/api/admin/models/{name}/restore", tag = "admin-models",
    params(("name" = String, Path, description = "Public model name"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = AdminModel, description = "Offered again with its details and prices"),
              (status = 404, description = "No such model")))]
pub async fn api_restore(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    AdminWriter(operator): AdminWriter,
    Path(name): Path<String>,
) -> Result<Json<AdminModel>, PortalError> {
    retire_or_restore(&state, &operator, &request, &name, false).await?;
    Ok(Json(find(&state, &name)?))
}

// ---- form helpers, shared with the pages ----

/// A decimal amount per 1M tokens (`2`, `2.5`, `0.000125`) as micro-units, by integer
/// arithmetic only.
fn parse_price(field: &'static str, label: &str, text: &str) -> Result<i64, PortalError> {
    let invalid = || {
        PortalError::invalid(
            field,
            format!("Enter the {label} price as an amount like 2.50 (up to six decimals)."),
        )
    };
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || fraction.len() > 6
        || !digits(whole)
        || !digits(fraction)
    {
        return Err(invalid());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| invalid())?
    };
    let fraction: i64 = format!("{fraction:0<6}").parse().map_err(|_| invalid())?;
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(invalid)
}

/// An amount as a form field shows it: no thousands separators, so it parses back.
fn price_input(micros: i64) -> String {
    format::price(micros).replace(',', "")
}

fn parse_count(field: &'static str, label: &str, text: &str) -> Result<Option<u32>, PortalError> {
    let text = text.trim().replace([',', '_', ' '], "");
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(PortalError::invalid(
            field,
            format!("Enter the {label} as a whole number of tokens."),
        )),
    }
}

/// A `datetime-local` field, read as UTC; empty means "now".
fn parse_time(text: &str) -> Result<Option<DateTime<Utc>>, PortalError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            PortalError::invalid(
                "effective_at",
                "Enter the time as YYYY-MM-DD HH:MM (UTC), or leave it empty.",
            )
        })
}

fn tenant_label(view: &LiveView, id: &str) -> String {
    view.tenants
        .get(id)
        .map_or_else(|| id.to_string(), |t| t.email.clone())
}

/// Visibility in words, tenants by email.
fn describe_visibility(view: &LiveView, visibility: &Visibility) -> String {
    match visibility {
        Visibility::Everyone => "Everyone".into(),
        Visibility::Restricted { tenants, plans } => {
            let mut parts = Vec::new();
            if !plans.is_empty() {
                parts.push(format!("plans: {}", plans.join(", ")));
            }
            if !tenants.is_empty() {
                let names: Vec<String> = tenants.iter().map(|t| tenant_label(view, t)).collect();
                parts.push(format!("tenants: {}", names.join(", ")));
            }
            format!("Only {}", parts.join("; "))
        }
    }
}

fn describe_prices(pricing: &Pricing) -> String {
    format!(
        "in {} · out {} · cached {}",
        format::price(pricing.input),
        format::price(pricing.output),
        format::price(pricing.cached_input)
    )
}

fn chrome(operator: &SignedInOperator) -> Chrome {
    operator.chrome("models")
}

fn rendered(status: StatusCode, page: &impl Template) -> Result<Response, PortalError> {
    Ok((status, render(page)?).into_response())
}

fn redirect(to: String) -> Response {
    Redirect::to(&to).into_response()
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// A public name as one URL path segment. Names published here need no escaping; names
/// imported from a file might.
pub(super) fn path_segment(name: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b':');
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

fn check_csrf(operator: &SignedInOperator, form: &CsrfForm) -> Result<(), PortalError> {
    operator.verify_csrf(&form.csrf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_as_integers_of_micro_units() {
        assert_eq!(parse_price("input", "input", "2").ok(), Some(2_000_000));
        assert_eq!(parse_price("input", "input", "2.5").ok(), Some(2_500_000));
        assert_eq!(parse_price("input", "input", ".000125").ok(), Some(125));
        assert!(parse_price("input", "input", "-1").is_err());
        assert!(parse_price("input", "input", "1.0000001").is_err());
        assert!(parse_price("input", "input", "1e3").is_err());
        assert_eq!(price_input(1_234_500_000), "1234.50");
    }

    #[test]
    fn public_names_are_url_safe() {
        assert!(check_name("acme-chat.v2:latest").is_ok());
        assert!(check_name("a/b").is_err());
        assert!(check_name(" ").is_err());
        assert_eq!(path_segment("acme-chat.v2:latest"), "acme-chat.v2:latest");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }
}

//! API keys: create (shown once), list, edit name and model scope, revoke — as pages and JSON.
//!
//! A key's plaintext exists only in the response that creates it; the store keeps its SHA-256.
//! Revoking is an event every replica's in-memory view applies as it tails the log, so a
//! revoked key stops working everywhere within a second.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use axum_extra::extract::Form;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use modelrouter_domain::aggregate_types::API_KEY;
use modelrouter_domain::api_key::{ApiKeyCommand, KeyScope};
use modelrouter_projections::live::{KeyEntry, LiveView};
use modelrouter_projections::sql::usage_report::KeyTotals;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::account::tenant_meta;
use super::format;
use super::{render, Chrome, PortalError, SignedIn};
use crate::crypto::{generate_api_key, hash_api_key, key_prefix};
use crate::gateway::{AppState, Caller, RequestId};

/// Which models a key reaches, as the API and forms name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScopeSpec {
    /// Every model the tenant may use, including models added later.
    Auto,
    /// Only the listed models.
    Models { models: Vec<String> },
    /// Only this model; requests naming another model get 403.
    Fixed { model: String },
}

impl ScopeSpec {
    /// Checks the named models against the models the tenant can call and makes the domain's
    /// scope (a model hidden from the tenant is as unknown as one that does not exist).
    fn into_scope(self, view: &LiveView, tenant_id: &str) -> Result<KeyScope, PortalError> {
        let known = |name: &str| view.model_for(tenant_id, name).is_some();
        let unknown = |name: &str| {
            PortalError::invalid("scope", format!("There is no model named '{name}'."))
        };
        match self {
            ScopeSpec::Auto => Ok(KeyScope::Auto),
            ScopeSpec::Models { models } => {
                let mut models: Vec<String> = models
                    .into_iter()
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect();
                models.sort();
                models.dedup();
                if models.is_empty() {
                    return Err(PortalError::invalid(
                        "scope",
                        "Select at least one model for this key.",
                    ));
                }
                match models.iter().find(|m| !known(m)) {
                    Some(missing) => Err(unknown(missing)),
                    None => Ok(KeyScope::Models(models)),
                }
            }
            ScopeSpec::Fixed { model } => {
                let model = model.trim().to_string();
                if model.is_empty() {
                    Err(PortalError::invalid("scope", "Choose the key's model."))
                } else if !known(&model) {
                    Err(unknown(&model))
                } else {
                    Ok(KeyScope::Fixed(model))
                }
            }
        }
    }

    fn of(scope: &KeyScope) -> ScopeSpec {
        match scope {
            KeyScope::Auto => ScopeSpec::Auto,
            KeyScope::Models(models) => ScopeSpec::Models {
                models: models.clone(),
            },
            KeyScope::Fixed(model) => ScopeSpec::Fixed {
                model: model.clone(),
            },
        }
    }
}

/// A key as lists show it: never its plaintext.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    id: String,
    name: String,
    /// The first characters of the key.
    prefix: String,
    scope: ScopeSpec,
    /// `active`, `expired` or `revoked`.
    status: &'static str,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<String>,
    requests: i64,
    /// Micro-units spent through this key.
    spend: i64,
}

impl KeyView {
    fn of(key: &KeyEntry, totals: Option<&KeyTotals>, now: DateTime<Utc>) -> KeyView {
        KeyView {
            id: key.key_id.clone(),
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            scope: ScopeSpec::of(&key.scope),
            status: status(key, now),
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: totals.and_then(|t| t.last_used.clone()),
            requests: totals.map_or(0, |t| t.requests),
            spend: totals.map_or(0, |t| t.cost),
        }
    }
}

fn status(key: &KeyEntry, now: DateTime<Utc>) -> &'static str {
    if key.revoked {
        "revoked"
    } else if !key.usable_at(now) {
        "expired"
    } else {
        "active"
    }
}

fn check_expiry(expires_at: Option<DateTime<Utc>>) -> Result<(), PortalError> {
    match expires_at {
        Some(at) if at <= Utc::now() => Err(PortalError::invalid(
            "expires_at",
            "The expiry date must be in the future.",
        )),
        _ => Ok(()),
    }
}

/// Creates a key; returns its plaintext (shown once) and id.
async fn create_key(
    state: &AppState,
    signed_in: &SignedIn,
    request: &RequestId,
    name: &str,
    scope: ScopeSpec,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(String, String), PortalError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(PortalError::invalid(
            "name",
            "Give the key a name of 1 to 100 characters.",
        ));
    }
    check_expiry(expires_at)?;
    let scope = scope.into_scope(&state.live.view(), signed_in.scope.tenant_id())?;
    let key = generate_api_key();
    let key_id = uuid::Uuid::new_v4().to_string();
    let create = ApiKeyCommand::Create {
        tenant_id: signed_in.scope.tenant_id().to_string(),
        name: name.to_string(),
        hash: hash_api_key(&key),
        prefix: key_prefix(&key),
        scope,
        expires_at,
    };
    state
        .commands
        .keys
        .execute(&key_id, create, &tenant_meta(signed_in, request))
        .await?;
    state.live.include(&state.db, API_KEY, &key_id).await?;
    Ok((key, key_id))
}

/// Renames a key and/or changes its scope. Only the tenant's own, unrevoked keys change.
async fn update_key(
    state: &AppState,
    signed_in: &SignedIn,
    request: &RequestId,
    key_id: &str,
    name: Option<String>,
    scope: Option<ScopeSpec>,
) -> Result<(), PortalError> {
    let scope = {
        let view = state.live.view();
        let key = signed_in.scope.key(&view, key_id)?;
        if key.revoked {
            return Err(PortalError::invalid(
                "key",
                "This key is revoked; it can no longer be changed.",
            ));
        }
        scope
            .map(|s| s.into_scope(&view, signed_in.scope.tenant_id()))
            .transpose()?
    };
    let metadata = tenant_meta(signed_in, request);
    if let Some(name) = name {
        if name.trim().is_empty() || name.trim().chars().count() > 100 {
            return Err(PortalError::invalid(
                "name",
                "Give the key a name of 1 to 100 characters.",
            ));
        }
        let rename = ApiKeyCommand::Rename { name };
        state
            .commands
            .keys
            .execute(key_id, rename, &metadata)
            .await?;
    }
    if let Some(scope) = scope {
        let change = ApiKeyCommand::ChangeScope { scope };
        state
            .commands
            .keys
            .execute(key_id, change, &metadata)
            .await?;
    }
    state.live.include(&state.db, API_KEY, key_id).await?;
    Ok(())
}

async fn revoke_key(
    state: &AppState,
    signed_in: &SignedIn,
    request: &RequestId,
    key_id: &str,
) -> Result<(), PortalError> {
    let revoked = signed_in.scope.key(&state.live.view(), key_id)?.revoked;
    if !revoked {
        state
            .commands
            .keys
            .execute(
                key_id,
                ApiKeyCommand::Revoke,
                &tenant_meta(signed_in, request),
            )
            .await?;
        state.live.include(&state.db, API_KEY, key_id).await?;
    }
    Ok(())
}

// ---- pages ----

/// A key row of the list page.
struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    scope: String,
    status: &'static str,
    created: String,
    expires: String,
    last_used: String,
    requests: String,
    spend: String,
}

fn describe(scope: &KeyScope) -> String {
    match scope {
        KeyScope::Auto => "All models".into(),
        KeyScope::Models(models) => models.join(", "),
        KeyScope::Fixed(model) => format!("Only {model}"),
    }
}

/// A key that expires at midnight UTC was made "valid through" the day before: say so.
fn expiry(at: DateTime<Utc>) -> String {
    if at.time() == chrono::NaiveTime::MIN {
        format!("Through {}", (at - Duration::days(1)).format("%Y-%m-%d"))
    } else {
        at.format("%Y-%m-%d %H:%M UTC").to_string()
    }
}

fn row(key: &KeyEntry, totals: Option<&KeyTotals>, now: DateTime<Utc>) -> KeyRow {
    KeyRow {
        id: key.key_id.clone(),
        name: key.name.clone(),
        prefix: key.prefix.clone(),
        scope: describe(&key.scope),
        status: status(key, now),
        created: key.created_at.format("%Y-%m-%d").to_string(),
        expires: key.expires_at.map(expiry).unwrap_or_else(|| "Never".into()),
        last_used: totals
            .and_then(|t| t.last_used.as_deref())
            .map(format::time)
            .unwrap_or_else(|| "Never".into()),
        requests: format::count(totals.map_or(0, |t| t.requests)),
        spend: format::money_column(totals.map_or(0, |t| t.cost)),
    }
}

/// A model the scope pickers offer.
struct ModelChoice {
    name: String,
    display_name: String,
    selected: bool,
}

fn choices(view: &LiveView, tenant_id: &str, selected: &[String]) -> Vec<ModelChoice> {
    view.models_for(tenant_id)
        .map(|(name, model)| ModelChoice {
            name: name.clone(),
            display_name: model.details.display_name.clone(),
            selected: selected.iter().any(|s| s == name),
        })
        .collect()
}

/// What the create form held, to show it again next to an error.
#[derive(Default)]
struct CreateDraft {
    name: String,
    expires_on: String,
    scope: String,
    models: Vec<String>,
    fixed_model: String,
}

#[derive(Template)]
#[template(path = "portal/keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    models: Vec<ModelChoice>,
    fixed_choices: Vec<ModelChoice>,
    draft: CreateDraft,
    error: Option<String>,
    notice: Option<&'static str>,
    today: String,
}

async fn keys_page(
    state: &AppState,
    signed_in: &SignedIn,
    draft: CreateDraft,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<KeysPage, PortalError> {
    let totals = signed_in.scope.key_totals(&state.db).await?;
    let view = state.live.view();
    let tenant_id = signed_in.scope.tenant_id();
    let now = Utc::now();
    let keys = signed_in
        .scope
        .keys(&view)
        .into_iter()
        .map(|key| row(key, totals.get(&key.key_id), now))
        .collect();
    Ok(KeysPage {
        chrome: Chrome::new(signed_in, "keys"),
        keys,
        models: choices(&view, tenant_id, &draft.models),
        fixed_choices: choices(&view, tenant_id, std::slice::from_ref(&draft.fixed_model)),
        draft,
        error,
        notice,
        today: now.format("%Y-%m-%d").to_string(),
    })
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn list_page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    axum::extract::Query(query): axum::extract::Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let notice = match query.notice.as_deref() {
        Some("updated") => Some("The key was updated."),
        Some("revoked") => Some("The key was revoked. Requests with it are refused from now on."),
        _ => None,
    };
    let draft = CreateDraft {
        scope: "auto".into(),
        ..CreateDraft::default()
    };
    let page = keys_page(&state, &signed_in, draft, None, notice).await?;
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct KeyForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_on: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    fixed_model: String,
}

impl KeyForm {
    fn scope_spec(&self) -> Result<ScopeSpec, PortalError> {
        match self.scope.as_str() {
            "auto" => Ok(ScopeSpec::Auto),
            "models" => Ok(ScopeSpec::Models {
                models: self.models.clone(),
            }),
            "fixed" => Ok(ScopeSpec::Fixed {
                model: self.fixed_model.clone(),
            }),
            _ => Err(PortalError::invalid(
                "scope",
                "Choose which models the key may use.",
            )),
        }
    }

    /// A date means "valid through that day": the key expires at the next midnight, UTC.
    fn expires_at(&self) -> Result<Option<DateTime<Utc>>, PortalError> {
        let text = self.expires_on.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            PortalError::invalid("expires_at", "Enter the expiry date as YYYY-MM-DD.")
        })?;
        Ok((day + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc()))
    }

    fn draft(self) -> CreateDraft {
        CreateDraft {
            name: self.name,
            expires_on: self.expires_on,
            scope: self.scope,
            models: self.models,
            fixed_model: self.fixed_model,
        }
    }
}

#[derive(Template)]
#[template(path = "portal/key_created.html")]
struct KeyCreatedPage {
    chrome: Chrome,
    key: String,
    name: String,
    scope: String,
    base_url: String,
}

pub async fn create_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    caller: Caller,
    signed_in: SignedIn,
    Form(form): Form<KeyForm>,
) -> Result<Response, PortalError> {
    signed_in.verify_csrf(&form.csrf)?;
    let attempt = async {
        let scope = form.scope_spec()?;
        let expires_at = form.expires_at()?;
        create_key(&state, &signed_in, &request, &form.name, scope, expires_at).await
    };
    match attempt.await {
        Ok((key, key_id)) => {
            let view = state.live.view();
            let entry = signed_in.scope.key(&view, &key_id)?;
            let page = KeyCreatedPage {
                chrome: Chrome::new(&signed_in, "keys"),
                key,
                name: entry.name.clone(),
                scope: describe(&entry.scope),
                base_url: super::models::base_url(&state, &caller),
            };
            Ok((StatusCode::CREATED, render(&page)?).into_response())
        }
        Err(error @ PortalError::Invalid { .. }) => {
            let message = error.to_string();
            let page = keys_page(&state, &signed_in, form.draft(), Some(message), None).await?;
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

#[derive(Template)]
#[template(path = "portal/key_edit.html")]
struct KeyEditPage {
    chrome: Chrome,
    key: KeyRow,
    revoked: bool,
    scope_kind: &'static str,
    models: Vec<ModelChoice>,
    fixed_choices: Vec<ModelChoice>,
    error: Option<String>,
}

async fn edit_view(
    state: &AppState,
    signed_in: &SignedIn,
    key_id: &str,
    error: Option<String>,
) -> Result<KeyEditPage, PortalError> {
    let totals = signed_in.scope.key_totals(&state.db).await?;
    let view = state.live.view();
    let tenant_id = signed_in.scope.tenant_id();
    let key = signed_in.scope.key(&view, key_id)?;
    let (scope_kind, selected, fixed) = match &key.scope {
        KeyScope::Auto => ("auto", vec![], String::new()),
        KeyScope::Models(models) => ("models", models.clone(), String::new()),
        KeyScope::Fixed(model) => ("fixed", vec![], model.clone()),
    };
    Ok(KeyEditPage {
        chrome: Chrome::new(signed_in, "keys"),
        key: row(key, totals.get(key_id), Utc::now()),
        revoked: key.revoked,
        scope_kind,
        models: choices(&view, tenant_id, &selected),
        fixed_choices: choices(&view, tenant_id, std::slice::from_ref(&fixed)),
        error,
    })
}

pub async fn edit_page(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(key_id): Path<String>,
) -> Result<Response, PortalError> {
    let page = edit_view(&state, &signed_in, &key_id, None).await?;
    Ok(render(&page)?.into_response())
}

pub async fn edit_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    signed_in: SignedIn,
    Path(key_id): Path<String>,
    Form(form): Form<KeyForm>,
) -> Result<Response, PortalError> {
    signed_in.verify_csrf(&form.csrf)?;
    let attempt = async {
        let scope = form.scope_spec()?;
        update_key(
            &state,
            &signed_in,
            &request,
            &key_id,
            Some(form.name.clone()),
            Some(scope),
        )
        .await
    };
    match attempt.await {
        Ok(()) => Ok(Redirect::to("/portal/keys?notice=updated").into_response()),
        Err(error @ PortalError::Invalid { .. }) => {
            let page = edit_view(&state, &signed_in, &key_id, Some(error.to_string())).await?;
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

pub async fn revoke_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    signed_in: SignedIn,
    Path(key_id): Path<String>,
    Form(form): Form<super::account::CsrfForm>,
) -> Result<Response, PortalError> {
    signed_in.verify_csrf(&form.csrf)?;
    revoke_key(&state, &signed_in, &request, &key_id).await?;
    Ok(Redirect::to("/portal/keys?notice=revoked").into_response())
}

// ---- JSON ----

async fn key_view(
    state: &AppState,
    signed_in: &SignedIn,
    key_id: &str,
) -> Result<KeyView, PortalError> {
    let totals: HashMap<String, KeyTotals> = signed_in.scope.key_totals(&state.db).await?;
    let view = state.live.view();
    let key = signed_in.scope.key(&view, key_id)?;
    Ok(KeyView::of(key, totals.get(key_id), Utc::now()))
}

#[utoipa::path(get, path = "/api/portal/keys", tag = "keys",
    responses((status = 200, body = Vec<KeyView>, description = "The tenant's keys, newest first")))]
pub async fn api_list(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
) -> Result<Json<Vec<KeyView>>, PortalError> {
    let totals = signed_in.scope.key_totals(&state.db).await?;
    let view = state.live.view();
    let now = Utc::now();
    Ok(Json(
        signed_in
            .scope
            .keys(&view)
            .into_iter()
            .map(|key| KeyView::of(key, totals.get(&key.key_id), now))
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct NewKey {
    name: String,
    #[serde(default = "auto")]
    scope: ScopeSpec,
    expires_at: Option<DateTime<Utc>>,
}

fn auto() -> ScopeSpec {
    ScopeSpec::Auto
}

/// A new key: the only response that ever contains its plaintext.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key itself. Store it now: it is never shown again.
    key: String,
    #[serde(flatten)]
    details: KeyView,
}

#[utoipa::path(post, path = "/api/portal/keys", tag = "keys", request_body = NewKey,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 201, body = CreatedKey), (status = 422, description = "Invalid name, scope or expiry")))]
pub async fn api_create(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    super::session::ApiWriter(signed_in): super::session::ApiWriter,
    Json(body): Json<NewKey>,
) -> Result<Response, PortalError> {
    let (key, key_id) = create_key(
        &state,
        &signed_in,
        &request,
        &body.name,
        body.scope,
        body.expires_at,
    )
    .await?;
    let details = key_view(&state, &signed_in, &key_id).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, details })).into_response())
}

#[utoipa::path(get, path = "/api/portal/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, body = KeyView), (status = 404, description = "No such key of this tenant")))]
pub async fn api_get(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(key_id): Path<String>,
) -> Result<Json<KeyView>, PortalError> {
    Ok(Json(key_view(&state, &signed_in, &key_id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct KeyChange {
    name: Option<String>,
    scope: Option<ScopeSpec>,
}

#[utoipa::path(patch, path = "/api/portal/keys/{id}", tag = "keys", request_body = KeyChange,
    params(("id" = String, Path, description = "Key id"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = KeyView), (status = 404, description = "No such key of this tenant"),
              (status = 422, description = "Invalid name or scope, or the key is revoked")))]
pub async fn api_update(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    super::session::ApiWriter(signed_in): super::session::ApiWriter,
    Path(key_id): Path<String>,
    Json(body): Json<KeyChange>,
) -> Result<Json<KeyView>, PortalError> {
    update_key(&state, &signed_in, &request, &key_id, body.name, body.scope).await?;
    Ok(Json(key_view(&state, &signed_in, &key_id).await?))
}

#[utoipa::path(post, path = "/api/portal/keys/{id}/revoke", tag = "keys",
    params(("id" = String, Path, description = "Key id"),
           ("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 200, body = KeyView, description = "Revoked (revoking twice is fine)"),
              (status = 404, description = "No such key of this tenant")))]
pub async fn api_revoke(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    super::session::ApiWriter(signed_in): super::session::ApiWriter,
    Path(key_id): Path<String>,
) -> Result<Json<KeyView>, PortalError> {
    revoke_key(&state, &signed_in, &request, &key_id).await?;
    Ok(Json(key_view(&state, &signed_in, &key_id).await?))
}

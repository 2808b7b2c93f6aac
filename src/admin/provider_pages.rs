//! The providers' pages: the list with the "add provider" form, and one provider's page with
//! its settings, credential, enable/disable and connection-test forms. Each form posts, then
//! redirects back with a notice; a validation error shows the page again with the message beside
//! its form and what was entered — except a credential, which is never written into a page.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::providers::{
    add, all, entry, rotate, set_enabled, update, CredentialView, NewProvider, ProviderView,
    TestView, PROTOCOLS,
};
use super::session::SignedInOperator;
use crate::gateway::{AppState, RequestId};
use crate::portal::{render, Chrome, PortalError};

fn protocol_label(value: &'static str) -> &'static str {
    PROTOCOLS
        .iter()
        .find(|(v, _)| *v == value)
        .map_or(value, |(_, label)| label)
}

pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A table row / facts of one provider, formatted for a page.
struct Row {
    id: String,
    protocol: &'static str,
    region: String,
    base_url: String,
    enabled: bool,
    credential: String,
    last_test: String,
    last_test_ok: Option<bool>,
    routes: String,
}

fn credential_text(credential: &CredentialView) -> String {
    match (&credential.fingerprint, credential.rotated_at) {
        _ if !credential.set => "Not set".into(),
        (Some(fingerprint), Some(at)) => format!("Set · {fingerprint}… · rotated {}", when(at)),
        (Some(fingerprint), None) => format!("Set · {fingerprint}…"),
        (None, _) => "Set".into(),
    }
}

pub fn test_text(test: &TestView) -> String {
    let at = when(test.tested_at);
    if test.ok {
        format!(
            "OK in {} ms ({}, {at})",
            test.latency_ms, test.upstream_model
        )
    } else {
        let status = test
            .status
            .map(|s| format!("HTTP {s}: "))
            .unwrap_or_default();
        format!(
            "Failed after {} ms — {status}{} ({}, {at})",
            test.latency_ms,
            test.error.as_deref().unwrap_or("error"),
            test.upstream_model
        )
    }
}

impl Row {
    fn of(view: ProviderView) -> Row {
        Row {
            protocol: protocol_label(view.protocol),
            credential: credential_text(&view.credential),
            last_test: view
                .last_test
                .as_ref()
                .map(test_text)
                .unwrap_or_else(|| "Never tested".into()),
            last_test_ok: view.last_test.as_ref().map(|t| t.ok),
            routes: if view.routes.is_empty() {
                "—".into()
            } else {
                view.routes.join(", ")
            },
            id: view.id,
            region: view.region,
            base_url: view.base_url,
            enabled: view.enabled,
        }
    }
}

// ---- pages ----

/// What the add form held, shown again beside an error (never the credential).
#[derive(Default)]
struct AddDraft {
    name: String,
    protocol: String,
    region: String,
    base_url: String,
}

#[derive(Template)]
#[template(path = "admin/providers.html")]
struct ListPage {
    chrome: Chrome,
    providers: Vec<Row>,
    protocols: &'static [(&'static str, &'static str)],
    draft: AddDraft,
    error: Option<String>,
    notice: Option<String>,
}

fn list_view(
    state: &AppState,
    operator: &SignedInOperator,
    draft: AddDraft,
    error: Option<String>,
    notice: Option<String>,
) -> ListPage {
    ListPage {
        chrome: operator.chrome("providers"),
        providers: all(&state.live.view()).into_iter().map(Row::of).collect(),
        protocols: &PROTOCOLS,
        draft,
        error,
        notice,
    }
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

fn notice_text(notice: Option<&str>) -> Option<String> {
    let text = match notice? {
        "added" => "The provider was added.",
        "updated" => "The provider's settings were saved.",
        "unchanged" => "Nothing changed.",
        "rotated" => "The new credential is in use from the next call on.",
        "same_credential" => "That is the credential already set; nothing changed.",
        "enabled" => "The provider is enabled: routes send calls to it again.",
        "disabled" => "The provider is disabled: no call is routed to it from now on.",
        "tested" => "The connection test ran; its result is below.",
        _ => return None,
    };
    Some(text.into())
}

pub async fn list_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let draft = AddDraft {
        protocol: "openai".into(),
        ..AddDraft::default()
    };
    let page = list_view(
        &state,
        &operator,
        draft,
        None,
        notice_text(query.notice.as_deref()),
    );
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct AddForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    credential: String,
}

pub async fn add_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Form(form): Form<AddForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let new = NewProvider {
        name: form.name.clone(),
        protocol: form.protocol.clone(),
        region: form.region.clone(),
        base_url: form.base_url.clone(),
        credential: form.credential,
        enabled: true,
    };
    match add(&state, &operator, &request, new).await {
        Ok(id) => Ok(Redirect::to(&format!("/admin/providers/{id}?notice=added")).into_response()),
        Err(error @ PortalError::Invalid { .. }) => {
            let draft = AddDraft {
                name: form.name,
                protocol: form.protocol,
                region: form.region,
                base_url: form.base_url,
            };
            let page = list_view(&state, &operator, draft, Some(error.to_string()), None);
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

/// Which form of the detail page an error belongs to.
#[derive(Default)]
struct FormErrors {
    edit: Option<String>,
    credential: Option<String>,
    test: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/provider.html")]
struct DetailPage {
    chrome: Chrome,
    provider: Row,
    protocols: &'static [(&'static str, &'static str)],
    /// The edit form's values: the provider's, or what was entered beside an error.
    draft: AddDraft,
    /// The upstream model a test uses unless the operator names one.
    default_model: String,
    test_model: String,
    errors: FormErrors,
    notice: Option<String>,
}

async fn detail_view(
    state: &AppState,
    operator: &SignedInOperator,
    id: &str,
    draft: Option<AddDraft>,
    test_model: String,
    errors: FormErrors,
    notice: Option<String>,
) -> Result<DetailPage, PortalError> {
    let entry = entry(state, id).await?;
    let view = state.live.view();
    let shown = ProviderView::of(&view, id, &entry);
    let draft = draft.unwrap_or_else(|| AddDraft {
        name: id.to_string(),
        protocol: entry.config.protocol.as_str().into(),
        region: entry.config.region.clone(),
        base_url: entry.config.base_url.clone(),
    });
    Ok(DetailPage {
        chrome: operator.chrome("providers"),
        provider: Row::of(shown),
        protocols: &PROTOCOLS,
        draft,
        default_model: super::connection::default_upstream_model(&view, id).unwrap_or_default(),
        test_model,
        errors,
        notice,
    })
}

pub async fn detail_page(
    State(state): State<Arc<AppState>>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let notice = notice_text(query.notice.as_deref());
    let page = detail_view(
        &state,
        &operator,
        &id,
        None,
        String::new(),
        FormErrors::default(),
        notice,
    )
    .await?;
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct EditForm {
    csrf: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    base_url: String,
}

pub async fn edit_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<EditForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let changed = update(
        &state,
        &operator,
        &request,
        &id,
        Some(&form.protocol),
        Some(&form.region),
        Some(&form.base_url),
    )
    .await;
    match changed {
        Ok(true) => Ok(redirect(&id, "updated")),
        Ok(false) => Ok(redirect(&id, "unchanged")),
        Err(error @ PortalError::Invalid { .. }) => {
            let draft = AddDraft {
                name: id.clone(),
                protocol: form.protocol,
                region: form.region,
                base_url: form.base_url,
            };
            let errors = FormErrors {
                edit: Some(error.to_string()),
                ..FormErrors::default()
            };
            let page = detail_view(
                &state,
                &operator,
                &id,
                Some(draft),
                String::new(),
                errors,
                None,
            )
            .await?;
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

fn redirect(id: &str, notice: &str) -> Response {
    Redirect::to(&format!("/admin/providers/{id}?notice={notice}")).into_response()
}

#[derive(Deserialize)]
pub struct CredentialForm {
    csrf: String,
    #[serde(default)]
    credential: String,
}

pub async fn credential_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<CredentialForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    match rotate(&state, &operator, &request, &id, &form.credential).await {
        Ok(true) => Ok(redirect(&id, "rotated")),
        Ok(false) => Ok(redirect(&id, "same_credential")),
        Err(error @ PortalError::Invalid { .. }) => {
            let errors = FormErrors {
                credential: Some(error.to_string()),
                ..FormErrors::default()
            };
            let page =
                detail_view(&state, &operator, &id, None, String::new(), errors, None).await?;
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

pub async fn enable_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<crate::portal::account::CsrfForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    set_enabled(&state, &operator, &request, &id, true).await?;
    Ok(redirect(&id, "enabled"))
}

pub async fn disable_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<crate::portal::account::CsrfForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    set_enabled(&state, &operator, &request, &id, false).await?;
    Ok(redirect(&id, "disabled"))
}

#[derive(Deserialize)]
pub struct TestForm {
    csrf: String,
    #[serde(default)]
    upstream_model: String,
}

pub async fn test_submit(
    State(state): State<Arc<AppState>>,
    Extension(request): Extension<RequestId>,
    operator: SignedInOperator,
    Path(id): Path<String>,
    Form(form): Form<TestForm>,
) -> Result<Response, PortalError> {
    operator.verify_csrf(&form.csrf)?;
    let model = Some(form.upstream_model.as_str());
    match super::connection::run(&state, &operator, &request, &id, model).await {
        Ok(_) => Ok(redirect(&id, "tested")),
        Err(error @ PortalError::Invalid { .. }) => {
            let errors = FormErrors {
                test: Some(error.to_string()),
                ..FormErrors::default()
            };
            let page = detail_view(
                &state,
                &operator,
                &id,
                None,
                form.upstream_model,
                errors,
                None,
            )
            .await?;
            Ok((error.status(), render(&page)?).into_response())
        }
        Err(other) => Err(other),
    }
}

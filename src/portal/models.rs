//! The models a tenant can call: display names, prices per 1M tokens, the protocols that reach
//! them, and copy-ready snippets for curl and the three official SDKs with this gateway's
//! address.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use modelrouter_projections::live::{ModelEntry, PriceVersion};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::format;
use super::{render, Chrome, PortalError, SignedIn};
use crate::gateway::{AppState, Caller};

/// Every customer protocol reaches every model: the gateway translates to the model's upstream.
const PROTOCOLS: [&str; 3] = ["openai", "anthropic", "dashscope"];

/// Where customers reach this gateway: the configured public URL, else what the request says
/// (forwarding headers only from trusted proxies: [`Caller`]).
pub fn base_url(state: &AppState, caller: &Caller) -> String {
    caller.base_url(&state.settings)
}

/// Prices in micro-units of the platform currency per one million tokens.
#[derive(Serialize, ToSchema)]
pub struct Prices {
    input: i64,
    output: i64,
    cached_input: i64,
    cache_write: Option<i64>,
    version: u32,
    effective_at: chrono::DateTime<chrono::Utc>,
}

fn prices(version: &PriceVersion) -> Prices {
    Prices {
        input: version.pricing.input,
        output: version.pricing.output,
        cached_input: version.pricing.cached_input,
        cache_write: version.pricing.cache_write,
        version: version.version,
        effective_at: version.effective_at,
    }
}

#[derive(Serialize, ToSchema)]
pub struct Snippets {
    curl: String,
    openai_python: String,
    anthropic_python: String,
    dashscope_python: String,
}

#[derive(Serialize, ToSchema)]
pub struct ModelView {
    /// The name to send as `model`.
    id: String,
    display_name: String,
    description: String,
    max_output_tokens: u32,
    /// The prices in effect now.
    prices: Prices,
    /// A scheduled change, if one is announced.
    next_prices: Option<Prices>,
    /// Customer protocols that reach the model: `openai`, `anthropic`, `dashscope`.
    protocols: Vec<&'static str>,
    snippets: Snippets,
}

pub fn snippets(base: &str, model: &str) -> Snippets {
    Snippets {
        curl: format!(
            "curl {base}/v1/chat/completions \\\n  -H \"Authorization: Bearer $MODELROUTER_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'"
        ),
        openai_python: format!(
            "import os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url=\"{base}/v1\", api_key=os.environ[\"MODELROUTER_API_KEY\"])\nreply = client.chat.completions.create(\n    model=\"{model}\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\nprint(reply.choices[0].message.content)"
        ),
        anthropic_python: format!(
            "import os\nimport anthropic\n\nclient = anthropic.Anthropic(base_url=\"{base}\", api_key=os.environ[\"MODELROUTER_API_KEY\"])\nmessage = client.messages.create(\n    model=\"{model}\",\n    max_tokens=1024,\n    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\nprint(message.content[0].text)"
        ),
        dashscope_python: format!(
            "import os\nimport dashscope\n\ndashscope.base_http_api_url = \"{base}/api/v1\"\nresponse = dashscope.Generation.call(\n    api_key=os.environ[\"MODELROUTER_API_KEY\"],\n    model=\"{model}\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n    result_format=\"message\",\n)\nprint(response.output.choices[0].message.content)"
        ),
    }
}

fn model_view(base: &str, name: &str, model: &ModelEntry) -> ModelView {
    let now = chrono::Utc::now();
    let current = model.price_at(now);
    ModelView {
        id: name.to_string(),
        display_name: model.details.display_name.clone(),
        description: model.details.description.clone(),
        max_output_tokens: model.details.max_output_tokens,
        prices: prices(&current),
        next_prices: model.next_price_after(now).as_ref().map(prices),
        protocols: PROTOCOLS.to_vec(),
        snippets: snippets(base, name),
    }
}

/// The models the signed-in tenant can call (visible to it by id or plan).
fn available(state: &AppState, signed_in: &SignedIn, base: &str) -> Vec<ModelView> {
    state
        .live
        .view()
        .models_for(signed_in.scope.tenant_id())
        .map(|(name, model)| model_view(base, name, model))
        .collect()
}

#[utoipa::path(get, path = "/api/portal/models", tag = "models",
    responses((status = 200, body = Vec<ModelView>, description = "Models the tenant can call, with prices and snippets")))]
pub async fn api(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    signed_in: SignedIn,
) -> Json<Vec<ModelView>> {
    Json(available(&state, &signed_in, &base_url(&state, &caller)))
}

/// A model row of the page, its prices already formatted.
struct ModelRow {
    id: String,
    display_name: String,
    description: String,
    max_output_tokens: String,
    input: String,
    output: String,
    cached_input: String,
    /// A scheduled price change, in words.
    change: Option<String>,
    selected: bool,
}

#[derive(Template)]
#[template(path = "portal/models.html")]
struct ModelsPage {
    chrome: Chrome,
    currency: String,
    base_url: String,
    models: Vec<ModelRow>,
    selected: String,
    snippets: Option<Snippets>,
}

#[derive(Deserialize)]
pub struct ModelQuery {
    model: Option<String>,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    signed_in: SignedIn,
    Query(query): Query<ModelQuery>,
) -> Result<Response, PortalError> {
    let base = base_url(&state, &caller);
    let models = available(&state, &signed_in, &base);
    let selected = query
        .model
        .filter(|m| models.iter().any(|v| &v.id == m))
        .or_else(|| models.first().map(|m| m.id.clone()))
        .unwrap_or_default();
    let snippets = models
        .iter()
        .any(|m| m.id == selected)
        .then(|| snippets(&base, &selected));
    let rows = models
        .into_iter()
        .map(|m| ModelRow {
            selected: m.id == selected,
            id: m.id,
            display_name: m.display_name,
            description: m.description,
            max_output_tokens: format::count(i64::from(m.max_output_tokens)),
            input: format::price(m.prices.input),
            output: format::price(m.prices.output),
            cached_input: format::price(m.prices.cached_input),
            change: m.next_prices.as_ref().map(|next| {
                format!(
                    "From {}: input {}, cached input {}, output {}",
                    next.effective_at.format("%Y-%m-%d %H:%M UTC"),
                    format::price(next.input),
                    format::price(next.cached_input),
                    format::price(next.output)
                )
            }),
        })
        .collect();
    let page = ModelsPage {
        chrome: Chrome::new(&signed_in, "models"),
        currency: state.settings.currency.clone(),
        base_url: base,
        models: rows,
        selected,
        snippets,
    };
    Ok(render(&page)?.into_response())
}

//! `POST /v1/messages/count_tokens` (Anthropic): forwarded to an Anthropic upstream when the
//! model is served by one, otherwise estimated — and then said to be an estimate. Decoding and
//! estimating run off the async workers, on input bounded by the body limit (and the tokenizer's
//! own bound on the text it encodes).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use modelrouter_domain::provider::UpstreamProtocol;
use serde_json::{json, Value};

use super::auth::authenticate;
use super::inbound::{bad_request, Inbound};
use super::pipeline::{read_body, resolve_model};
use super::{off_workers, ApiError, AppState, RequestId};
use crate::protocol::anthropic;
use crate::routing::plan;
use crate::upstream::{self, Call};

pub async fn count_tokens(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match count(&state, &headers, body).await {
        Ok(value) => Json(value).into_response(),
        Err(error) => Inbound::Anthropic.error_response(&error, &id.id),
    }
}

async fn count(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let view = state.live.view_full();
    let key = authenticate(&view, headers)?.clone();
    let body = read_body(state, body)?;
    let decoding = body.clone();
    let request = off_workers(move || anthropic::decode_count_tokens_request(&decoding))
        .await?
        .map_err(bad_request)?;
    resolve_model(&view, &key, &request.model)?;
    let plan = plan(&view, &request.model, &key.key_id, &mut rand::thread_rng());
    if let Some(target) = plan
        .targets
        .iter()
        .find(|t| t.provider.config.protocol == UpstreamProtocol::Anthropic)
    {
        if let Some(count) = forward(state, target, &body).await {
            return Ok(json!({"input_tokens": count}));
        }
    }
    let tokens = off_workers(move || anthropic::estimate_input_tokens(&request)).await?;
    Ok(json!({
        "input_tokens": tokens,
        "estimated": true,
    }))
}

/// Asks the Anthropic upstream; `None` (then estimate) when it cannot answer.
async fn forward(state: &AppState, target: &crate::routing::Target, body: &[u8]) -> Option<u64> {
    let sealed = target.provider.credential.as_deref()?;
    let credential = state.master_key.open(sealed).ok()?;
    let mut value: Value = serde_json::from_slice(body).ok()?;
    value["model"] = Value::String(target.deployment.upstream_model.clone());
    let call = Call {
        path: "/v1/messages/count_tokens",
        body: &value,
        stream: false,
    };
    let response = upstream::send(
        &state.http,
        UpstreamProtocol::Anthropic,
        &target.provider.config.base_url,
        &credential,
        call,
        state.settings.upstream_first_byte_timeout,
    )
    .await
    .ok()?;
    let answer: Value = response.json().await.ok()?;
    answer.get("input_tokens")?.as_u64()
}

//! The inference pipeline every customer protocol shares: auth → decode → catalog and scope →
//! hold → route → upstream (translated through the canonical model, or relayed as-is when both
//! sides speak the same dialect) → respond → meter. Errors come back in the caller's envelope.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::Utc;
use modelrouter_domain::catalog::ModelKind;
use modelrouter_domain::inference::Attempt;
use modelrouter_domain::money::BillableTokens;
use modelrouter_domain::provider::UpstreamProtocol;
use modelrouter_projections::live::ModelEntry;
use serde_json::Value;

use super::auth::authenticate;
use super::inbound::{bad_request, decode_for_relay, Inbound};
use super::metering::{Meter, Outcome};
use super::relay::{open, relay, StreamPlan, UpstreamStream};
use super::{off_workers, outbound, ApiError, AppState, RequestId, OFFLOAD_BYTES};
use crate::allowance::AllowanceError;
use crate::protocol::canonical::{ChatRequest, Dialect};
use crate::protocol::dashscope::DashScopeOptions;
use crate::protocol::openai::to_upstream_request;
use crate::routing::{plan, retries, Target};
use crate::upstream::{self, Call, UpstreamError};

const OVERHEAD_HEADER: &str = "x-modelrouter-overhead-us";

pub async fn openai_chat(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, id, headers, body, Dialect::Openai).await
}

pub async fn anthropic_messages(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, id, headers, body, Dialect::Anthropic).await
}

pub async fn dashscope_generation(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut response = handle(state, id.clone(), headers, body, Dialect::Dashscope).await;
    if let Ok(value) = HeaderValue::from_str(&id.id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The envelope for errors found before the body was decoded.
pub fn fallback_inbound(dialect: Dialect) -> Inbound {
    match dialect {
        Dialect::Anthropic => Inbound::Anthropic,
        Dialect::Dashscope => Inbound::DashScope(DashScopeOptions::default()),
        Dialect::Openai | Dialect::Minimax => Inbound::OpenAi,
    }
}

async fn handle(
    state: Arc<AppState>,
    id: RequestId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    dialect: Dialect,
) -> Response {
    match run(&state, &id, &headers, body, dialect).await {
        Ok(response) => response,
        Err((inbound, error)) => inbound.error_response(&error, &id.id),
    }
}

/// Reads the body, mapping an oversize body to 413.
pub fn read_body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge(state.settings.max_body_bytes)
        } else if super::body_deadline::passed(&rejection) {
            ApiError::BodyTimeout
        } else {
            ApiError::BadRequest {
                message: format!("The request body could not be read: {rejection}"),
                param: None,
            }
        }
    })
}

/// The catalog entry for `model` if it is offered to the key's tenant and the key may use it.
/// A model hidden from the tenant is "not found", exactly like a model that does not exist.
pub fn resolve_model<'v>(
    view: &'v modelrouter_projections::LiveView,
    key: &modelrouter_projections::live::KeyEntry,
    model: &str,
) -> Result<&'v ModelEntry, ApiError> {
    let entry = view
        .model_for(&key.tenant_id, model)
        .ok_or_else(|| ApiError::ModelNotFound(model.to_string()))?;
    if !key.scope.allows(model) {
        return Err(ApiError::ModelNotAllowed(model.to_string()));
    }
    if entry.details.kind == ModelKind::Embedding {
        return Err(ApiError::BadRequest {
            message: format!(
                "The model '{model}' is an embedding model: it does not answer chat requests."
            ),
            param: Some("model".into()),
        });
    }
    Ok(entry)
}

async fn run(
    state: &Arc<AppState>,
    id: &RequestId,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    dialect: Dialect,
) -> Result<Response, (Inbound, ApiError)> {
    let started = Instant::now();
    let started_at = Utc::now();
    let fallback = fallback_inbound(dialect);
    let view = state.live.view_full();
    let key = authenticate(&view, headers)
        .map_err(|e| (fallback.clone(), e))?
        .clone();
    let body = read_body(state, body).map_err(|e| (fallback.clone(), e))?;
    // A body that cannot be translated may still be relayed to an upstream of its own protocol;
    // `untranslatable` keeps the reason to give when only other protocols serve the model. A
    // large body is decoded off the async workers.
    let decoded = if body.len() >= OFFLOAD_BYTES {
        let (body, headers) = (body.clone(), headers.clone());
        off_workers(move || decode(&body, dialect, &headers))
            .await
            .map_err(|e| (fallback.clone(), e))?
    } else {
        decode(&body, dialect, headers)
    };
    let (inbound, request, untranslatable) = decoded.map_err(|e| (fallback.clone(), e))?;
    let fail = |error: ApiError| (inbound.clone(), error);
    let model = resolve_model(&view, &key, &request.model).map_err(fail)?;
    let plan = plan(&view, &request.model, &key.key_id, &mut rand::thread_rng());
    if plan.targets.is_empty() {
        return Err(fail(ApiError::NoRoute(request.model.clone())));
    }
    let output_limit = request
        .max_output_tokens
        .unwrap_or(u64::from(model.details.max_output_tokens));
    // The price version in effect when the call starts is the one it is charged at.
    let price = model.price_at(started_at);
    // Hold an upper bound of the cost: every request byte a token, and the full output limit.
    let hold_amount = price.pricing.cost(BillableTokens {
        input: body.len() as u64,
        output: output_limit.saturating_mul(u64::from(request.n.unwrap_or(1).max(1))),
        ..BillableTokens::default()
    });
    // Calls that could not be recorded are not served: records wait for the store in the
    // spool, and past its bound (or on a failing disk) new calls are refused.
    if state.spool.is_full() {
        return Err(fail(ApiError::Unrecorded));
    }
    let hold = state
        .allowances
        .hold(&key.tenant_id, hold_amount)
        .await
        .map_err(|error| match error {
            AllowanceError::Insufficient => fail(ApiError::InsufficientBalance),
            AllowanceError::Unavailable(message) => {
                tracing::warn!(message, "allowance lease unavailable; call refused");
                fail(ApiError::StoreUnavailable)
            }
        })?;
    // The client's own JSON is needed only to relay it to an upstream of the same protocol.
    let relays = plan
        .targets
        .iter()
        .any(|t| same_dialect(&inbound, t.provider.config.protocol));
    let raw: Value = match relays {
        false => Value::Null,
        true if body.len() >= OFFLOAD_BYTES => {
            let body = body.clone();
            off_workers(move || serde_json::from_slice(&body).unwrap_or(Value::Null))
                .await
                .map_err(fail)?
        }
        true => serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let mut meter = Meter {
        state: state.clone(),
        request_id: id.id.clone(),
        client_ip: id.client_ip.clone(),
        tenant_id: key.tenant_id.clone(),
        key_id: key.key_id.clone(),
        model: request.model.clone(),
        inbound_protocol: dialect.as_str(),
        stream: request.stream,
        pricing: price.pricing,
        price_version: price.version,
        request_body: body.clone(),
        started,
        started_at,
        attempts: Vec::new(),
        rollout: plan.arm.clone(),
        hold,
    };
    let default_output = u64::from(model.details.max_output_tokens);
    let before_upstream = started.elapsed();

    // Attempts: before the first byte reaches the client, failures may retry or fall back.
    let mut last_error = UpstreamError::Connect;
    let mut answered = None;
    // Deployments whose provider refused the platform: trying them again cannot help.
    let mut refusing: Vec<&Target> = Vec::new();
    // The route's deadline for the whole call up to its first byte, every attempt included.
    let deadline = plan
        .retry
        .timeout_ms
        .map(|ms| started + std::time::Duration::from_millis(ms));
    for target in plan.attempts() {
        if refusing.iter().any(|r| same_deployment(r, target)) {
            continue;
        }
        let first_byte_timeout = match deadline {
            None => state.settings.upstream_first_byte_timeout,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    last_error = UpstreamError::Timeout;
                    break;
                }
                left.min(state.settings.upstream_first_byte_timeout)
            }
        };
        let attempt_started = Instant::now();
        let result = match &untranslatable {
            Some(reason) if !same_dialect(&inbound, target.provider.config.protocol) => {
                Err(Failure::Request(ApiError::BadRequest {
                    message: reason.to_string(),
                    param: reason.param().map(str::to_string),
                }))
            }
            _ => {
                let call = AttemptCall {
                    inbound: &inbound,
                    request: &request,
                    raw: &raw,
                    default_output,
                    first_byte_timeout,
                };
                attempt(state, target, call).await
            }
        };
        let latency_ms = attempt_started.elapsed().as_millis() as u64;
        let (status, error) = match &result {
            Ok(_) => (Some(200), None),
            Err(Failure::Upstream(error)) => (error.status(), Some(error.to_string())),
            Err(Failure::Request(error)) => (None, Some(error.to_string())),
        };
        meter.attempts.push(Attempt {
            provider: target.deployment.provider.clone(),
            upstream_model: target.deployment.upstream_model.clone(),
            status,
            error,
            latency_ms,
        });
        match result {
            Ok(answer) => {
                answered = Some((answer, target.provider.config.protocol));
                break;
            }
            // The request cannot be expressed for this upstream: say so, don't retry.
            Err(Failure::Request(error)) => {
                let status = error.status().as_u16();
                let _ = meter.finish(failed_outcome(status)).await;
                return Err(fail(error));
            }
            Err(Failure::Upstream(error)) => {
                if error.is_platform_fault() {
                    // The operator's to fix (credential, upstream model, base URL); the
                    // customer only learns that the model is unavailable.
                    tracing::warn!(
                        provider = %target.deployment.provider,
                        upstream_model = %target.deployment.upstream_model,
                        %error,
                        "the provider refused the platform"
                    );
                    refusing.push(target);
                }
                let retry = retries(&plan.retry.retry_on, &error);
                last_error = error;
                if !retry {
                    break;
                }
            }
        }
    }
    let Some((answer, protocol)) = answered else {
        let error = ApiError::Upstream(last_error);
        let _ = meter.finish(failed_outcome(error.status().as_u16())).await;
        return Err(fail(error));
    };
    let relayed = same_dialect(&inbound, protocol);
    let upstream_done = Instant::now();

    match answer {
        Answer::Stream(upstream) => {
            let plan = StreamPlan {
                decoder: outbound::stream_decoder(protocol, request.n.unwrap_or(1)),
                encoder: (!relayed)
                    .then(|| inbound.stream_encoder(&request, &id.id, &request.model)),
                inbound: inbound.clone(),
                request_id: id.id.clone(),
                public_model: request.model.clone(),
                include_usage: request.include_usage,
                idle_timeout: state.settings.upstream_idle_timeout,
                ping_every: (matches!(inbound, Inbound::Anthropic) && !relayed)
                    .then_some(state.settings.stream_ping_every),
            };
            let overhead = before_upstream + upstream_done.elapsed();
            let mut response = Response::new(relay(upstream, plan, meter));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            headers.insert(
                OVERHEAD_HEADER,
                HeaderValue::from(overhead.as_micros() as u64),
            );
            Ok(response)
        }
        Answer::Whole(bytes) => {
            let decoded = outbound::decode(protocol, &bytes);
            let (encoded, usage) = if relayed {
                // Same dialect: the upstream's body as it is, with the public model name.
                let usage = decoded.ok().and_then(|r| r.usage);
                let mut value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    if map.contains_key("model") {
                        map.insert("model".into(), Value::String(request.model.clone()));
                    }
                }
                (value, usage)
            } else {
                match decoded {
                    Ok(mut response) => {
                        response.model = request.model.clone();
                        let usage = response.usage;
                        (inbound.encode_response(&response, &request, &id.id), usage)
                    }
                    Err(error) => {
                        let error = ApiError::Upstream(error);
                        let _ = meter.finish(failed_outcome(error.status().as_u16())).await;
                        return Err(fail(error));
                    }
                }
            };
            let ttft_ms = Some(meter.started.elapsed().as_millis() as u64);
            // The record is durable before the answer leaves (a group-committed spool write).
            meter
                .finish(Outcome {
                    status: 200,
                    usage,
                    delivered: Default::default(),
                    ttft_ms,
                })
                .await
                .map_err(|_| fail(ApiError::Unrecorded))?;
            let overhead = before_upstream + upstream_done.elapsed();
            let mut response = (StatusCode::OK, Body::from(encoded.to_string())).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(
                OVERHEAD_HEADER,
                HeaderValue::from(overhead.as_micros() as u64),
            );
            Ok(response)
        }
    }
}

/// A decoded request: the dialect's client options, the canonical request and, for a body that
/// is valid in its own protocol but cannot be translated, why (it may still be relayed to an
/// upstream of the same protocol).
type Decoded = (Inbound, ChatRequest, Option<ApiError>);

fn decode(body: &[u8], dialect: Dialect, headers: &HeaderMap) -> Result<Decoded, ApiError> {
    match Inbound::decode(body, dialect, headers) {
        Ok((inbound, request)) => Ok((inbound, request, None)),
        Err(invalid) if invalid.untranslatable => {
            let (inbound, request) = decode_for_relay(body, dialect, headers)?;
            Ok((inbound, request, Some(bad_request(invalid))))
        }
        Err(invalid) => Err(bad_request(invalid)),
    }
}

fn failed_outcome(status: u16) -> Outcome {
    Outcome {
        status,
        usage: None,
        delivered: Default::default(),
        ttft_ms: None,
    }
}

fn same_deployment(a: &Target, b: &Target) -> bool {
    a.deployment.provider == b.deployment.provider
        && a.deployment.upstream_model == b.deployment.upstream_model
}

fn same_dialect(inbound: &Inbound, protocol: UpstreamProtocol) -> bool {
    matches!(
        (inbound, protocol),
        (Inbound::OpenAi, UpstreamProtocol::Openai)
            | (Inbound::Anthropic, UpstreamProtocol::Anthropic)
            | (Inbound::DashScope(_), UpstreamProtocol::Dashscope)
    )
}

enum Answer {
    /// A stream that started well (2xx, and no error before its first output).
    Stream(UpstreamStream),
    /// A whole body, already read and checked.
    Whole(Bytes),
}

enum Failure {
    /// The upstream failed; another attempt may help.
    Upstream(UpstreamError),
    /// The request cannot be sent to this upstream (e.g. `n` > 1 to Anthropic).
    Request(ApiError),
}

/// What one attempt sends, and how long it may wait for the upstream's first byte.
struct AttemptCall<'a> {
    inbound: &'a Inbound,
    request: &'a ChatRequest,
    raw: &'a Value,
    default_output: u64,
    first_byte_timeout: std::time::Duration,
}

/// One upstream attempt: encode (or relay) the request, send it, and for a whole response read
/// and check the body — MiniMax reports errors inside HTTP 200, and those may still retry.
async fn attempt(
    state: &AppState,
    target: &Target,
    call: AttemptCall<'_>,
) -> Result<Answer, Failure> {
    let AttemptCall {
        inbound,
        request,
        raw,
        default_output,
        first_byte_timeout,
    } = call;
    let provider = &target.provider;
    let protocol = provider.config.protocol;
    let upstream_model = &target.deployment.upstream_model;
    let credential = provider
        .credential
        .as_deref()
        .ok_or(UpstreamError::Credential)
        .and_then(|sealed| {
            state
                .master_key
                .open(sealed)
                .map_err(|_| UpstreamError::Credential)
        })
        .map_err(Failure::Upstream)?;
    let (body, path) = if same_dialect(inbound, protocol) {
        (
            relay_body(inbound, raw, upstream_model, request.stream),
            upstream::adapter(protocol).chat_path(),
        )
    } else {
        let mut request = request.clone();
        if request.max_output_tokens.is_none() && protocol == UpstreamProtocol::Anthropic {
            request.max_output_tokens = Some(default_output);
        }
        let encoded =
            outbound::encode(protocol, &request, upstream_model).map_err(Failure::Request)?;
        (encoded.body, encoded.path)
    };
    let call = Call {
        path,
        body: &body,
        stream: request.stream,
    };
    let response = upstream::send(
        &state.http,
        protocol,
        &provider.config.base_url,
        &credential,
        call,
        first_byte_timeout,
    )
    .await
    .map_err(Failure::Upstream)?;
    if request.stream {
        let choices = request.n.unwrap_or(1);
        return open(
            response,
            protocol,
            choices,
            state.settings.upstream_idle_timeout,
        )
        .await
        .map(Answer::Stream)
        .map_err(Failure::Upstream);
    }
    let bytes = tokio::time::timeout(state.settings.upstream_idle_timeout, response.bytes())
        .await
        .map_err(|_| Failure::Upstream(UpstreamError::Timeout))?
        .map_err(|e| Failure::Upstream(crate::upstream::classify(e)))?;
    // Decoding here lets errors hidden in a 200 (MiniMax) count as failed attempts.
    outbound::decode(protocol, &bytes).map_err(Failure::Upstream)?;
    Ok(Answer::Whole(bytes))
}

/// A same-dialect request as the upstream should get it: the client's body with the upstream
/// model name (and, for OpenAI streams, usage requested so every call can be metered).
fn relay_body(inbound: &Inbound, raw: &Value, upstream_model: &str, stream: bool) -> Value {
    match inbound {
        Inbound::OpenAi => to_upstream_request(raw.clone(), upstream_model, stream),
        Inbound::Anthropic | Inbound::DashScope(_) => {
            let mut body = raw.clone();
            if let Value::Object(map) = &mut body {
                map.insert("model".into(), Value::String(upstream_model.to_string()));
            }
            body
        }
    }
}

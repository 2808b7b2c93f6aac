//! `POST /v1/chat/completions` for OpenAI-compatible upstreams.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::Utc;
use modelrouter_domain::inference::Attempt;
use modelrouter_domain::money::BillableTokens;
use modelrouter_domain::provider::UpstreamProtocol;
use serde_json::Value;

use super::auth::authenticate;
use super::metering::{Meter, Outcome};
use super::relay::{relay, RelayOptions};
use super::{ApiError, AppState, RequestId};
use crate::allowance::AllowanceError;
use crate::protocol::openai::{parse_chat_request, to_upstream_request, usage_from};
use crate::routing::{plan, Target};
use crate::upstream::{self, Call, UpstreamError};

const OVERHEAD_HEADER: &str = "x-modelrouter-overhead-us";

pub async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(RequestId {
        id: request_id,
        client_ip,
    }): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let started_at = Utc::now();
    let view = state.live.view_full();
    let key = authenticate(&view, &headers)?.clone();
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge(state.settings.max_body_bytes)
        } else {
            ApiError::BadRequest {
                message: format!("The request body could not be read: {rejection}"),
                param: None,
            }
        }
    })?;
    let (request, info) = parse_chat_request(&body).map_err(|invalid| ApiError::BadRequest {
        message: invalid.message,
        param: invalid.param,
    })?;
    let model = view
        .models
        .get(&info.model)
        .filter(|m| !m.retired && view.routes.contains_key(&info.model))
        .ok_or_else(|| ApiError::ModelNotFound(info.model.clone()))?;
    if !key.scope.allows(&info.model) {
        return Err(ApiError::ModelNotAllowed(info.model.clone()));
    }
    let targets = plan(&view, &info.model, &mut rand::thread_rng());
    let max_attempts = view
        .routes
        .get(&info.model)
        .map_or(1, |r| r.retry.max_attempts as usize);
    if targets.is_empty() {
        return Err(ApiError::NoRoute(info.model.clone()));
    }

    // Hold an upper bound of the cost: every request byte a token, and the full output limit.
    let output_limit = info
        .max_output_tokens
        .unwrap_or(u64::from(model.details.max_output_tokens));
    let hold_amount = model.pricing.cost(BillableTokens {
        input: body.len() as u64,
        output: output_limit.saturating_mul(info.n),
        ..BillableTokens::default()
    });
    let hold = state
        .allowances
        .hold(&key.tenant_id, hold_amount)
        .await
        .map_err(|error| match error {
            AllowanceError::Insufficient => ApiError::InsufficientBalance,
            AllowanceError::Store(message) => {
                tracing::error!(message, "allowance lease failed");
                ApiError::Internal
            }
        })?;

    let mut meter = Meter {
        state: state.clone(),
        request_id,
        client_ip,
        tenant_id: key.tenant_id.clone(),
        key_id: key.key_id.clone(),
        model: info.model.clone(),
        stream: info.stream,
        pricing: model.pricing,
        price_version: model.price_version,
        request_bytes: body.len(),
        started,
        started_at,
        attempts: Vec::new(),
        hold,
    };

    let before_upstream = started.elapsed();
    let upstream_started = Instant::now();
    let mut last_error = UpstreamError::Connect;
    let mut answered = None;
    for target in targets.iter().cycle().take(max_attempts.max(1)) {
        let attempt_started = Instant::now();
        let result = call(&state, target, &request, info.stream).await;
        let latency_ms = attempt_started.elapsed().as_millis() as u64;
        let (status, error) = match &result {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (error.status(), Some(error.to_string())),
        };
        meter.attempts.push(Attempt {
            provider: target.deployment.provider.clone(),
            upstream_model: target.deployment.upstream_model.clone(),
            status,
            error,
            latency_ms,
        });
        match result {
            Ok(response) => {
                answered = Some(response);
                break;
            }
            Err(error) => {
                let retry = error.retryable();
                last_error = error;
                if !retry {
                    break;
                }
            }
        }
    }
    let Some(upstream) = answered else {
        return Err(failed(meter, ApiError::Upstream(last_error)).await);
    };
    let upstream_wait = upstream_started.elapsed();

    if info.stream {
        let options = RelayOptions {
            public_model: info.model.clone(),
            include_usage: info.include_usage,
            idle_timeout: state.settings.upstream_idle_timeout,
        };
        let overhead = before_upstream + (upstream_started.elapsed() - upstream_wait);
        let mut response = Response::new(relay(upstream, options, meter));
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
        return Ok(response);
    }

    let read = tokio::time::timeout(state.settings.upstream_idle_timeout, upstream.bytes()).await;
    let body_read = Instant::now();
    let parsed = match read {
        Ok(Ok(bytes)) => serde_json::from_slice::<Value>(&bytes).ok(),
        _ => None,
    };
    let Some(mut answer) = parsed.filter(Value::is_object) else {
        let error = ApiError::Upstream(UpstreamError::Transport("unreadable response".into()));
        return Err(failed(meter, error).await);
    };
    let usage = answer.get("usage").and_then(usage_from);
    answer["model"] = Value::String(info.model.clone());
    let ttft_ms = Some(meter.started.elapsed().as_millis() as u64);
    let encoded = serde_json::to_vec(&answer).map_err(|_| ApiError::Internal)?;
    // Metering is handed off: the response never waits for the appender's queue.
    tokio::spawn(meter.finish(Outcome {
        status: 200,
        usage,
        delivered_chars: 0,
        ttft_ms,
    }));
    let overhead = before_upstream + body_read.elapsed();
    let mut response = (StatusCode::OK, Body::from(encoded)).into_response();
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

/// Meters a call that failed before any output (no charge) and returns its error.
async fn failed(meter: Meter, error: ApiError) -> ApiError {
    meter
        .finish(Outcome {
            status: error.status().as_u16(),
            usage: None,
            delivered_chars: 0,
            ttft_ms: None,
        })
        .await;
    error
}

/// One upstream attempt.
async fn call(
    state: &AppState,
    target: &Target,
    request: &Value,
    stream: bool,
) -> Result<reqwest::Response, UpstreamError> {
    let provider = &target.provider;
    let credential = provider
        .credential
        .as_deref()
        .ok_or(UpstreamError::Credential)
        .and_then(|sealed| {
            state
                .master_key
                .open(sealed)
                .map_err(|_| UpstreamError::Credential)
        })?;
    match provider.config.protocol {
        UpstreamProtocol::Openai => {
            let body =
                to_upstream_request(request.clone(), &target.deployment.upstream_model, stream);
            let call = Call {
                path: upstream::adapter(UpstreamProtocol::Openai).chat_path(),
                body: &body,
                stream,
            };
            upstream::send(
                &state.http,
                UpstreamProtocol::Openai,
                &provider.config.base_url,
                &credential,
                call,
                state.settings.upstream_first_byte_timeout,
            )
            .await
        }
        other => Err(UpstreamError::Unsupported(other.as_str())),
    }
}

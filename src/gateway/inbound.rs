//! The customer-facing dialects: how each decodes a request and renders a response, a stream and
//! an error. Errors are rebuilt in the caller's envelope; an upstream's body is never forwarded.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::ApiError;
use crate::protocol::canonical::{ChatRequest, ChatResponse, Dialect, InvalidRequest};
use crate::protocol::dashscope::DashScopeOptions;
use crate::protocol::{anthropic, dashscope, openai, sse, StreamEncoder};

/// The dialect a request arrived in, with what that dialect's client chose beyond the canonical
/// model.
#[derive(Debug, Clone)]
pub enum Inbound {
    OpenAi,
    Anthropic,
    DashScope(DashScopeOptions),
}

pub fn bad_request(invalid: InvalidRequest) -> ApiError {
    ApiError::BadRequest {
        message: invalid.message,
        param: invalid.param,
    }
}

impl Inbound {
    /// Decodes a request body in this dialect. DashScope reads streaming from the headers.
    pub fn decode(
        body: &[u8],
        dialect: Dialect,
        headers: &HeaderMap,
    ) -> Result<(Inbound, ChatRequest), InvalidRequest> {
        match dialect {
            Dialect::Anthropic => anthropic::decode_request(body).map(|r| (Inbound::Anthropic, r)),
            Dialect::Dashscope => {
                let stream = dashscope_wants_stream(headers);
                dashscope::decode_request(body, stream)
                    .map(|(r, options)| (Inbound::DashScope(options), r))
            }
            Dialect::Openai | Dialect::Minimax => {
                openai::decode_request(body).map(|r| (Inbound::OpenAi, r))
            }
        }
    }

    /// The error in this dialect's envelope and status.
    pub fn error_response(&self, error: &ApiError, request_id: &str) -> Response {
        let status = error.status().as_u16();
        let message = error.to_string();
        let (status, body) = match self {
            Inbound::OpenAi => (status, error.to_json()),
            Inbound::Anthropic => (status, anthropic::error_body(status, &message, request_id)),
            Inbound::DashScope(_) => dashscope::error_body(status, &message, request_id),
        };
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, Json(body)).into_response();
        let retry = if error.should_retry() {
            "true"
        } else {
            "false"
        };
        response
            .headers_mut()
            .insert("x-should-retry", HeaderValue::from_static(retry));
        if let Some(seconds) = error.retry_after() {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }

    /// A whole response in this dialect.
    pub fn encode_response(
        &self,
        response: &ChatResponse,
        request: &ChatRequest,
        request_id: &str,
    ) -> Value {
        match self {
            Inbound::OpenAi => openai::encode_response(response, request),
            Inbound::Anthropic => anthropic::encode_response(response, request),
            Inbound::DashScope(options) => {
                dashscope::encode_response(response, request, options, request_id)
            }
        }
    }

    /// A stream encoder for this dialect's client.
    pub fn stream_encoder(
        &self,
        request: &ChatRequest,
        request_id: &str,
        public_model: &str,
    ) -> Box<dyn StreamEncoder> {
        match self {
            Inbound::OpenAi => Box::new(openai::OpenAiStreamEncoder::new(
                format!("chatcmpl-{}", request_id.trim_start_matches("req_")),
                public_model.to_string(),
                chrono::Utc::now().timestamp(),
                request.include_usage,
            )),
            Inbound::Anthropic => Box::new(anthropic::AnthropicStreamEncoder::new(
                anthropic::message_id(request_id),
                public_model.to_string(),
            )),
            Inbound::DashScope(options) => Box::new(dashscope::DashScopeStreamEncoder::new(
                request_id.to_string(),
                *options,
            )),
        }
    }

    /// One in-band error frame, for a relayed (same-dialect) stream that failed midway.
    pub fn stream_error_frame(&self, error: &ApiError, request_id: &str) -> String {
        let status = error.status().as_u16();
        let message = error.to_string();
        match self {
            Inbound::OpenAi => format!("data: {}\n\n", error.to_json()),
            Inbound::Anthropic => sse::frame(
                &sse::SseEvent {
                    event: Some("error".into()),
                    data: anthropic::stream_error_body(status, &message).to_string(),
                    ..Default::default()
                },
                true,
            ),
            Inbound::DashScope(_) => {
                let (status, body) = dashscope::error_body(status, &message, request_id);
                sse::frame(
                    &sse::SseEvent {
                        event: Some("error".into()),
                        data: body.to_string(),
                        status: Some(status),
                        id: None,
                    },
                    false,
                )
            }
        }
    }
}

/// Reads just what routing, holds and relaying need from a body that is valid in its own
/// protocol but cannot be translated (`InvalidRequest::untranslatable`: Anthropic server tools
/// or documents, DashScope token-id stops), so it can still be relayed as-is to an upstream of
/// the same protocol. What the gateway reads is checked exactly as the full decoder checks it.
pub fn decode_for_relay(
    body: &[u8],
    dialect: Dialect,
    headers: &HeaderMap,
) -> Result<(Inbound, ChatRequest), ApiError> {
    match dialect {
        Dialect::Anthropic => {
            // The full decoder checked `model`, `messages` and `max_tokens` before it met what
            // it cannot translate.
            let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
                message: format!("The request body is not valid JSON: {e}"),
                param: None,
            })?;
            let request = ChatRequest {
                model: value["model"].as_str().unwrap_or_default().to_string(),
                max_output_tokens: value["max_tokens"].as_u64(),
                stream: value["stream"].as_bool().unwrap_or(false),
                include_usage: true,
                ..ChatRequest::default()
            };
            Ok((Inbound::Anthropic, request))
        }
        Dialect::Dashscope => {
            dashscope::decode_relayed_request(body, dashscope_wants_stream(headers))
                .map(|(request, options)| (Inbound::DashScope(options), request))
                .map_err(bad_request)
        }
        Dialect::Openai | Dialect::Minimax => Err(ApiError::Internal),
    }
}

/// DashScope streams are switched on by headers, not the body.
pub fn dashscope_wants_stream(headers: &HeaderMap) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    header("x-dashscope-sse").eq_ignore_ascii_case("enable")
        || header("accept").contains("text/event-stream")
}

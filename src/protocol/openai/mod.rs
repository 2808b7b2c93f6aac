//! OpenAI Chat Completions (protocols.md §1): the canonical codec (request, response, stream,
//! both directions) and the passthrough helpers the gateway uses when client and upstream both
//! speak OpenAI. Pure: no I/O.
//!
//! For passthrough, requests stay `serde_json::Value` so that fields this gateway does not know
//! reach an OpenAI-compatible upstream unchanged; only what the gateway needs is read out.
//! Across dialects, [`decode_request`]/[`encode_request`], [`decode_response`]/[`encode_response`],
//! [`OpenAiStreamDecoder`] and [`OpenAiStreamEncoder`] go through the canonical model.

mod error;
mod request_decode;
mod request_encode;
mod response;
mod stream_decode;
mod stream_encode;
mod tools;
pub mod wire;

#[cfg(test)]
pub(crate) mod codec_tests;

pub use error::{error_payload, error_type_for_status};
pub(crate) use error::{message_of_error, status_of_error};
pub use request_decode::decode_request;
pub use request_encode::encode_request;
pub(crate) use request_encode::{build_request, ReasoningReplay};
pub use response::{
    completion_id, decode_response, encode_response, finish_reason_str, usage_json,
};
pub(crate) use response::{finish_for, message_parts, reasoning_parts};
pub use stream_decode::OpenAiStreamDecoder;
pub use stream_encode::OpenAiStreamEncoder;

use modelrouter_domain::inference::Usage;
use serde::Serialize;
use serde_json::{json, Value};

/// What the gateway needs to know of a chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequestInfo {
    pub model: String,
    pub stream: bool,
    /// Whether the client asked for the final usage chunk.
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_output_tokens: Option<u64>,
    pub n: u64,
}

/// A request the gateway refuses before any upstream is asked, with the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<&'static str>,
}

fn invalid(message: impl Into<String>, param: &'static str) -> InvalidRequest {
    InvalidRequest {
        message: message.into(),
        param: Some(param),
    }
}

/// Parses and checks a chat request body.
pub fn parse_chat_request(body: &[u8]) -> Result<(Value, ChatRequestInfo), InvalidRequest> {
    let value: Value = serde_json::from_slice(body).map_err(|e| InvalidRequest {
        message: format!("The request body is not valid JSON: {e}"),
        param: None,
    })?;
    let Value::Object(map) = &value else {
        return Err(InvalidRequest {
            message: "The request body must be a JSON object.".into(),
            param: None,
        });
    };
    let model = match map.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        Some(_) => return Err(invalid("'model' must be a non-empty string.", "model")),
        None => return Err(invalid("Missing required parameter: 'model'.", "model")),
    };
    match map.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => {
            for (i, message) in messages.iter().enumerate() {
                let role = message.get("role").and_then(Value::as_str);
                if !matches!(
                    role,
                    Some("system" | "developer" | "user" | "assistant" | "tool" | "function")
                ) {
                    return Err(invalid(
                        format!("'messages[{i}].role' must be one of system, developer, user, assistant, tool."),
                        "messages",
                    ));
                }
            }
        }
        Some(Value::Array(_)) => {
            return Err(invalid(
                "'messages' must contain at least one message.",
                "messages",
            ))
        }
        Some(_) => return Err(invalid("'messages' must be an array.", "messages")),
        None => {
            return Err(invalid(
                "Missing required parameter: 'messages'.",
                "messages",
            ))
        }
    }
    let stream = match map.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(invalid("'stream' must be a boolean.", "stream")),
    };
    let include_usage = map
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let limit = |field: &'static str| -> Result<Option<u64>, InvalidRequest> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(invalid(
                    format!("'{field}' must be a positive integer."),
                    field,
                )),
            },
        }
    };
    let max_output_tokens = match limit("max_completion_tokens")? {
        Some(n) => Some(n),
        None => limit("max_tokens")?,
    };
    let n = match map.get("n") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=128) => n,
            _ => return Err(invalid("'n' must be an integer from 1 to 128.", "n")),
        },
    };
    Ok((
        value.clone(),
        ChatRequestInfo {
            model,
            stream,
            include_usage,
            max_output_tokens,
            n,
        },
    ))
}

/// Prepares a request for an OpenAI-compatible upstream: the upstream's model name, and stream
/// usage always requested so every call can be metered.
pub fn to_upstream_request(mut request: Value, upstream_model: &str, stream: bool) -> Value {
    if let Value::Object(map) = &mut request {
        map.insert("model".into(), Value::String(upstream_model.to_string()));
        if stream {
            let options = map.entry("stream_options").or_insert_with(|| json!({}));
            if let Value::Object(options) = options {
                options.insert("include_usage".into(), Value::Bool(true));
            } else {
                *options = json!({"include_usage": true});
            }
        }
    }
    request
}

/// Reads an OpenAI `usage` object into canonical usage (protocols.md §5.3). Absent fields stay
/// absent.
pub fn usage_from(value: &Value) -> Option<Usage> {
    let usage = value.as_object()?;
    let number = |v: Option<&Value>| v.and_then(Value::as_u64);
    Some(Usage {
        input_total: number(usage.get("prompt_tokens")),
        cache_read: number(
            usage
                .get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens")),
        ),
        cache_write: number(
            usage
                .get("prompt_tokens_details")
                .and_then(|d| d.get("cache_write_tokens")),
        ),
        output_total: number(usage.get("completion_tokens")),
        reasoning: number(
            usage
                .get("completion_tokens_details")
                .and_then(|d| d.get("reasoning_tokens")),
        ),
        estimated: false,
    })
}

/// The message of an upstream's OpenAI-style error body, if it has one.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?;
    Some(message.chars().take(500).collect())
}

/// The OpenAI error envelope.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_are_named() {
        let err = parse_chat_request(br#"{"messages":[{"role":"user","content":"hi"}]}"#)
            .expect_err("refused");
        assert_eq!(err.param, Some("model"));
        let err = parse_chat_request(br#"{"model":"m"}"#).expect_err("refused");
        assert_eq!(err.param, Some("messages"));
        let err = parse_chat_request(b"{not json").expect_err("refused");
        assert!(err.message.contains("not valid JSON"));
    }

    #[test]
    fn upstream_request_keeps_unknown_fields_and_asks_for_usage() {
        let body = br#"{"model":"acc-gpt","messages":[{"role":"user","content":"hi"}],
            "stream":true,"seed":7,"vendor_extension":{"a":1}}"#;
        let (value, info) = parse_chat_request(body).expect("valid");
        assert!(info.stream && !info.include_usage);
        let upstream = to_upstream_request(value, "upstream-gpt", true);
        assert_eq!(upstream["model"], "upstream-gpt");
        assert_eq!(upstream["stream_options"]["include_usage"], true);
        assert_eq!(upstream["seed"], 7);
        assert_eq!(upstream["vendor_extension"]["a"], 1);
    }

    #[test]
    fn usage_keeps_absent_fields_absent() {
        let usage = usage_from(&json!({"prompt_tokens": 12, "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 4}}))
        .expect("usage");
        assert_eq!(usage.input_total, Some(12));
        assert_eq!(usage.cache_read, Some(4));
        assert_eq!(usage.reasoning, None);
    }
}

//! The mock's `POST /v1/chat/completions`: request validation, the deterministic reply
//! (`"Mock reply to: <last user text>"`, or a tool call), usage counting and the non-streaming
//! response. Streaming responses are framed in `stream`.
//!
//! Usage is counted in words: `prompt_tokens` is the sum over all messages of (the number of
//! whitespace-separated words of its text + 3); `completion_tokens` is the number of reply words
//! emitted (3 for a tool call: the name and two argument fragments).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::faults::{error_response, fault_response, Directives};
use super::{auth_failure, authorization, stream, AppState};

/// The id of the mock's only tool call.
pub(super) const TOOL_CALL_ID: &str = "call_mock_1";
/// The arguments of the mock's tool call, as streamed: two fragments.
pub(super) const TOOL_ARGUMENT_FRAGMENTS: [&str; 2] = ["{\"city\":", "\"Paris\"}"];
/// The completion tokens a tool call counts as.
const TOOL_CALL_TOKENS: u64 = 3;
/// Prompt tokens added per message on top of its words.
const TOKENS_PER_MESSAGE: u64 = 3;

/// What the mock answers.
#[derive(Debug)]
pub(super) enum Reply {
    /// Text, as the words to emit (already capped by the token limit).
    Text {
        words: Vec<String>,
        finish_reason: &'static str,
    },
    /// A call to the request's first tool.
    ToolCall { name: String },
}

/// Token usage, in words.
#[derive(Clone, Copy, Debug)]
pub(super) struct Usage {
    pub prompt: u64,
    pub completion: u64,
}

impl Usage {
    pub fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": { "cached_tokens": 0 },
        })
    }
}

/// Everything needed to answer one valid chat request.
#[derive(Debug)]
pub(super) struct Plan {
    pub id: String,
    pub created: i64,
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub directives: Directives,
    /// The raw text of the last user message: the key of the `fail_first` counter.
    pub last_user_text: String,
    pub reply: Reply,
    pub usage: Usage,
}

pub(super) async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = authorization(&headers);
    let parsed = serde_json::from_slice::<Value>(&body);
    let logged = match &parsed {
        Ok(value) => value.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    state.record(authorization.as_deref(), logged);
    if let Some(response) = auth_failure(&state.config, authorization.as_deref()) {
        return response;
    }
    let Ok(request) = parsed else {
        return invalid_request("We could not parse the JSON body of your request.", None);
    };
    let plan = match Plan::new(&request) {
        Ok(plan) => plan,
        Err(invalid) => return invalid_request(invalid.message, Some(invalid.param)),
    };
    if plan.directives.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(plan.directives.delay_ms)).await;
    }
    if let Some(n) = plan.directives.fail_first {
        if state.fail_counts.should_fail(&plan.last_user_text, n) {
            return fault_response(StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
    if let Some(status) = plan.directives.status {
        return fault_response(status);
    }
    if plan.stream {
        stream::respond(plan)
    } else {
        Json(plan.completion()).into_response()
    }
}

fn invalid_request(message: &str, param: Option<&str>) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        None,
        param,
    )
}

/// Why a request is invalid: the 400 to send.
#[derive(Debug)]
pub(super) struct InvalidParam {
    message: &'static str,
    param: &'static str,
}

impl Plan {
    /// Validates the request and decides the reply.
    pub fn new(request: &Value) -> Result<Self, InvalidParam> {
        let Some(model) = request.get("model").and_then(Value::as_str) else {
            return Err(InvalidParam {
                message: "You must provide a model parameter ('model').",
                param: "model",
            });
        };
        let messages = match request.get("messages").and_then(Value::as_array) {
            Some(messages) if !messages.is_empty() => messages,
            Some(_) => {
                return Err(InvalidParam {
                    message: "Invalid 'messages': expected a non-empty array.",
                    param: "messages",
                })
            }
            None => {
                return Err(InvalidParam {
                    message: "Missing required parameter: 'messages'.",
                    param: "messages",
                })
            }
        };
        let prompt = messages
            .iter()
            .map(|message| word_count(&message_text(message)) + TOKENS_PER_MESSAGE)
            .sum();
        let last_user_text = messages
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
            .map(message_text)
            .unwrap_or_default();
        let (directives, echoed) = Directives::parse(&last_user_text);
        let first_tool = request
            .get("tools")
            .and_then(Value::as_array)
            .and_then(|tools| tools.first());
        let reply = match first_tool {
            Some(tool) if directives.tool_call => Reply::ToolCall {
                name: tool_name(tool).to_owned(),
            },
            _ => text_reply(&directives, &echoed, token_limit(request)),
        };
        let completion = match &reply {
            Reply::Text { words, .. } => words.len() as u64,
            Reply::ToolCall { .. } => TOOL_CALL_TOKENS,
        };
        Ok(Self {
            id: format!("chatcmpl-mock-{}", uuid::Uuid::new_v4().simple()),
            created: chrono::Utc::now().timestamp(),
            model: model.to_owned(),
            stream: request.get("stream").and_then(Value::as_bool) == Some(true),
            include_usage: request
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true),
            directives,
            last_user_text,
            reply,
            usage: Usage { prompt, completion },
        })
    }

    /// The non-streaming `chat.completion` body.
    pub fn completion(&self) -> Value {
        let (message, finish_reason) = match &self.reply {
            Reply::Text {
                words,
                finish_reason,
            } => (
                json!({ "role": "assistant", "content": words.join(" ") }),
                *finish_reason,
            ),
            Reply::ToolCall { name } => (
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "id": TOOL_CALL_ID,
                        "type": "function",
                        "function": { "name": name, "arguments": TOOL_ARGUMENT_FRAGMENTS.concat() },
                    }],
                }),
                "tool_calls",
            ),
        };
        let mut body = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if !self.directives.no_usage {
            body["usage"] = self.usage.to_json();
        }
        body
    }
}

/// The text of a message: its string content, or the concatenation of its `text` parts.
fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The cap on reply words: `max_completion_tokens`, else `max_tokens`.
fn token_limit(request: &Value) -> Option<u64> {
    request
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| request.get("max_tokens").and_then(Value::as_u64))
}

/// A tool's name (Chat Completions nests it under `function`); `tool` when it has none.
fn tool_name(tool: &Value) -> &str {
    tool.pointer("/function/name")
        .or_else(|| tool.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("tool")
}

fn text_reply(directives: &Directives, echoed: &str, limit: Option<u64>) -> Reply {
    let mut words: Vec<String> = match directives.words {
        Some(n) => (1..=n).map(|i| format!("w{i}")).collect(),
        None => format!("Mock reply to: {echoed}")
            .trim()
            .split(' ')
            .map(str::to_owned)
            .collect(),
    };
    let limit = limit.map_or(usize::MAX, |limit| {
        usize::try_from(limit).unwrap_or(usize::MAX)
    });
    let finish_reason = if words.len() > limit {
        words.truncate(limit);
        "length"
    } else {
        "stop"
    };
    Reply::Text {
        words,
        finish_reason,
    }
}

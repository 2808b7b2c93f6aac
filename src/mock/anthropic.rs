//! The mock's Anthropic Messages API (protocols.md §2): `POST /v1/messages`, streaming or not,
//! and `POST /v1/messages/count_tokens`. Streams are framed in `anthropic_stream`.
//!
//! - Auth: `x-api-key` or `Authorization: Bearer` (the `x-api-key` wins when both are sent);
//!   `anthropic-version` is accepted with any value, or none.
//! - `model`, `max_tokens` and a non-empty `messages` are required (400 otherwise).
//! - The top-level `system` counts as one message for input usage; `tool_result` text counts
//!   toward its message. The echoed text is that of the last user message with text blocks, so
//!   a user turn of only tool results does not replace it.
//! - Content blocks: `thinking` (with `[mock:thinking]`: "Thinking about it.", signature
//!   `sig-mock-1`), then `text`, or `tool_use` (`toolu_mock_1`, input `{"city":"Paris"}`). An
//!   empty text (`max_tokens: 0`) sends no text block.
//! - `stop_reason`: `end_turn`, `max_tokens`, `tool_use`.
//! - Usage `{input_tokens, cache_creation_input_tokens: 0, cache_read_input_tokens,
//!   output_tokens}`: `[mock:cache_read=N]` moves N tokens from `input_tokens` (which excludes
//!   cache, as Anthropic's does) to `cache_read_input_tokens`; `output_tokens` includes thinking.
//!   `[mock:no_usage]` drops usage everywhere.
//! - Errors: `{"type":"error","error":{"type","message"},"request_id"}` with the §2 status
//!   table (529 → `overloaded_error`); every response carries a `request-id` header.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::reply::TOOL_ARGUMENT_FRAGMENTS;
use super::reply::{content_text, first_tool, message_tokens, Answer, Ending, Reply};
use super::{anthropic_stream, bearer_token, check_key, header_text, AppState, KeyProblem};

/// The id of the mock's only `tool_use` block.
pub(super) const TOOL_USE_ID: &str = "toolu_mock_1";
/// The signature of the mock's thinking block.
pub(super) const THINKING_SIGNATURE: &str = "sig-mock-1";

/// Everything needed to answer one valid Messages request.
#[derive(Debug)]
pub(super) struct Plan {
    pub id: String,
    pub request_id: String,
    pub model: String,
    pub stream: bool,
    pub answer: Answer,
}

pub(super) async fn messages(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_request_id();
    let parsed = state.record(uri.path(), &headers, &body);
    if let Err(problem) = check_key(&state.config, api_key(&headers).as_deref()) {
        return auth_error(problem, &request_id);
    }
    let planned = parsed.as_ref().ok_or(NOT_JSON).and_then(|request| {
        let conversation = Conversation::read(request, true)?;
        Ok(Plan::new(request, conversation, request_id.clone()))
    });
    let plan = match planned {
        Ok(plan) => plan,
        Err(message) => return error(StatusCode::BAD_REQUEST, message, &request_id),
    };
    if let Some(status) = plan.answer.scripted_fault(&state.fail_counts).await {
        return error(
            status,
            &format!("mock fault {}", status.as_u16()),
            &request_id,
        );
    }
    if plan.stream {
        return anthropic_stream::respond(plan);
    }
    with_request_id(Json(plan.message()).into_response(), &request_id)
}

pub(super) async fn count_tokens(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_request_id();
    let parsed = state.record(uri.path(), &headers, &body);
    if let Err(problem) = check_key(&state.config, api_key(&headers).as_deref()) {
        return auth_error(problem, &request_id);
    }
    match parsed
        .as_ref()
        .ok_or(NOT_JSON)
        .and_then(|request| Conversation::read(request, false))
    {
        Ok(conversation) => with_request_id(
            Json(json!({ "input_tokens": conversation.input })).into_response(),
            &request_id,
        ),
        Err(message) => error(StatusCode::BAD_REQUEST, message, &request_id),
    }
}

const NOT_JSON: &str = "The request body is not valid JSON.";

/// What the content model needs from a Messages request.
struct Conversation {
    model: String,
    max_tokens: Option<u64>,
    input: u64,
    last_user_text: String,
}

impl Conversation {
    /// Reads and validates a request; `max_tokens` is required except for `count_tokens`.
    fn read(request: &Value, needs_max_tokens: bool) -> Result<Self, &'static str> {
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .ok_or("model: Field required")?;
        let max_tokens = request.get("max_tokens").and_then(Value::as_u64);
        if needs_max_tokens && max_tokens.is_none() {
            return Err("max_tokens: Field required");
        }
        let messages = match request.get("messages").and_then(Value::as_array) {
            Some(messages) if !messages.is_empty() => messages,
            Some(_) => return Err("messages: at least one message is required"),
            None => return Err("messages: Field required"),
        };
        let system = request
            .get("system")
            .map_or(0, |system| message_tokens(&content_text(Some(system))));
        let input = system
            + messages
                .iter()
                .map(|message| message_tokens(&counted_text(message)))
                .sum::<u64>();
        let last_user_text = messages
            .iter()
            .rev()
            .filter(|message| message.get("role").and_then(Value::as_str) == Some("user"))
            .map(|message| content_text(message.get("content")))
            .find(|text| !text.is_empty())
            .unwrap_or_default();
        Ok(Self {
            model: model.to_owned(),
            max_tokens,
            input,
            last_user_text,
        })
    }

    fn answer(self, request: &Value) -> Answer {
        Answer::new(
            self.input,
            self.last_user_text,
            first_tool(request.get("tools")),
            self.max_tokens,
        )
    }
}

/// The text a message counts for: its text blocks, then the text of its tool results.
fn counted_text(message: &Value) -> String {
    let mut text = content_text(message.get("content"));
    if let Some(blocks) = message.get("content").and_then(Value::as_array) {
        for block in blocks {
            if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                text.push(' ');
                text.push_str(&content_text(block.get("content")));
            }
        }
    }
    text
}

impl Plan {
    fn new(request: &Value, conversation: Conversation, request_id: String) -> Self {
        Self {
            id: format!("msg_mock_{}", uuid::Uuid::new_v4().simple()),
            request_id,
            model: conversation.model.clone(),
            stream: request.get("stream").and_then(Value::as_bool) == Some(true),
            answer: conversation.answer(request),
        }
    }

    /// The whole message, as a non-streaming response.
    pub fn message(&self) -> Value {
        let stop_reason = json!(self.stop_reason());
        self.envelope(self.content(), stop_reason, self.answer.usage.output)
    }

    /// The message of `message_start`: no content or stop reason yet, input usage and
    /// `output_tokens: 1`.
    pub fn start_message(&self) -> Value {
        self.envelope(json!([]), Value::Null, 1)
    }

    fn envelope(&self, content: Value, stop_reason: Value, output_tokens: u64) -> Value {
        let mut message = json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
        });
        if !self.answer.directives.no_usage {
            message["usage"] = self.usage_json(output_tokens);
        }
        message
    }

    /// The content blocks of the whole answer.
    fn content(&self) -> Value {
        let mut blocks = Vec::new();
        if let Some(thinking) = self.answer.thinking() {
            blocks.push(json!({ "type": "thinking", "thinking": thinking, "signature": THINKING_SIGNATURE }));
        }
        match &self.answer.reply {
            Reply::Text { words, .. } if words.is_empty() => {}
            Reply::Text { .. } => {
                blocks.push(json!({ "type": "text", "text": self.answer.text() }))
            }
            Reply::ToolCall { name } => {
                let input: Value = serde_json::from_str(&TOOL_ARGUMENT_FRAGMENTS.concat())
                    .unwrap_or_else(|_| json!({}));
                blocks.push(
                    json!({ "type": "tool_use", "id": TOOL_USE_ID, "name": name, "input": input }),
                );
            }
        }
        Value::Array(blocks)
    }

    pub fn stop_reason(&self) -> &'static str {
        match self.answer.ending() {
            Ending::Stop => "end_turn",
            Ending::Length => "max_tokens",
            Ending::ToolCall => "tool_use",
        }
    }

    /// Anthropic usage: `input_tokens` excludes the cache reads.
    pub fn usage_json(&self, output_tokens: u64) -> Value {
        let usage = self.answer.usage;
        json!({
            "input_tokens": usage.input - usage.cached,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": usage.cached,
            "output_tokens": output_tokens,
        })
    }
}

/// The presented key: `x-api-key`, else the Bearer token.
fn api_key(headers: &HeaderMap) -> Option<String> {
    header_text(headers, "x-api-key").or_else(|| bearer_token(headers))
}

fn new_request_id() -> String {
    format!("req_mock_{}", uuid::Uuid::new_v4().simple())
}

pub(super) fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = request_id.parse() {
        response
            .headers_mut()
            .insert(HeaderName::from_static("request-id"), value);
    }
    response
}

fn auth_error(problem: KeyProblem, request_id: &str) -> Response {
    let message = match problem {
        KeyProblem::Missing => "x-api-key header is required",
        KeyProblem::Wrong => "invalid x-api-key",
    };
    error(StatusCode::UNAUTHORIZED, message, request_id)
}

/// The `error.type` for a status (protocols.md §2 table).
pub(super) fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        code if code >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// An Anthropic error response.
fn error(status: StatusCode, message: &str, request_id: &str) -> Response {
    let body = json!({
        "type": "error",
        "error": { "type": error_type(status), "message": message },
        "request_id": request_id,
    });
    with_request_id((status, Json(body)).into_response(), request_id)
}

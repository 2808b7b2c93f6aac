//! The mock's `POST /v1/chat/completions` (OpenAI Chat Completions): request validation, the
//! [`Plan`] (the shared [`Answer`] plus OpenAI's envelope fields) and the non-streaming
//! response. Streaming responses are framed in `openai_stream`. MiniMax reuses [`Plan::new`].
//!
//! OpenAI renderings of the shared directives: `[mock:thinking]` → `reasoning_content` (the
//! de facto field of compatible servers) and `completion_tokens_details.reasoning_tokens`;
//! `[mock:cache_read=N]` → `prompt_tokens_details.cached_tokens` (`prompt_tokens` includes it);
//! `[mock:stream_error]` → `data: {"error":{…}}`.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::faults::{error_response, fault_response};
use super::reply::{
    content_text, first_tool, message_tokens, tool_call_json, Answer, Reply,
    TOOL_ARGUMENT_FRAGMENTS,
};
use super::{bearer_token, check_key, openai_stream, AppState, KeyProblem};

/// Everything needed to answer one valid chat request.
#[derive(Debug)]
pub(super) struct Plan {
    pub id: String,
    pub created: i64,
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub answer: Answer,
}

pub(super) async fn chat_completions(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = state.record(uri.path(), &headers, &body);
    if let Err(problem) = check_key(&state.config, bearer_token(&headers).as_deref()) {
        return auth_error(problem);
    }
    let Some(request) = parsed else {
        return invalid_request("We could not parse the JSON body of your request.", None);
    };
    let plan = match Plan::new(&request) {
        Ok(plan) => plan,
        Err(invalid) => return invalid_request(invalid.message, Some(invalid.param)),
    };
    if let Some(status) = plan.answer.scripted_fault(&state.fail_counts).await {
        return fault_response(status);
    }
    if plan.stream {
        openai_stream::respond(plan)
    } else {
        Json(plan.completion()).into_response()
    }
}

/// The OpenAI 401 (also for `GET /v1/models`).
pub(super) fn auth_error(problem: KeyProblem) -> Response {
    let message = match problem {
        KeyProblem::Missing => "You didn't provide an API key. Use `Authorization: Bearer`.",
        KeyProblem::Wrong => "Incorrect API key provided.",
    };
    error_response(
        StatusCode::UNAUTHORIZED,
        message,
        "invalid_request_error",
        Some("invalid_api_key"),
        None,
    )
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
    pub message: &'static str,
    pub param: &'static str,
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
        let input = messages
            .iter()
            .map(|message| message_tokens(&content_text(message.get("content"))))
            .sum();
        let last_user_text = messages
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
            .map(|message| content_text(message.get("content")))
            .unwrap_or_default();
        let answer = Answer::new(
            input,
            last_user_text,
            first_tool(request.get("tools")),
            token_limit(request),
        );
        Ok(Self {
            id: format!("chatcmpl-mock-{}", uuid::Uuid::new_v4().simple()),
            created: chrono::Utc::now().timestamp(),
            model: model.to_owned(),
            stream: request.get("stream").and_then(Value::as_bool) == Some(true),
            include_usage: request
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true),
            answer,
        })
    }

    /// The non-streaming `chat.completion` body.
    pub fn completion(&self) -> Value {
        let mut message = match &self.answer.reply {
            Reply::Text { .. } => json!({ "role": "assistant", "content": self.answer.text() }),
            Reply::ToolCall { name } => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [tool_call_json(name, &TOOL_ARGUMENT_FRAGMENTS.concat())],
            }),
        };
        if let Some(thinking) = self.answer.thinking() {
            message["reasoning_content"] = json!(thinking);
        }
        let mut body = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.answer.ending().finish_reason(),
            }],
        });
        if !self.answer.directives.no_usage {
            body["usage"] = self.usage_json();
        }
        body
    }

    /// OpenAI usage: `prompt_tokens` includes the cached tokens, `completion_tokens` the
    /// reasoning ones.
    pub fn usage_json(&self) -> Value {
        let usage = self.answer.usage;
        let mut json = json!({
            "prompt_tokens": usage.input,
            "completion_tokens": usage.output,
            "total_tokens": usage.input + usage.output,
            "prompt_tokens_details": { "cached_tokens": usage.cached },
        });
        if usage.reasoning > 0 {
            json["completion_tokens_details"] = json!({ "reasoning_tokens": usage.reasoning });
        }
        json
    }
}

/// The cap on reply words: `max_completion_tokens`, else `max_tokens`.
pub(super) fn token_limit(request: &Value) -> Option<u64> {
    request
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| request.get("max_tokens").and_then(Value::as_u64))
}

//! The mock's MiniMax native API (protocols.md §4): `POST /v1/text/chatcompletion_v2`, Bearer
//! auth. OpenAI-like (it reuses the OpenAI [`Plan`](super::openai::Plan)), with MiniMax's
//! additions and quirks. Streams are framed in `minimax_stream`.
//!
//! - Every answer carries `base_resp:{status_code,status_msg}`, 0/`success` when it succeeded.
//! - Errors in HTTP 200 with a non-zero `base_resp` and no `choices`: a `temperature` outside
//!   (0, 1] or `n` other than 1 → 2013 `invalid params, <field>`; missing model or messages or a
//!   body that is not JSON → 2013; a missing key → 1004, a wrong one → 2049;
//!   `[mock:base_resp=NNNN]` → that code. `[mock:status=NNN]` and `fail_first` still answer
//!   with the HTTP status, and a `base_resp` code mapped from it (§4's suggested mapping,
//!   reversed).
//! - Usage `{total_tokens, total_characters: 0, prompt_tokens, completion_tokens,
//!   completion_tokens_details{reasoning_tokens}}`, plus `input_sensitive`/`output_sensitive`.
//! - `[mock:thinking]`: with `reasoning_split: true`, `message.reasoning_details:
//!   [{"text":"Thinking about it."}]`; without, `<think>Thinking about it.</think>\n\n` before
//!   the content, as M2 models do.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::openai;
use super::reply::{tool_call_json, Reply, TOOL_ARGUMENT_FRAGMENTS};
use super::{bearer_token, check_key, minimax_stream, AppState, KeyProblem};

/// What a non-split thinking answer puts before its content.
pub(super) fn think_tags(thinking: &str) -> String {
    format!("<think>{thinking}</think>\n\n")
}

/// Everything needed to answer one valid MiniMax request.
#[derive(Debug)]
pub(super) struct Plan {
    pub chat: openai::Plan,
    /// Reasoning in `reasoning_details` rather than `<think>` tags in the content.
    pub reasoning_split: bool,
}

pub(super) async fn chatcompletion_v2(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = state.record(uri.path(), &headers, &body);
    match check_key(&state.config, bearer_token(&headers).as_deref()) {
        Err(KeyProblem::Missing) => return base_resp_error(StatusCode::OK, 1004, "login fail: Please carry the API secret key in the 'Authorization' field of the request header"),
        Err(KeyProblem::Wrong) => return base_resp_error(StatusCode::OK, 2049, "invalid api key"),
        Ok(()) => {}
    }
    let Some(request) = parsed else {
        return invalid_params("request body is not valid JSON");
    };
    let temperature = request.get("temperature").and_then(Value::as_f64);
    if temperature.is_some_and(|t| t <= 0.0 || t > 1.0) {
        return invalid_params("temperature");
    }
    if request
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n != 1)
    {
        return invalid_params("n");
    }
    let chat = match openai::Plan::new(&request) {
        Ok(chat) => chat,
        Err(invalid) => return invalid_params(invalid.param),
    };
    let plan = Plan {
        chat,
        reasoning_split: request.get("reasoning_split").and_then(Value::as_bool) == Some(true),
    };
    if let Some(status) = plan.chat.answer.scripted_fault(&state.fail_counts).await {
        let message = format!("mock fault {}", status.as_u16());
        return base_resp_error(status, status_code_for(status), &message);
    }
    if let Some(code) = plan.chat.answer.directives.base_resp {
        return base_resp_error(StatusCode::OK, code, status_msg(code));
    }
    if plan.chat.stream {
        minimax_stream::respond(plan)
    } else {
        Json(plan.completion()).into_response()
    }
}

impl Plan {
    /// The whole `chat.completion` (also the last frame of a stream).
    pub fn completion(&self) -> Value {
        let chat = &self.chat;
        let mut body = json!({
            "id": chat.id,
            "object": "chat.completion",
            "created": chat.created,
            "model": chat.model,
            "choices": [{
                "index": 0,
                "message": self.message(),
                "finish_reason": chat.answer.ending().finish_reason(),
            }],
        });
        if !chat.answer.directives.no_usage {
            body["usage"] = self.usage_json();
        }
        body["input_sensitive"] = json!(false);
        body["output_sensitive"] = json!(false);
        body["base_resp"] = json!({ "status_code": 0, "status_msg": "success" });
        body
    }

    fn message(&self) -> Value {
        let answer = &self.chat.answer;
        let mut message =
            json!({ "role": "assistant", "content": self.inline_thinking() + &answer.text() });
        if let (Some(thinking), true) = (answer.thinking(), self.reasoning_split) {
            message["reasoning_details"] = json!([{ "text": thinking }]);
        }
        if let Reply::ToolCall { name } = &answer.reply {
            message["tool_calls"] =
                json!([tool_call_json(name, &TOOL_ARGUMENT_FRAGMENTS.concat())]);
        }
        message
    }

    /// The `<think>` prefix of the content: the reasoning when it is not split out.
    pub fn inline_thinking(&self) -> String {
        match self.chat.answer.thinking() {
            Some(thinking) if !self.reasoning_split => think_tags(thinking),
            _ => String::new(),
        }
    }

    pub fn usage_json(&self) -> Value {
        let usage = self.chat.answer.usage;
        json!({
            "total_tokens": usage.input + usage.output,
            "total_characters": 0,
            "prompt_tokens": usage.input,
            "completion_tokens": usage.output,
            "completion_tokens_details": { "reasoning_tokens": usage.reasoning },
        })
    }
}

fn invalid_params(field: &str) -> Response {
    base_resp_error(StatusCode::OK, 2013, &format!("invalid params, {field}"))
}

/// A MiniMax error: `{"base_resp":{…}}` and no choices.
fn base_resp_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({ "base_resp": { "status_code": code, "status_msg": message } });
    (status, Json(body)).into_response()
}

/// The `base_resp` code a scripted HTTP status comes with.
fn status_code_for(status: StatusCode) -> u32 {
    match status.as_u16() {
        401 | 403 => 1004,
        402 => 1008,
        408 | 504 => 1001,
        429 => 1002,
        code if code >= 500 => 1024,
        _ => 2013,
    }
}

/// The `status_msg` of a `base_resp` code (the official list and codes seen in the wild).
pub(super) fn status_msg(code: u32) -> &'static str {
    match code {
        1000 => "unknown error",
        1001 => "request timeout",
        1002 => "rate limit exceeded",
        1004 => "not authorized",
        1008 => "insufficient balance",
        1024 => "internal error",
        1026 => "input new_sensitive",
        1027 => "output new_sensitive",
        1033 => "system error",
        1039 => "token limit exceeded",
        2013 => "invalid params",
        2049 => "invalid api key",
        _ => "mock base_resp error",
    }
}

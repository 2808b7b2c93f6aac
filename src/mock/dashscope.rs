//! The mock's DashScope native API (protocols.md §3): `POST
//! /api/v1/services/aigc/text-generation/generation` and `…/multimodal-generation/generation`,
//! Bearer auth. Streams are framed in `dashscope_stream`.
//!
//! - Input: `input.messages` (string content, or on the multimodal endpoint arrays of
//!   `{"text"}`/`{"image"}` items, whose texts are concatenated) or `input.prompt` (one user
//!   message); both missing or empty → 400 `InvalidParameter`.
//! - `parameters.result_format`: `message` → `output.choices[0].message`, `text` →
//!   `output.text`. The text endpoint defaults to `text` (classic Qwen); the multimodal endpoint
//!   always answers in message format with content `[{"text":…}]`. Tools with `text` → 400.
//! - `parameters.max_tokens` caps the reply; `parameters.tools` enables `[mock:tool_call]`.
//! - Streaming when `X-DashScope-SSE: enable` or `Accept: text/event-stream`; incremental with
//!   `parameters.incremental_output: true`, cumulative otherwise (the documented default) or with
//!   `[mock:cumulative]` (an upstream that ignores the flag).
//! - Tool calls in OpenAI shape with `index`; `[mock:forced_tool_stop]` ends them with
//!   `finish_reason: "stop"` (the forced-tool quirk). `[mock:thinking]` →
//!   `reasoning_content` and `output_tokens_details.reasoning_tokens`.
//! - Usage `{input_tokens, output_tokens, total_tokens}` (`input_tokens` includes the cached
//!   tokens); `[mock:cached=N]` adds `prompt_tokens_details.cached_tokens: N`.
//! - Errors: the HTTP status and `{"code","message","request_id"}` (400 `InvalidParameter`, 401
//!   `InvalidApiKey`, 403 `AccessDenied`, 404 `ModelNotFound`, 408 `RequestTimeOut`, 413
//!   `BadRequest.TooLarge`, 429 `Throttling.RateQuota`, 5xx `InternalError`). A streaming request
//!   gets every error, faults and auth included, in-band as DashScope does: HTTP 200 and one
//!   `event:error` with `:HTTP_STATUS/<code>`.
//! - Every response carries `X-Request-ID`, equal to the body's `request_id` (a UUID).

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::reply::{content_text, first_tool, message_tokens, Answer, Ending, Reply};
use super::reply::{TOOL_ARGUMENT_FRAGMENTS, TOOL_CALL_ID};
use super::{bearer_token, check_key, dashscope_stream, header_text, AppState, KeyProblem};

/// Everything needed to answer one valid generation request.
#[derive(Debug)]
pub(super) struct Plan {
    pub request_id: String,
    /// Message format (`output.choices`) rather than text format (`output.text`).
    pub message_format: bool,
    /// Content as `[{"text":…}]` arrays (the multimodal endpoint).
    pub multimodal: bool,
    /// Stream only the new text in each event.
    pub incremental: bool,
    pub answer: Answer,
}

pub(super) async fn text_generation(
    state: State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    generation(state, uri, headers, body, false).await
}

pub(super) async fn multimodal_generation(
    state: State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    generation(state, uri, headers, body, true).await
}

async fn generation(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
    multimodal: bool,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let stream = header_text(&headers, "x-dashscope-sse")
        .is_some_and(|v| v.eq_ignore_ascii_case("enable"))
        || header_text(&headers, ACCEPT.as_str()).is_some_and(|a| a.contains("text/event-stream"));
    let fail = |status: StatusCode, message: &str| error(stream, status, message, &request_id);
    let parsed = state.record(uri.path(), &headers, &body);
    if let Err(problem) = check_key(&state.config, bearer_token(&headers).as_deref()) {
        let message = match problem {
            KeyProblem::Missing => "No API-key provided.",
            KeyProblem::Wrong => "Invalid API-key provided.",
        };
        return fail(StatusCode::UNAUTHORIZED, message);
    }
    let Some(request) = parsed else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON.",
        );
    };
    let plan = match Plan::new(&request, request_id.clone(), multimodal) {
        Ok(plan) => plan,
        Err(message) => return fail(StatusCode::BAD_REQUEST, message),
    };
    if let Some(status) = plan.answer.scripted_fault(&state.fail_counts).await {
        return fail(status, &format!("mock fault {}", status.as_u16()));
    }
    if stream {
        return dashscope_stream::respond(plan);
    }
    let body = plan.event(
        plan.whole(),
        plan.answer.usage.output,
        Some(plan.finish_reason()),
    );
    with_request_id(Json(body).into_response(), &request_id)
}

impl Plan {
    fn new(request: &Value, request_id: String, multimodal: bool) -> Result<Self, &'static str> {
        if request.get("model").and_then(Value::as_str).is_none() {
            return Err("Model not specified.");
        }
        let parameters = request.get("parameters");
        let parameter = |name: &str| parameters.and_then(|p| p.get(name));
        let (input, last_user_text) = read_input(request.get("input"))?;
        let message_format =
            multimodal || parameter("result_format").and_then(Value::as_str) == Some("message");
        let tool = first_tool(parameter("tools"));
        if tool.is_some() && !message_format {
            return Err("Tools require parameters.result_format to be \"message\".");
        }
        let incremental = parameter("incremental_output").and_then(Value::as_bool) == Some(true);
        let limit = parameter("max_tokens").and_then(Value::as_u64);
        let answer = Answer::new(input, last_user_text, tool, limit);
        Ok(Self {
            request_id,
            message_format,
            multimodal,
            incremental: incremental && !answer.directives.cumulative,
            answer,
        })
    }

    /// The `finish_reason` of the last event: a forced tool call ends with `stop` when asked.
    pub fn finish_reason(&self) -> &'static str {
        match self.answer.ending() {
            Ending::ToolCall if self.answer.directives.forced_tool_stop => "stop",
            ending => ending.finish_reason(),
        }
    }

    /// A response body or stream event carrying `delta`, with the usage after `output` output
    /// tokens and the finish reason (`None`: the string `"null"` of a running stream). The text
    /// format carries only the text.
    pub fn event(&self, delta: Delta, output: u64, finish: Option<&str>) -> Value {
        let finish_reason = finish.unwrap_or("null");
        let output_json = if self.message_format {
            let mut message = json!({ "role": "assistant", "content": self.content(&delta.text) });
            if let Some(reasoning) = delta.reasoning {
                message["reasoning_content"] = json!(reasoning);
            }
            if let Some(call) = delta.tool_call {
                message["tool_calls"] = json!([call]);
            }
            json!({ "choices": [{ "message": message, "index": 0, "finish_reason": finish_reason }] })
        } else {
            json!({ "text": delta.text, "finish_reason": finish_reason })
        };
        let mut event = json!({ "output": output_json });
        if !self.answer.directives.no_usage {
            event["usage"] = self.usage_json(output);
        }
        event["request_id"] = json!(self.request_id);
        event
    }

    /// The whole answer, for a non-streaming response.
    fn whole(&self) -> Delta {
        let tool_call = match &self.answer.reply {
            Reply::ToolCall { name } => Some(tool_call(
                TOOL_CALL_ID,
                Some(name),
                &TOOL_ARGUMENT_FRAGMENTS.concat(),
            )),
            Reply::Text { .. } => None,
        };
        Delta {
            text: self.answer.text(),
            reasoning: self.answer.thinking(),
            tool_call,
        }
    }

    /// A message `content`: a string, or `[{"text":…}]` on the multimodal endpoint (`[]` when
    /// there is no text).
    pub fn content(&self, text: &str) -> Value {
        match (self.multimodal, text.is_empty()) {
            (false, _) => json!(text),
            (true, true) => json!([]),
            (true, false) => json!([{ "text": text }]),
        }
    }

    /// The usage after `output` output tokens (the reasoning comes first, so it is whole once
    /// any output is).
    pub fn usage_json(&self, output: u64) -> Value {
        let usage = self.answer.usage;
        let mut json = json!({
            "input_tokens": usage.input,
            "output_tokens": output,
            "total_tokens": usage.input + output,
        });
        if self.answer.directives.cache_read.is_some() {
            json["prompt_tokens_details"] = json!({ "cached_tokens": usage.cached });
        }
        if usage.reasoning > 0 && output > 0 {
            json["output_tokens_details"] =
                json!({ "reasoning_tokens": usage.reasoning.min(output) });
        }
        json
    }
}

/// What one response or event carries in its message.
#[derive(Debug, Default)]
pub(super) struct Delta {
    pub text: String,
    pub reasoning: Option<&'static str>,
    pub tool_call: Option<Value>,
}

/// An OpenAI-shape tool call with `index` (DashScope's); `name` absent on later stream pieces.
pub(super) fn tool_call(id: &str, name: Option<&str>, arguments: &str) -> Value {
    let mut function = json!({ "arguments": arguments });
    if let Some(name) = name {
        function["name"] = json!(name);
    }
    json!({ "index": 0, "id": id, "type": "function", "function": function })
}

/// The input tokens and the last user text of `input.messages`, else of `input.prompt`.
fn read_input(input: Option<&Value>) -> Result<(u64, String), &'static str> {
    const MISSING: &str = "Either input.messages or input.prompt must be provided.";
    let messages = input
        .and_then(|input| input.get("messages"))
        .and_then(Value::as_array)
        .filter(|messages| !messages.is_empty());
    if let Some(messages) = messages {
        let tokens = messages
            .iter()
            .map(|message| message_tokens(&content_text(message.get("content"))))
            .sum();
        let last_user_text = messages
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
            .map(|message| content_text(message.get("content")))
            .unwrap_or_default();
        return Ok((tokens, last_user_text));
    }
    match input
        .and_then(|input| input.get("prompt"))
        .and_then(Value::as_str)
    {
        Some(prompt) if !prompt.is_empty() => Ok((message_tokens(prompt), prompt.to_owned())),
        _ => Err(MISSING),
    }
}

/// The error `code` for a status.
pub(super) fn error_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "InvalidApiKey",
        403 => "AccessDenied",
        404 => "ModelNotFound",
        408 => "RequestTimeOut",
        413 => "BadRequest.TooLarge",
        429 => "Throttling.RateQuota",
        code if code >= 500 => "InternalError",
        _ => "InvalidParameter",
    }
}

/// A DashScope error: the status and `{"code","message","request_id"}`, or for a streaming
/// request HTTP 200 with that body in one `event:error` frame.
fn error(stream: bool, status: StatusCode, message: &str, request_id: &str) -> Response {
    let body = json!({ "code": error_code(status), "message": message, "request_id": request_id });
    let response = if stream {
        let frame = dashscope_stream::error_frame(1, status, &body);
        (StatusCode::OK, [(CONTENT_TYPE, "text/event-stream")], frame).into_response()
    } else {
        (status, Json(body)).into_response()
    };
    with_request_id(response, request_id)
}

pub(super) fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = request_id.parse() {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    response
}

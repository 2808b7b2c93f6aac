//! Streaming Chat Completions for the mock upstream, as [`sse`](super::sse) frames.
//!
//! Frames (`data: <json>\n\n`, every chunk with `"usage": null`):
//! 1. delta `{"role":"assistant","content":""}` (for a tool call: the call's id, type and name
//!    with empty arguments);
//! 2. with `[mock:thinking]`, one `{"reasoning_content":…}` delta;
//! 3. one chunk per reply word (the word plus a space, except the last), or per argument fragment;
//! 4. a chunk with `delta: {}` and the `finish_reason`;
//! 5. with `stream_options.include_usage` (and no `[mock:no_usage]`): `choices: []` and the usage;
//! 6. `data: [DONE]`.
//!
//! The content chunks of 2 and 3 are what `cut_after` counts; `stream_error` sends
//! `data: {"error":{…}}` after the first of them.

use std::iter::once;
use std::sync::Arc;

use axum::body::Bytes;
use axum::response::Response;
use serde_json::{json, Value};

use super::openai::Plan;
use super::reply::{Reply, TOOL_ARGUMENT_FRAGMENTS, TOOL_CALL_ID};
use super::sse::{self, Frame, Frames, Kind};

/// The SSE response for a streaming request.
pub(super) fn respond(plan: Plan) -> Response {
    let directives = plan.answer.directives.clone();
    let plan = Arc::new(plan);
    let role = Frame::new(Kind::Head, chunk(&plan, role_delta(&plan), None));
    let thinking = plan.answer.thinking().map(|thinking| {
        let delta = json!({ "reasoning_content": thinking });
        Frame::new(Kind::Content, chunk(&plan, delta, None))
    });
    let content = {
        let plan = Arc::clone(&plan);
        (0..plan.answer.piece_count()).map(move |index| {
            Frame::new(
                Kind::Content,
                chunk(&plan, content_delta(&plan, index), None),
            )
        })
    };
    let finish_reason = plan.answer.ending().finish_reason();
    let mut tail = vec![Frame::new(
        Kind::Tail,
        chunk(&plan, json!({}), Some(finish_reason)),
    )];
    if plan.include_usage && !directives.no_usage {
        let mut usage = envelope(&plan, json!([]));
        usage["usage"] = plan.usage_json();
        tail.push(Frame::new(Kind::Tail, frame(&usage)));
    }
    tail.push(Frame::new(
        Kind::Tail,
        Bytes::from_static(b"data: [DONE]\n\n"),
    ));
    let frames: Frames = Box::new(once(role).chain(thinking).chain(content).chain(tail));
    let error = json!({
        "error": { "message": "mock stream error", "type": "server_error", "param": null, "code": "server_error" },
    });
    sse::respond(frames, &directives, frame(&error), Vec::new())
}

fn role_delta(plan: &Plan) -> Value {
    match &plan.answer.reply {
        Reply::Text { .. } => json!({ "role": "assistant", "content": "" }),
        Reply::ToolCall { name } => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "index": 0,
                "id": TOOL_CALL_ID,
                "type": "function",
                "function": { "name": name, "arguments": "" },
            }],
        }),
    }
}

fn content_delta(plan: &Plan, index: usize) -> Value {
    match &plan.answer.reply {
        Reply::Text { .. } => json!({ "content": plan.answer.word_piece(index) }),
        Reply::ToolCall { .. } => {
            let fragment = TOOL_ARGUMENT_FRAGMENTS.get(index).copied().unwrap_or("");
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": fragment } }] })
        }
    }
}

/// A chunk with one choice.
fn chunk(plan: &Plan, delta: Value, finish_reason: Option<&str>) -> Bytes {
    let choices = json!([{
        "index": 0,
        "delta": delta,
        "logprobs": null,
        "finish_reason": finish_reason,
    }]);
    frame(&envelope(plan, choices))
}

/// The fields every chunk shares, with `"usage": null`.
fn envelope(plan: &Plan, choices: Value) -> Value {
    json!({
        "id": plan.id,
        "object": "chat.completion.chunk",
        "created": plan.created,
        "model": plan.model,
        "choices": choices,
        "usage": null,
    })
}

/// One `data: ` server-sent event (OpenAI style, also MiniMax).
pub(super) fn frame(chunk: &Value) -> Bytes {
    Bytes::from(format!("data: {chunk}\n\n"))
}

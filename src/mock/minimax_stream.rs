//! Streaming MiniMax native responses for the mock upstream, as [`sse`](super::sse) frames:
//! OpenAI-style `data: <json>` chunks with the quirks of protocols.md §4:
//! 1. delta `{"role":"assistant","content":""}` (for a tool call: with the call's id and name);
//! 2. with `[mock:thinking]`: one delta with `reasoning_details` (`reasoning_split: true`) or
//!    the `<think>…</think>` content;
//! 3. one delta per word, or per argument fragment, each with `"role":""`;
//! 4. the finish chunk: `"delta": null` and the `finish_reason`;
//! 5. a usage-only chunk (`choices: []`), always, whatever `stream_options` says (MiniMax
//!    sends it unasked), except with `[mock:no_usage]`;
//! 6. the whole answer again as one `chat.completion` object with `message` and `base_resp`;
//! 7. `data: [DONE]`.
//!
//! The deltas of 2 and 3 are the content chunks `cut_after` counts; `stream_error` sends
//! `data: {"base_resp":{"status_code":1024,…}}` after the first of them.

use std::iter::once;
use std::sync::Arc;

use axum::body::Bytes;
use axum::response::Response;
use serde_json::{json, Value};

use super::minimax::Plan;
use super::openai_stream::frame;
use super::reply::{Reply, TOOL_ARGUMENT_FRAGMENTS, TOOL_CALL_ID};
use super::sse::{self, Frame, Frames, Kind};

/// The SSE response for a streaming request.
pub(super) fn respond(plan: Plan) -> Response {
    let directives = plan.chat.answer.directives.clone();
    let plan = Arc::new(plan);
    let answer = &plan.chat.answer;
    let mut first = json!({ "role": "assistant", "content": "" });
    if let Reply::ToolCall { name } = &answer.reply {
        first["tool_calls"] = json!([{
            "index": 0,
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": { "name": name, "arguments": "" },
        }]);
    }
    let head = Frame::new(Kind::Head, chunk(&plan, first, None));
    let thinking = answer.thinking().map(|thinking| {
        let delta = if plan.reasoning_split {
            json!({ "role": "", "reasoning_details": [{ "text": thinking }] })
        } else {
            json!({ "role": "", "content": plan.inline_thinking() })
        };
        Frame::new(Kind::Content, chunk(&plan, delta, None))
    });
    let content = {
        let plan = Arc::clone(&plan);
        (0..answer.piece_count()).map(move |index| {
            let delta = match &plan.chat.answer.reply {
                Reply::Text { .. } => {
                    json!({ "role": "", "content": plan.chat.answer.word_piece(index) })
                }
                Reply::ToolCall { .. } => {
                    let fragment = TOOL_ARGUMENT_FRAGMENTS.get(index).copied().unwrap_or("");
                    json!({ "role": "", "tool_calls": [{ "index": 0, "function": { "arguments": fragment } }] })
                }
            };
            Frame::new(Kind::Content, chunk(&plan, delta, None))
        })
    };
    let finish_reason = answer.ending().finish_reason();
    let mut tail = vec![Frame::new(
        Kind::Tail,
        chunk(&plan, Value::Null, Some(finish_reason)),
    )];
    if !directives.no_usage {
        let mut usage = envelope(&plan, json!([]));
        usage["usage"] = plan.usage_json();
        tail.push(Frame::new(Kind::Tail, frame(&usage)));
    }
    tail.push(Frame::new(Kind::Tail, frame(&plan.completion())));
    tail.push(Frame::new(
        Kind::Tail,
        Bytes::from_static(b"data: [DONE]\n\n"),
    ));
    let frames: Frames = Box::new(once(head).chain(thinking).chain(content).chain(tail));
    let error = json!({ "base_resp": { "status_code": 1024, "status_msg": "mock stream error" } });
    sse::respond(frames, &directives, frame(&error), Vec::new())
}

/// A chunk with one choice.
fn chunk(plan: &Plan, delta: Value, finish_reason: Option<&str>) -> Bytes {
    let choices = json!([{ "index": 0, "delta": delta, "finish_reason": finish_reason }]);
    frame(&envelope(plan, choices))
}

/// The fields every chunk shares.
fn envelope(plan: &Plan, choices: Value) -> Value {
    json!({
        "id": plan.chat.id,
        "object": "chat.completion.chunk",
        "created": plan.chat.created,
        "model": plan.chat.model,
        "choices": choices,
    })
}

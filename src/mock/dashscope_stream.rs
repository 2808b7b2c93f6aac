//! Streaming DashScope native responses for the mock upstream, as [`sse`](super::sse) frames
//! framed as protocols.md §3 and §6.4 say: `id:N`, `event:result`, `:HTTP_STATUS/200`,
//! `data:{…}`, no space after the colons, no `[DONE]`; the body ends after the first event
//! whose `finish_reason` is not the string `"null"`.
//!
//! Events, numbered from 1, each with the running usage and the `request_id`:
//! 1. with `[mock:thinking]` in message format: `reasoning_content`, empty content;
//! 2. text: one event per word, then a last event with empty content (incremental) or the
//!    whole text (cumulative) and the finish reason. In cumulative mode every event carries all
//!    the text so far (and the reasoning);
//! 3. tool call: the call's id, name and first argument piece; then the last event with
//!    `"id":""`, no name, the second piece (cumulative: the whole arguments) and the finish
//!    reason (`tool_calls`, or `stop` with `[mock:forced_tool_stop]`).
//!
//! Every event but the last is a content chunk for `cut_after`; `stream_error` sends
//! `event:error`, `:HTTP_STATUS/500` and `{"code":"InternalError",…}` after the first event.

use std::iter::once;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::dashscope::{error_code, tool_call, Delta, Plan};
use super::reply::{Reply, TOOL_ARGUMENT_FRAGMENTS, TOOL_CALL_ID};
use super::sse::{self, Frame, Frames, Kind};

/// The SSE response for a streaming request.
pub(super) fn respond(plan: Plan) -> Response {
    let directives = plan.answer.directives.clone();
    let request_id = plan.request_id.clone();
    let plan = Arc::new(plan);
    let reasoning = plan.answer.usage.reasoning;
    let thinking = plan
        .answer
        .thinking()
        .filter(|_| plan.message_format)
        .map(|thinking| {
            let delta = Delta {
                reasoning: Some(thinking),
                ..Delta::default()
            };
            result(Kind::Content, 1, &plan.event(delta, reasoning, None))
        });
    let first = 1 + usize::from(thinking.is_some());
    // Cumulative events repeat the reasoning along with the text so far.
    let carried = if plan.incremental {
        None
    } else {
        plan.answer.thinking()
    };
    let total = plan.answer.usage.output;
    let finish = Some(plan.finish_reason());
    let reply: Frames = match &plan.answer.reply {
        Reply::Text { words, .. } => {
            let count = words.len();
            let words = {
                let plan = Arc::clone(&plan);
                (0..count).map(move |index| {
                    let text = if plan.incremental {
                        plan.answer.word_piece(index)
                    } else {
                        plan.answer.text_prefix(index + 1)
                    };
                    let delta = Delta {
                        text,
                        reasoning: carried,
                        tool_call: None,
                    };
                    let output = reasoning + index as u64 + 1;
                    result(
                        Kind::Content,
                        first + index,
                        &plan.event(delta, output, None),
                    )
                })
            };
            let last = Delta {
                text: if plan.incremental {
                    String::new()
                } else {
                    plan.answer.text()
                },
                reasoning: carried,
                tool_call: None,
            };
            let last = result(Kind::Tail, first + count, &plan.event(last, total, finish));
            Box::new(words.chain(once(last)))
        }
        Reply::ToolCall { name } => {
            let [head, rest] = TOOL_ARGUMENT_FRAGMENTS;
            let opening = Delta {
                reasoning: carried,
                tool_call: Some(tool_call(TOOL_CALL_ID, Some(name), head)),
                ..Delta::default()
            };
            let second = if plan.incremental {
                rest.to_owned()
            } else {
                TOOL_ARGUMENT_FRAGMENTS.concat()
            };
            let closing = Delta {
                reasoning: carried,
                tool_call: Some(tool_call("", None, &second)),
                ..Delta::default()
            };
            Box::new(
                [
                    result(
                        Kind::Content,
                        first,
                        &plan.event(opening, reasoning + 2, None),
                    ),
                    result(Kind::Tail, first + 1, &plan.event(closing, total, finish)),
                ]
                .into_iter(),
            )
        }
    };
    let frames: Frames = Box::new(thinking.into_iter().chain(reply));
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    let error = json!({
        "code": error_code(status),
        "message": "mock stream error",
        "request_id": request_id,
    });
    sse::respond(
        frames,
        &directives,
        error_frame(2, status, &error),
        vec![(HeaderName::from_static("x-request-id"), request_id)],
    )
}

/// One `event:result` frame.
fn result(kind: Kind, id: usize, data: &Value) -> Frame {
    let bytes = format!("id:{id}\nevent:result\n:HTTP_STATUS/200\ndata:{data}\n\n");
    Frame::new(kind, bytes)
}

/// One `event:error` frame: the in-band error of a stream. Written here rather than with the
/// gateway's SSE writer, so the mock stays an independent oracle for the gateway's parsers.
pub(super) fn error_frame(id: usize, status: StatusCode, body: &Value) -> Bytes {
    let status = status.as_u16();
    Bytes::from(format!(
        "id:{id}\nevent:error\n:HTTP_STATUS/{status}\ndata:{body}\n\n"
    ))
}

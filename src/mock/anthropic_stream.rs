//! Streaming Anthropic Messages for the mock upstream, as [`sse`](super::sse) frames in the exact
//! event order of protocols.md §2 (`event: <type>` then `data: <json>`, a space after colons):
//! 1. `message_start` (empty content, `stop_reason: null`, input usage, `output_tokens: 1`);
//! 2. one `ping`;
//! 3. per block, numbered from 0: `content_block_start`, its deltas, `content_block_stop`:
//!    - thinking (`[mock:thinking]`): one `thinking_delta`, then `signature_delta`;
//!    - text: one `text_delta` per word (the word plus a space, except the last);
//!    - tool_use (`input: {}` at the start): `input_json_delta` in two pieces;
//! 4. `message_delta` with the `stop_reason` and the cumulative `output_tokens`;
//! 5. `message_stop`.
//!
//! The thinking, text and argument deltas are the content chunks `cut_after` counts;
//! `stream_error` sends `event: error` (`overloaded_error`) after the first of them and ends.

use std::iter::once;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderName;
use axum::response::Response;
use serde_json::{json, Value};

use super::anthropic::{Plan, THINKING_SIGNATURE, TOOL_USE_ID};
use super::reply::{Reply, TOOL_ARGUMENT_FRAGMENTS};
use super::sse::{self, Frame, Frames, Kind};

/// The SSE response for a streaming request.
pub(super) fn respond(plan: Plan) -> Response {
    let directives = plan.answer.directives.clone();
    let request_id = plan.request_id.clone();
    let plan = Arc::new(plan);
    let start = json!({ "type": "message_start", "message": plan.start_message() });
    let head = [
        Frame::new(Kind::Head, event("message_start", &start)),
        Frame::new(Kind::Head, event("ping", &json!({ "type": "ping" }))),
    ];
    // The thinking block, when there is one, is block 0; the reply block follows it.
    let at = usize::from(plan.answer.thinking().is_some());
    let thinking = plan.answer.thinking().map(|thinking| {
        let at = 0;
        let deltas = vec![
            delta_frame(
                Kind::Content,
                at,
                json!({ "type": "thinking_delta", "thinking": thinking }),
            ),
            delta_frame(
                Kind::Inner,
                at,
                json!({ "type": "signature_delta", "signature": THINKING_SIGNATURE }),
            ),
        ];
        block(
            at,
            json!({ "type": "thinking", "thinking": "" }),
            deltas.into_iter(),
        )
    });
    let reply: Frames = match &plan.answer.reply {
        Reply::Text { words, .. } if words.is_empty() => Box::new(std::iter::empty()),
        Reply::Text { words, .. } => {
            let plan = Arc::clone(&plan);
            let deltas = (0..words.len()).map(move |word| {
                let text = plan.answer.word_piece(word);
                delta_frame(
                    Kind::Content,
                    at,
                    json!({ "type": "text_delta", "text": text }),
                )
            });
            Box::new(block(at, json!({ "type": "text", "text": "" }), deltas))
        }
        Reply::ToolCall { name } => {
            let deltas = TOOL_ARGUMENT_FRAGMENTS.map(|piece| {
                delta_frame(
                    Kind::Content,
                    at,
                    json!({ "type": "input_json_delta", "partial_json": piece }),
                )
            });
            let start = json!({ "type": "tool_use", "id": TOOL_USE_ID, "name": name, "input": {} });
            Box::new(block(at, start, deltas.into_iter()))
        }
    };
    let mut message_delta = json!({
        "type": "message_delta",
        "delta": { "stop_reason": plan.stop_reason(), "stop_sequence": null },
    });
    if !directives.no_usage {
        message_delta["usage"] = json!({ "output_tokens": plan.answer.usage.output });
    }
    let tail = [
        Frame::new(Kind::Tail, event("message_delta", &message_delta)),
        Frame::new(
            Kind::Tail,
            event("message_stop", &json!({ "type": "message_stop" })),
        ),
    ];
    let frames: Frames = Box::new(
        head.into_iter()
            .chain(thinking.into_iter().flatten())
            .chain(reply)
            .chain(tail),
    );
    let error = json!({
        "type": "error",
        "error": { "type": "overloaded_error", "message": "Overloaded" },
    });
    sse::respond(
        frames,
        &directives,
        event("error", &error),
        vec![(HeaderName::from_static("request-id"), request_id)],
    )
}

/// One content block: its start (an `Inner` frame), its deltas, its stop.
fn block(
    index: usize,
    content_block: Value,
    deltas: impl Iterator<Item = Frame> + Send + 'static,
) -> impl Iterator<Item = Frame> + Send + 'static {
    let start =
        json!({ "type": "content_block_start", "index": index, "content_block": content_block });
    let stop = json!({ "type": "content_block_stop", "index": index });
    once(Frame::new(
        Kind::Inner,
        event("content_block_start", &start),
    ))
    .chain(deltas)
    .chain(once(Frame::new(
        Kind::Inner,
        event("content_block_stop", &stop),
    )))
}

fn delta_frame(kind: Kind, index: usize, delta: Value) -> Frame {
    let data = json!({ "type": "content_block_delta", "index": index, "delta": delta });
    Frame::new(kind, event("content_block_delta", &data))
}

/// One Anthropic event. Written here rather than with the gateway's SSE writer, so the mock
/// stays an independent oracle for the gateway's parsers.
fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

//! Streaming Chat Completions for the mock upstream: server-sent events built lazily, one frame
//! per poll, so `[mock:chunk_delay_ms=N]` delays are real and `[mock:cut_after=N]` can break the
//! body mid-stream.
//!
//! Frames (`data: <json>\n\n`, every chunk with `"usage": null`):
//! 1. delta `{"role":"assistant","content":""}` (for a tool call: the call's id, type and name
//!    with empty arguments);
//! 2. one chunk per reply word (the word plus a space, except the last), or per argument fragment;
//! 3. a chunk with `delta: {}` and the `finish_reason`;
//! 4. with `stream_options.include_usage` (and no `[mock:no_usage]`): `choices: []` and the usage;
//! 5. `data: [DONE]`.
//!
//! With `cut_after=N` the body yields an error after N content chunks instead of 3 to 5.

use std::io;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::openai::{Plan, Reply, TOOL_ARGUMENT_FRAGMENTS, TOOL_CALL_ID};

/// The SSE response for a streaming request.
pub(super) fn respond(plan: Plan) -> Response {
    let delay = Duration::from_millis(plan.directives.chunk_delay_ms);
    let frames = Frames {
        phase: Phase::Role,
        include_usage: plan.include_usage && !plan.directives.no_usage,
        cut_after: plan.directives.cut_after,
        plan,
    };
    let stream = futures::stream::unfold((frames, true), move |(mut frames, first)| async move {
        let step = frames.next_step()?;
        if !first && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if step.is_err() {
            // Let the server flush the headers and the frames so far first: the client must
            // see a body that breaks mid-stream, not a request that failed outright.
            tokio::task::yield_now().await;
        }
        Some((step, (frames, false)))
    });
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Where the stream is.
#[derive(Clone, Copy, Debug)]
enum Phase {
    Role,
    /// The next content chunk to send (a word or an argument fragment).
    Content(usize),
    Finish,
    Usage,
    Done,
    Over,
}

/// Produces the frames of one response, one at a time.
struct Frames {
    plan: Plan,
    phase: Phase,
    include_usage: bool,
    cut_after: Option<usize>,
}

impl Frames {
    fn next_step(&mut self) -> Option<io::Result<Bytes>> {
        match self.phase {
            Phase::Role => {
                self.phase = Phase::Content(0);
                Some(Ok(self.chunk(self.role_delta(), None)))
            }
            Phase::Content(index) => {
                let count = self.content_count();
                if self.cut_after.is_some_and(|cut| index >= cut.min(count)) {
                    self.phase = Phase::Over;
                    return Some(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "mock upstream: stream cut by [mock:cut_after]",
                    )));
                }
                if index < count {
                    self.phase = Phase::Content(index + 1);
                    return Some(Ok(self.chunk(self.content_delta(index), None)));
                }
                self.phase = Phase::Finish;
                self.next_step()
            }
            Phase::Finish => {
                self.phase = if self.include_usage {
                    Phase::Usage
                } else {
                    Phase::Done
                };
                Some(Ok(self.chunk(json!({}), Some(self.finish_reason()))))
            }
            Phase::Usage => {
                self.phase = Phase::Done;
                let mut chunk = self.envelope(json!([]));
                chunk["usage"] = self.plan.usage.to_json();
                Some(Ok(frame(&chunk)))
            }
            Phase::Done => {
                self.phase = Phase::Over;
                Some(Ok(Bytes::from_static(b"data: [DONE]\n\n")))
            }
            Phase::Over => None,
        }
    }

    fn content_count(&self) -> usize {
        match &self.plan.reply {
            Reply::Text { words, .. } => words.len(),
            Reply::ToolCall { .. } => TOOL_ARGUMENT_FRAGMENTS.len(),
        }
    }

    fn role_delta(&self) -> Value {
        match &self.plan.reply {
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

    fn content_delta(&self, index: usize) -> Value {
        match &self.plan.reply {
            Reply::Text { words, .. } => {
                let word = words.get(index).map_or("", String::as_str);
                let content = if index + 1 < words.len() {
                    format!("{word} ")
                } else {
                    word.to_owned()
                };
                json!({ "content": content })
            }
            Reply::ToolCall { .. } => {
                let fragment = TOOL_ARGUMENT_FRAGMENTS.get(index).copied().unwrap_or("");
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": fragment } }] })
            }
        }
    }

    fn finish_reason(&self) -> &'static str {
        match &self.plan.reply {
            Reply::Text { finish_reason, .. } => finish_reason,
            Reply::ToolCall { .. } => "tool_calls",
        }
    }

    /// A chunk with one choice.
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let choices = json!([{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }]);
        frame(&self.envelope(choices))
    }

    /// The fields every chunk shares, with `"usage": null`.
    fn envelope(&self, choices: Value) -> Value {
        json!({
            "id": self.plan.id,
            "object": "chat.completion.chunk",
            "created": self.plan.created,
            "model": self.plan.model,
            "choices": choices,
            "usage": null,
        })
    }
}

/// One server-sent event.
fn frame(chunk: &Value) -> Bytes {
    Bytes::from(format!("data: {chunk}\n\n"))
}

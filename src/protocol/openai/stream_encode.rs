//! Canonical stream events → the `data: {chunk}` frames an OpenAI client reads (protocols.md §1
//! "Streaming", §6.2).
//!
//! Signed reasoning has no standard place in a chunk. Like LiteLLM, the encoder puts it in a
//! `thinking_blocks` extension field of the delta: a signature arrives as
//! `{"type":"thinking","thinking":"","signature":"…"}` right after the reasoning text it signs,
//! a redacted block as `{"type":"redacted_thinking","data":"…"}`. Clients that replay the
//! assistant turn send those blocks back in `thinking_blocks`, and the request decoder turns
//! them into signed reasoning again.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::error::error_payload;
use super::response::{finish_reason_str, usage_json};
use crate::protocol::canonical::{FinishReason, StreamEvent, Usage};
use crate::protocol::sse::{frame, SseEvent};
use crate::protocol::StreamEncoder;

/// Encodes a stream for an OpenAI client.
#[derive(Debug)]
pub struct OpenAiStreamEncoder {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    /// Choices that got their role chunk.
    started: BTreeSet<u32>,
    /// Choices that sent a tool call (an unfinished one then ends with `tool_calls`).
    with_tools: BTreeSet<u32>,
    finished: BTreeSet<u32>,
    usage: Option<Usage>,
    /// After an error or `finish()`, nothing more is written.
    closed: bool,
}

impl OpenAiStreamEncoder {
    /// `id` is the `chatcmpl-…` id every chunk repeats, `public_model` the model name the client
    /// asked for, `created` Unix seconds, `include_usage` the client's
    /// `stream_options.include_usage`.
    pub fn new(id: String, public_model: String, created: i64, include_usage: bool) -> Self {
        OpenAiStreamEncoder {
            id,
            model: public_model,
            created,
            include_usage,
            started: BTreeSet::new(),
            with_tools: BTreeSet::new(),
            finished: BTreeSet::new(),
            usage: None,
            closed: false,
        }
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> String {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        // With include_usage, every chunk but the last says `"usage": null`, as OpenAI does.
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        } else if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        data_frame(&chunk)
    }

    fn delta(&self, choice: u32, delta: Value, finish: Option<&str>) -> String {
        self.chunk(
            json!([{"index": choice, "delta": delta, "finish_reason": finish}]),
            None,
        )
    }

    /// The role chunk opens each choice, before its first content.
    fn open(&mut self, choice: u32, out: &mut Vec<String>) {
        if self.started.insert(choice) {
            out.push(self.delta(choice, json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn finish_choice(&mut self, choice: u32, reason: &FinishReason, out: &mut Vec<String>) {
        self.open(choice, out);
        if self.finished.insert(choice) {
            out.push(self.delta(choice, json!({}), Some(finish_reason_str(reason))));
        }
    }
}

fn data_frame(payload: &Value) -> String {
    data_line(payload.to_string())
}

/// `data: …` and a blank line (compact JSON holds no newline, so it stays one line).
fn data_line(data: String) -> String {
    frame(
        &SseEvent {
            data,
            ..SseEvent::default()
        },
        true,
    )
}

impl StreamEncoder for OpenAiStreamEncoder {
    fn feed(&mut self, event: &StreamEvent) -> Vec<String> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        match event {
            StreamEvent::Start { .. } => self.open(0, &mut out),
            StreamEvent::TextDelta { choice, text } if !text.is_empty() => {
                self.open(*choice, &mut out);
                out.push(self.delta(*choice, json!({"content": text}), None));
            }
            StreamEvent::ReasoningDelta { choice, text } if !text.is_empty() => {
                self.open(*choice, &mut out);
                out.push(self.delta(*choice, json!({"reasoning_content": text}), None));
            }
            StreamEvent::ReasoningSignature { choice, signature } => {
                self.open(*choice, &mut out);
                let block = json!({"type": "thinking", "thinking": "", "signature": signature});
                out.push(self.delta(*choice, json!({"thinking_blocks": [block]}), None));
            }
            StreamEvent::RedactedReasoning { choice, data } => {
                self.open(*choice, &mut out);
                let block = json!({"type": "redacted_thinking", "data": data});
                out.push(self.delta(*choice, json!({"thinking_blocks": [block]}), None));
            }
            StreamEvent::ToolCallStart {
                choice,
                index,
                id,
                name,
            } => {
                self.open(*choice, &mut out);
                self.with_tools.insert(*choice);
                let call = json!({"index": index, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""}});
                out.push(self.delta(*choice, json!({"tool_calls": [call]}), None));
            }
            StreamEvent::ToolCallDelta {
                choice,
                index,
                arguments,
            } if !arguments.is_empty() => {
                self.open(*choice, &mut out);
                let call = json!({"index": index, "function": {"arguments": arguments}});
                out.push(self.delta(*choice, json!({"tool_calls": [call]}), None));
            }
            StreamEvent::Finish { choice, reason } => self.finish_choice(*choice, reason, &mut out),
            StreamEvent::Usage(usage) => self.usage.get_or_insert_with(Usage::default).merge(usage),
            StreamEvent::Error(error) => {
                // In-band, as the SDK expects; nothing may follow it (not even `[DONE]`).
                self.closed = true;
                out.push(data_frame(&error_payload(error.status, &error.message)));
            }
            _ => {}
        }
        out
    }

    /// Finishes every open choice that got no finish (with `tool_calls` if it called tools),
    /// sends the usage chunk if the client asked for it, then `[DONE]`.
    fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        self.closed = true;
        let unfinished: Vec<u32> = self.started.difference(&self.finished).copied().collect();
        for choice in unfinished {
            let reason = if self.with_tools.contains(&choice) {
                FinishReason::ToolCalls
            } else {
                FinishReason::Stop
            };
            self.finish_choice(choice, &reason, &mut out);
        }
        if self.include_usage {
            out.push(self.chunk(json!([]), Some(usage_json(self.usage.as_ref()))));
        }
        out.push(data_line("[DONE]".into()));
        out
    }
}

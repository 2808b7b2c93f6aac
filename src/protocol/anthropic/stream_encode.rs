//! Canonical stream events → Anthropic SSE for a client (protocols.md §6.1).
//!
//! One block is open at a time; a change of kind (thinking → text → tool_use) closes it and opens
//! the next. Each tool call gets exactly one `tool_use` block (§7 "one block per call"). A call
//! that starts while another tool block is open is held back, with its arguments, and emitted
//! whole once the open block closes: that keeps interleaved argument pieces (keyed by the
//! canonical index) on the right block instead of appending them to a closed one. `finish()`
//! always ends with `message_delta` + `message_stop`, usage or not (§7 "stream termination").

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::error::stream_error_body;
use super::response::{reason_for_finish, uncached_input};
use super::turns::sanitize_id;
use crate::protocol::canonical::{FinishReason, StreamEvent, Usage};
use crate::protocol::sse::{frame, SseEvent};
use crate::protocol::StreamEncoder;

/// Only the first choice is sent: an Anthropic message has one.
const CHOICE: u32 = 0;

pub struct AnthropicStreamEncoder {
    message_id: String,
    model: String,
    started: bool,
    ended: bool,
    open: Option<Open>,
    next_index: u32,
    tools: BTreeMap<u32, ToolCall>,
    finish: Option<FinishReason>,
    usage: Usage,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Thinking,
    Text,
    Tool(u32),
}

#[derive(Debug)]
struct ToolCall {
    id: String,
    name: String,
    state: ToolState,
}

#[derive(Debug, PartialEq)]
enum ToolState {
    /// Its block is (or was) streamed live.
    Emitted,
    /// Waiting for the open tool block to close; the arguments so far.
    Held(String),
}

impl AnthropicStreamEncoder {
    /// `message_id` is the client-facing `msg_…` id; `public_model` the name the client asked for.
    pub fn new(message_id: String, public_model: String) -> Self {
        AnthropicStreamEncoder {
            message_id,
            model: public_model,
            started: false,
            ended: false,
            open: None,
            next_index: 0,
            tools: BTreeMap::new(),
            finish: None,
            usage: Usage::default(),
        }
    }

    fn start(&mut self, out: &mut Vec<String>) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = json!({
            "input_tokens": uncached_input(&self.usage).unwrap_or(0),
            "output_tokens": 0,
        });
        out.push(sse(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": self.message_id, "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": usage,
            }}),
        ));
    }

    /// Closes the open block, then emits every held tool call whole.
    fn close(&mut self, out: &mut Vec<String>) {
        if self.open.take().is_some() {
            out.push(block_stop(self.next_index - 1));
        }
        let held: Vec<u32> = self
            .tools
            .iter()
            .filter(|(_, call)| matches!(call.state, ToolState::Held(_)))
            .map(|(index, _)| *index)
            .collect();
        for index in held {
            self.open_tool(index, out);
            if let Some(call) = self.tools.get_mut(&index) {
                if let ToolState::Held(arguments) =
                    std::mem::replace(&mut call.state, ToolState::Emitted)
                {
                    if !arguments.is_empty() {
                        out.push(input_delta(self.next_index - 1, &arguments));
                    }
                }
            }
            out.push(block_stop(self.next_index - 1));
            self.open = None;
        }
    }

    fn ensure_open(&mut self, kind: Open, out: &mut Vec<String>) {
        if self.open == Some(kind) {
            return;
        }
        self.close(out);
        let block = match kind {
            Open::Thinking => json!({"type": "thinking", "thinking": ""}),
            _ => json!({"type": "text", "text": ""}),
        };
        out.push(block_start(self.next_index, block));
        self.next_index += 1;
        self.open = Some(kind);
    }

    fn open_tool(&mut self, index: u32, out: &mut Vec<String>) {
        let Some(call) = self.tools.get(&index) else {
            return;
        };
        let block = json!({"type": "tool_use", "id": call.id, "name": call.name, "input": {}});
        out.push(block_start(self.next_index, block));
        self.next_index += 1;
        self.open = Some(Open::Tool(index));
    }

    fn tool_start(&mut self, index: u32, id: &str, name: &str, out: &mut Vec<String>) {
        if self.tools.contains_key(&index) {
            return;
        }
        let id = if id.is_empty() {
            format!(
                "toolu_{}_{index}",
                self.message_id.trim_start_matches("msg_")
            )
        } else {
            sanitize_id(id)
        };
        let hold = matches!(self.open, Some(Open::Tool(_)));
        let state = if hold {
            ToolState::Held(String::new())
        } else {
            ToolState::Emitted
        };
        self.tools.insert(
            index,
            ToolCall {
                id,
                name: name.to_string(),
                state,
            },
        );
        if !hold {
            self.close(out);
            self.open_tool(index, out);
        }
    }

    fn tool_delta(&mut self, index: u32, arguments: &str, out: &mut Vec<String>) {
        if arguments.is_empty() {
            return;
        }
        match self.tools.get_mut(&index) {
            Some(ToolCall {
                state: ToolState::Held(held),
                ..
            }) => held.push_str(arguments),
            Some(_) if self.open == Some(Open::Tool(index)) => {
                out.push(input_delta(self.next_index - 1, arguments))
            }
            // A piece for a block already closed, or for a call that never started, has
            // nowhere valid to go: a block is never reopened.
            _ => {}
        }
    }

    /// Later usage wins field by field, except that an estimate never replaces a number the
    /// upstream reported (§7 "stream usage").
    fn remember_usage(&mut self, later: &Usage) {
        if later.estimated {
            let fill = |mine: &mut Option<u64>, theirs: Option<u64>| {
                if mine.is_none() {
                    *mine = theirs;
                }
            };
            fill(&mut self.usage.input_total, later.input_total);
            fill(&mut self.usage.cache_read, later.cache_read);
            fill(&mut self.usage.cache_write, later.cache_write);
            fill(&mut self.usage.output_total, later.output_total);
            fill(&mut self.usage.reasoning, later.reasoning);
            self.usage.estimated = true;
        } else {
            self.usage.merge(later);
        }
    }
}

impl StreamEncoder for AnthropicStreamEncoder {
    fn feed(&mut self, event: &StreamEvent) -> Vec<String> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        match event {
            StreamEvent::Usage(usage) => {
                self.remember_usage(usage);
                return out;
            }
            StreamEvent::Error(error) => {
                self.ended = true;
                out.push(sse(
                    "error",
                    stream_error_body(error.status, &error.message),
                ));
                return out;
            }
            _ => self.start(&mut out),
        }
        match event {
            StreamEvent::ReasoningDelta { choice, text }
                if *choice == CHOICE && !text.is_empty() =>
            {
                self.ensure_open(Open::Thinking, &mut out);
                out.push(delta(
                    self.next_index - 1,
                    json!({"type": "thinking_delta", "thinking": text}),
                ));
            }
            StreamEvent::ReasoningSignature { choice, signature } if *choice == CHOICE => {
                self.ensure_open(Open::Thinking, &mut out);
                out.push(delta(
                    self.next_index - 1,
                    json!({"type": "signature_delta", "signature": signature}),
                ));
            }
            StreamEvent::RedactedReasoning { choice, data } if *choice == CHOICE => {
                self.close(&mut out);
                out.push(block_start(
                    self.next_index,
                    json!({"type": "redacted_thinking", "data": data}),
                ));
                out.push(block_stop(self.next_index));
                self.next_index += 1;
            }
            StreamEvent::TextDelta { choice, text } if *choice == CHOICE && !text.is_empty() => {
                self.ensure_open(Open::Text, &mut out);
                out.push(delta(
                    self.next_index - 1,
                    json!({"type": "text_delta", "text": text}),
                ));
            }
            StreamEvent::ToolCallStart {
                choice,
                index,
                id,
                name,
            } if *choice == CHOICE => {
                self.tool_start(*index, id, name, &mut out);
            }
            StreamEvent::ToolCallDelta {
                choice,
                index,
                arguments,
            } if *choice == CHOICE => {
                self.tool_delta(*index, arguments, &mut out);
            }
            StreamEvent::Finish { choice, reason } if *choice == CHOICE => {
                // Remembered only: the usage usually comes after the finish.
                self.finish = Some(reason.clone());
            }
            _ => {}
        }
        out
    }

    fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.ended = true;
        self.start(&mut out);
        self.close(&mut out);
        let (stop_reason, stop_sequence) =
            reason_for_finish(self.finish.as_ref(), !self.tools.is_empty());
        let mut usage = json!({"output_tokens": self.usage.output_total.unwrap_or(0)});
        if let Some(input) = uncached_input(&self.usage) {
            usage["input_tokens"] = json!(input);
        }
        if let Some(read) = self.usage.cache_read {
            usage["cache_read_input_tokens"] = json!(read);
        }
        if let Some(write) = self.usage.cache_write {
            usage["cache_creation_input_tokens"] = json!(write);
        }
        out.push(sse(
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": usage}),
        ));
        out.push(sse("message_stop", json!({"type": "message_stop"})));
        out
    }
}

fn sse(name: &str, data: Value) -> String {
    frame(
        &SseEvent {
            event: Some(name.to_string()),
            data: data.to_string(),
            id: None,
            status: None,
        },
        true,
    )
}

fn block_start(index: u32, block: Value) -> String {
    sse(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

fn delta(index: u32, delta: Value) -> String {
    sse(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn input_delta(index: u32, partial_json: &str) -> String {
    delta(
        index,
        json!({"type": "input_json_delta", "partial_json": partial_json}),
    )
}

fn block_stop(index: u32) -> String {
    sse(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    )
}

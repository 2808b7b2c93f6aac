//! Canonical stream events → the SSE a DashScope client reads (protocols.md §6.4, §6.3).
//!
//! Each frame is `id:<n>\nevent:result\n:HTTP_STATUS/200\ndata:<json>\n\n`, with the running
//! usage and the request id in every event and `finish_reason:"null"` until each choice's last
//! event. `Finish` and `Usage` produce no frame of their own: usage rides on the next frame, and
//! the final events (one per choice, with the reason and the last usage) go out from `finish()`,
//! because OpenAI-style upstreams report usage only after the reason.
//!
//! Incremental clients get each piece once; cumulative clients (DashScope's default) get the
//! whole text, reasoning and tool calls of the choice so far in every event. In the text format
//! only the first choice's text is sent: reasoning and tool calls have no place there.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::error_body;
use super::response::finish_to_wire;
use super::wire::{
    WireChoice, WireContent, WireFunctionCall, WireMessage, WireOutput, WireResponse, WireToolCall,
    WireUsage,
};
use super::{DashScopeOptions, ResultFormat};
use crate::protocol::canonical::{FinishReason, StreamError, StreamEvent, Usage};
use crate::protocol::sse::{frame, SseEvent};
use crate::protocol::StreamEncoder;

/// Encodes one client stream.
#[derive(Debug)]
pub struct DashScopeStreamEncoder {
    request_id: String,
    options: DashScopeOptions,
    next_id: u64,
    usage: Option<Usage>,
    choices: BTreeMap<u32, ChoiceState>,
    closed: bool,
}

#[derive(Debug, Default)]
struct ChoiceState {
    text: String,
    reasoning: String,
    tools: Vec<ToolState>,
    finish: Option<FinishReason>,
}

#[derive(Debug, Clone)]
struct ToolState {
    /// The canonical index (counts tool calls of the choice from 0).
    index: u32,
    id: String,
    name: String,
    arguments: String,
}

/// What one frame adds to a choice (incremental mode sends just this).
#[derive(Default)]
struct Piece {
    text: String,
    reasoning: String,
    tool: Option<WireToolCall>,
}

impl DashScopeStreamEncoder {
    /// `request_id` is the gateway's id for the call, repeated in every event.
    pub fn new(request_id: String, options: DashScopeOptions) -> Self {
        DashScopeStreamEncoder {
            request_id,
            options,
            next_id: 0,
            usage: None,
            choices: BTreeMap::new(),
            closed: false,
        }
    }

    fn content(&mut self, choice: u32, piece: Piece) -> Vec<String> {
        let text_format = self.options.result_format == ResultFormat::Text;
        let empty = piece.text.is_empty() && piece.reasoning.is_empty() && piece.tool.is_none();
        if empty || (text_format && (choice != 0 || piece.text.is_empty())) {
            return Vec::new();
        }
        let output = self.output(choice, piece, "null");
        vec![self.frame(output)]
    }

    /// The `output` of one event for `choice`.
    fn output(&self, choice: u32, piece: Piece, reason: &str) -> WireOutput {
        let state = self.choices.get(&choice);
        let cumulative = !self.options.incremental_output;
        let (text, reasoning) = match (cumulative, state) {
            (true, Some(state)) => (state.text.clone(), state.reasoning.clone()),
            _ => (piece.text, piece.reasoning),
        };
        if self.options.result_format == ResultFormat::Text {
            return WireOutput {
                text: Some(text),
                finish_reason: Some(reason.to_string()),
                choices: None,
            };
        }
        let tool_calls = match (cumulative, state) {
            (true, Some(state)) => state.tools.iter().map(whole_call).collect(),
            _ => piece.tool.into_iter().collect(),
        };
        let message = WireMessage {
            role: Some("assistant".into()),
            content: Some(WireContent::Text(text)),
            reasoning_content: Some(reasoning).filter(|r| !r.is_empty()),
            tool_calls: Some(tool_calls).filter(|c: &Vec<WireToolCall>| !c.is_empty()),
            ..WireMessage::default()
        };
        WireOutput {
            choices: Some(vec![WireChoice {
                message: Some(message),
                index: Some(choice),
                finish_reason: Some(reason.to_string()),
            }]),
            ..WireOutput::default()
        }
    }

    fn frame(&mut self, output: WireOutput) -> String {
        let body = WireResponse {
            output: Some(output),
            usage: self.usage.as_ref().map(WireUsage::from_canonical),
            request_id: Some(self.request_id.clone()),
            ..WireResponse::default()
        };
        let data = serde_json::to_string(&body).unwrap_or_default();
        self.sse("result", 200, data)
    }

    fn sse(&mut self, event: &str, status: u16, data: String) -> String {
        self.next_id += 1;
        frame(
            &SseEvent {
                event: Some(event.into()),
                data,
                id: Some(self.next_id.to_string()),
                status: Some(status),
            },
            false,
        )
    }

    fn error(&mut self, error: &StreamError) -> Vec<String> {
        self.closed = true;
        let (status, body) = error_body(error.status, &error.message, &self.request_id);
        let data = serde_json::to_string(&body).unwrap_or_default();
        vec![self.sse("error", status, data)]
    }
}

/// A tool call as sent in full (its first piece, or every cumulative event).
fn whole_call(tool: &ToolState) -> WireToolCall {
    WireToolCall {
        index: Some(tool.index),
        id: Some(tool.id.clone()),
        kind: Some("function".into()),
        function: WireFunctionCall {
            name: Some(tool.name.clone()),
            arguments: Some(Value::String(tool.arguments.clone())),
        },
    }
}

impl StreamEncoder for DashScopeStreamEncoder {
    fn feed(&mut self, event: &StreamEvent) -> Vec<String> {
        if self.closed {
            return Vec::new();
        }
        match event {
            StreamEvent::TextDelta { choice, text } => {
                self.choices.entry(*choice).or_default().text.push_str(text);
                let piece = Piece {
                    text: text.clone(),
                    ..Piece::default()
                };
                self.content(*choice, piece)
            }
            StreamEvent::ReasoningDelta { choice, text } => {
                self.choices
                    .entry(*choice)
                    .or_default()
                    .reasoning
                    .push_str(text);
                if self.options.result_format == ResultFormat::Text {
                    return Vec::new();
                }
                let piece = Piece {
                    reasoning: text.clone(),
                    ..Piece::default()
                };
                self.content(*choice, piece)
            }
            StreamEvent::ToolCallStart {
                choice,
                index,
                id,
                name,
            } => {
                let tool = ToolState {
                    index: *index,
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                };
                let piece = Piece {
                    tool: Some(whole_call(&tool)),
                    ..Piece::default()
                };
                self.choices.entry(*choice).or_default().tools.push(tool);
                if self.options.result_format == ResultFormat::Text {
                    return Vec::new();
                }
                self.content(*choice, piece)
            }
            StreamEvent::ToolCallDelta {
                choice,
                index,
                arguments,
            } => {
                let state = self.choices.entry(*choice).or_default();
                let Some(tool) = state.tools.iter_mut().find(|t| t.index == *index) else {
                    return Vec::new();
                };
                tool.arguments.push_str(arguments);
                if self.options.result_format == ResultFormat::Text {
                    return Vec::new();
                }
                // Later pieces carry `"id":""` and no name, as DashScope sends them.
                let call = WireToolCall {
                    index: Some(*index),
                    id: Some(String::new()),
                    kind: Some("function".into()),
                    function: WireFunctionCall {
                        name: None,
                        arguments: Some(Value::String(arguments.clone())),
                    },
                };
                let piece = Piece {
                    tool: Some(call),
                    ..Piece::default()
                };
                self.content(*choice, piece)
            }
            StreamEvent::Finish { choice, reason } => {
                self.choices.entry(*choice).or_default().finish = Some(reason.clone());
                Vec::new()
            }
            StreamEvent::Usage(usage) => {
                self.usage.get_or_insert_with(Usage::default).merge(usage);
                Vec::new()
            }
            StreamEvent::Error(error) => self.error(error),
            StreamEvent::Start { .. }
            | StreamEvent::ReasoningSignature { .. }
            | StreamEvent::RedactedReasoning { .. } => Vec::new(),
        }
    }

    /// Sends each choice's final event (its reason, the last usage) and closes; a choice that
    /// got no reason ends with `tool_calls` if it made calls, else `stop`.
    fn finish(&mut self) -> Vec<String> {
        if self.closed {
            return Vec::new();
        }
        self.closed = true;
        self.choices.entry(0).or_default();
        let mut indexes: Vec<u32> = self.choices.keys().copied().collect();
        if self.options.result_format == ResultFormat::Text {
            indexes.truncate(1);
        }
        let mut frames = Vec::new();
        for choice in indexes {
            let reason = match self.choices.get(&choice) {
                Some(ChoiceState {
                    finish: Some(reason),
                    ..
                }) => finish_to_wire(reason),
                Some(state) if !state.tools.is_empty() => "tool_calls",
                _ => "stop",
            };
            let output = self.output(choice, Piece::default(), reason);
            frames.push(self.frame(output));
        }
        frames
    }
}

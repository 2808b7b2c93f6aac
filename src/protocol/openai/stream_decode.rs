//! OpenAI-style stream chunks (OpenAI, DashScope compatible-mode, vLLM, MiniMax) → canonical
//! stream events (protocols.md §1 "Streaming", §6.1 step 2–3).
//!
//! Tool-call pieces are joined by their `index` per choice, never by arrival order: whether
//! every compatible server keeps calls apart is unverified, so interleaved indexes are fine.
//! Canonical tool indexes are given in order of first appearance, so an upstream that numbers
//! from 1 or skips numbers still yields 0, 1, 2…

use std::collections::BTreeMap;

use super::error::{message_of_error, status_of_error};
use super::response::finish_from;
use super::wire::{content_text, Completion, OrUnknown, ResponseMessage, ThinkingBlock, ToolCall};
use crate::protocol::canonical::{StreamError, StreamEvent};
use crate::protocol::sse::SseEvent;
use crate::protocol::StreamDecoder;

/// Decodes an OpenAI-style upstream stream.
#[derive(Debug, Default)]
pub struct OpenAiStreamDecoder {
    started: bool,
    done: bool,
    choices: BTreeMap<u32, ChoiceState>,
}

#[derive(Debug, Default)]
struct ChoiceState {
    /// Upstream tool `index` → canonical index (the position in this list).
    tools: Vec<u32>,
    finished: bool,
}

impl OpenAiStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the stream over (after an error a dialect wrapper found itself).
    pub(crate) fn stop(&mut self) {
        self.done = true;
    }

    /// Handles one parsed chunk: `delta`s only (a whole `message` in a chunk repeats what the
    /// deltas already said), then `finish_reason`, then `usage`.
    pub(crate) fn feed_chunk(&mut self, chunk: &Completion) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        if self.done {
            return events;
        }
        if let Some(error) = &chunk.error {
            self.done = true;
            events.push(StreamEvent::Error(StreamError {
                status: status_of_error(error),
                message: message_of_error(error),
            }));
            return events;
        }
        if !self.started {
            self.started = true;
            events.push(StreamEvent::Start {
                id: chunk.id.clone().unwrap_or_default(),
                model: chunk.model.clone().unwrap_or_default(),
            });
        }
        for (position, choice) in chunk.choices.iter().enumerate() {
            let index = choice.index.unwrap_or(position as u32);
            let state = self.choices.entry(index).or_default();
            if let Some(delta) = &choice.delta {
                delta_events(delta, index, state, &mut events);
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                if !state.finished && !reason.is_empty() && reason != "null" {
                    state.finished = true;
                    events.push(StreamEvent::Finish {
                        choice: index,
                        reason: finish_from(reason, !state.tools.is_empty()),
                    });
                }
            }
        }
        if let Some(usage) = chunk.usage.as_ref().and_then(super::usage_from) {
            events.push(StreamEvent::Usage(usage));
        }
        events
    }

    fn error(&mut self, message: String) -> Vec<StreamEvent> {
        self.done = true;
        vec![StreamEvent::Error(StreamError {
            status: 502,
            message,
        })]
    }
}

impl StreamDecoder for OpenAiStreamDecoder {
    fn feed(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        let data = event.data.trim();
        if self.done || data.is_empty() {
            return Vec::new();
        }
        if data == "[DONE]" {
            self.done = true;
            return Vec::new();
        }
        match serde_json::from_str::<Completion>(data) {
            Ok(chunk) => self.feed_chunk(&chunk),
            Err(e) => self.error(format!("undecodable upstream stream chunk: {e}")),
        }
    }

    /// Nothing is held back: every piece is emitted as it arrives. A stream cut before its
    /// finish is closed by the client-side encoder.
    fn finish(&mut self) -> Vec<StreamEvent> {
        Vec::new()
    }

    fn done(&self) -> bool {
        self.done
    }
}

/// One delta: reasoning (or thinking blocks), then text, then tool-call pieces. `role` (even
/// `""`) carries nothing.
fn delta_events(
    delta: &ResponseMessage,
    choice: u32,
    state: &mut ChoiceState,
    out: &mut Vec<StreamEvent>,
) {
    match &delta.thinking_blocks {
        // The extension carries signatures; its text repeats `reasoning_content`.
        Some(blocks) if !blocks.is_empty() => {
            for block in blocks {
                match block {
                    OrUnknown::Known(ThinkingBlock::Thinking {
                        thinking,
                        signature,
                    }) => {
                        if !thinking.is_empty() {
                            out.push(StreamEvent::ReasoningDelta {
                                choice,
                                text: thinking.clone(),
                            });
                        }
                        if let Some(signature) = signature.clone().filter(|s| !s.is_empty()) {
                            out.push(StreamEvent::ReasoningSignature { choice, signature });
                        }
                    }
                    OrUnknown::Known(ThinkingBlock::RedactedThinking { data }) => {
                        out.push(StreamEvent::RedactedReasoning {
                            choice,
                            data: data.clone(),
                        });
                    }
                    OrUnknown::Unknown(_) => {}
                }
            }
        }
        _ => {
            if let Some(text) = delta.reasoning_content.as_ref().filter(|t| !t.is_empty()) {
                out.push(StreamEvent::ReasoningDelta {
                    choice,
                    text: text.clone(),
                });
            }
        }
    }
    let mut text = delta.content.as_ref().map(content_text).unwrap_or_default();
    // A refusal streams in its own field; it is visible text all the same.
    text.push_str(delta.refusal.as_deref().unwrap_or(""));
    if !text.is_empty() {
        out.push(StreamEvent::TextDelta { choice, text });
    }
    for call in &delta.tool_calls {
        tool_events(call, choice, state, out);
    }
}

fn tool_events(call: &ToolCall, choice: u32, state: &mut ChoiceState, out: &mut Vec<StreamEvent>) {
    // `id:""` (DashScope's later pieces) is no id.
    let id = call.id.clone().filter(|id| !id.is_empty());
    let upstream = match call.index {
        Some(index) => index,
        // No index (non-conforming servers): a new id opens a new call, else the last one.
        None => match (&id, state.tools.last()) {
            (None, Some(last)) => *last,
            _ => state
                .tools
                .iter()
                .max()
                .map_or(0, |max| max.saturating_add(1)),
        },
    };
    let position = state.tools.iter().position(|&known| known == upstream);
    let index = match position {
        Some(position) => position as u32,
        None => {
            let index = state.tools.len() as u32;
            state.tools.push(upstream);
            let name = call.function.as_ref().and_then(|f| f.name.clone());
            out.push(StreamEvent::ToolCallStart {
                choice,
                index,
                id: id.unwrap_or_else(|| format!("call_{choice}_{index}")),
                name: name.unwrap_or_default(),
            });
            index
        }
    };
    let arguments = call
        .function
        .as_ref()
        .and_then(|f| f.arguments.as_ref())
        .map(|a| a.to_text())
        .unwrap_or_default();
    if !arguments.is_empty() {
        out.push(StreamEvent::ToolCallDelta {
            choice,
            index,
            arguments,
        });
    }
}

//! Anthropic SSE from an upstream → canonical stream events (protocols.md §2 "Streaming", §6.2).
//!
//! Tool calls are numbered by a counter over `tool_use` blocks only, never by the block index
//! (§7 "stream tool index": a thinking or text block before the call would shift it). Usage is
//! kept per raw Anthropic field so a `message_delta` that repeats only some of them still yields
//! the right cache-inclusive input total.

use std::collections::HashMap;

use super::error::status_for_error_type;
use super::request::arguments_from_input;
use super::response::{finish_from_reason, usage_from_wire};
use super::wire::{Block, Delta, KnownBlock, KnownDelta, WireStreamEvent, WireUsage};
use crate::protocol::canonical::{StreamError, StreamEvent, Usage};
use crate::protocol::sse::SseEvent;
use crate::protocol::StreamDecoder;

/// One Anthropic stream carries one choice.
const CHOICE: u32 = 0;

#[derive(Debug, Default)]
pub struct AnthropicStreamDecoder {
    /// Anthropic block index → what that block is.
    blocks: HashMap<u64, BlockKind>,
    tool_counter: u32,
    usage: WireUsage,
    done: bool,
}

#[derive(Debug, Clone)]
enum BlockKind {
    Text,
    Thinking,
    Tool {
        index: u32,
        /// Whether any argument piece arrived (if none, the start's `input` is the input).
        streamed: bool,
        /// A non-empty `input` on `content_block_start` (some compatible servers send the whole
        /// input there instead of as deltas).
        start_input: Option<String>,
    },
    Other,
}

impl AnthropicStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn block_start(&mut self, index: u64, block: Block) -> Vec<StreamEvent> {
        let (kind, events) = match block {
            // Real Anthropic starts text and thinking empty; a server that repeats the text
            // here sends it again as deltas (MiniMax), so the start's text is not emitted.
            Block::Known(KnownBlock::Text { .. }) => (BlockKind::Text, vec![]),
            Block::Known(KnownBlock::Thinking { .. }) => (BlockKind::Thinking, vec![]),
            Block::Known(KnownBlock::RedactedThinking { data, .. }) => (
                BlockKind::Other,
                vec![StreamEvent::RedactedReasoning {
                    choice: CHOICE,
                    data,
                }],
            ),
            Block::Known(KnownBlock::ToolUse {
                id, name, input, ..
            }) => {
                let tool = self.tool_counter;
                self.tool_counter += 1;
                let start_input = match &input {
                    serde_json::Value::Object(map) if !map.is_empty() => {
                        Some(arguments_from_input(&input))
                    }
                    _ => None,
                };
                (
                    BlockKind::Tool {
                        index: tool,
                        streamed: false,
                        start_input,
                    },
                    vec![StreamEvent::ToolCallStart {
                        choice: CHOICE,
                        index: tool,
                        id,
                        name,
                    }],
                )
            }
            _ => (BlockKind::Other, vec![]),
        };
        self.blocks.insert(index, kind);
        events
    }

    fn block_delta(&mut self, index: u64, delta: Delta) -> Vec<StreamEvent> {
        let Delta::Known(delta) = delta else {
            return vec![];
        };
        let event = match delta {
            KnownDelta::TextDelta { text } if !text.is_empty() => StreamEvent::TextDelta {
                choice: CHOICE,
                text,
            },
            KnownDelta::ThinkingDelta { thinking } if !thinking.is_empty() => {
                StreamEvent::ReasoningDelta {
                    choice: CHOICE,
                    text: thinking,
                }
            }
            KnownDelta::SignatureDelta { signature } if !signature.is_empty() => {
                StreamEvent::ReasoningSignature {
                    choice: CHOICE,
                    signature,
                }
            }
            KnownDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                match self.blocks.get_mut(&index) {
                    Some(BlockKind::Tool {
                        index, streamed, ..
                    }) => {
                        *streamed = true;
                        StreamEvent::ToolCallDelta {
                            choice: CHOICE,
                            index: *index,
                            arguments: partial_json,
                        }
                    }
                    // Arguments for a block that never started as a tool cannot be placed.
                    _ => return vec![],
                }
            }
            _ => return vec![],
        };
        vec![event]
    }

    /// A tool block that got no deltas but had its input on the start: emit that input now.
    fn block_stop(&mut self, index: u64) -> Vec<StreamEvent> {
        match self.blocks.get_mut(&index) {
            Some(BlockKind::Tool {
                index,
                streamed: false,
                start_input,
            }) => match start_input.take() {
                Some(arguments) => vec![StreamEvent::ToolCallDelta {
                    choice: CHOICE,
                    index: *index,
                    arguments,
                }],
                None => vec![],
            },
            _ => vec![],
        }
    }

    /// Folds a usage report into the raw fields and returns the canonical update: input fields
    /// only when this report touched the input side, so an output-only report does not repeat
    /// stale input numbers.
    fn usage_update(&mut self, later: &WireUsage) -> Usage {
        let keep = |mine: &mut Option<u64>, theirs: Option<u64>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        let input_changed = later.input_tokens.is_some()
            || later.cache_read_input_tokens.is_some()
            || later.cache_creation_input_tokens.is_some();
        keep(&mut self.usage.input_tokens, later.input_tokens);
        keep(
            &mut self.usage.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        keep(
            &mut self.usage.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        let mut usage = usage_from_wire(&self.usage);
        if !input_changed {
            // Only the output side moved: leave the input fields for the earlier report.
            usage.input_total = None;
            usage.cache_read = None;
            usage.cache_write = None;
        }
        usage.output_total = later.output_tokens;
        usage.reasoning = later
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.thinking_tokens);
        usage
    }
}

impl StreamDecoder for AnthropicStreamDecoder {
    fn feed(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        if self.done {
            return vec![];
        }
        // The `type` inside the data names the event; the `event:` line says the same thing.
        let Ok(wire) = serde_json::from_str::<WireStreamEvent>(&event.data) else {
            return vec![];
        };
        match wire {
            WireStreamEvent::MessageStart { message } => {
                let mut events = vec![StreamEvent::Start {
                    id: message.id,
                    model: message.model,
                }];
                if let Some(usage) = &message.usage {
                    // `output_tokens` here is a placeholder (about 1): the input side only.
                    let usage = self.usage_update(&WireUsage {
                        output_tokens: None,
                        output_tokens_details: None,
                        ..usage.clone()
                    });
                    if usage.input_total.is_some() {
                        events.push(StreamEvent::Usage(usage));
                    }
                }
                events
            }
            WireStreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(index, content_block),
            WireStreamEvent::ContentBlockDelta { index, delta } => self.block_delta(index, delta),
            WireStreamEvent::ContentBlockStop { index } => self.block_stop(index),
            WireStreamEvent::MessageDelta { delta, usage } => {
                let mut events = Vec::new();
                if let Some(usage) = &usage {
                    events.push(StreamEvent::Usage(self.usage_update(usage)));
                }
                if let Some(reason) = delta.stop_reason.as_deref() {
                    events.push(StreamEvent::Finish {
                        choice: CHOICE,
                        reason: finish_from_reason(reason, delta.stop_sequence),
                    });
                }
                events
            }
            WireStreamEvent::MessageStop => {
                self.done = true;
                vec![]
            }
            WireStreamEvent::Ping => vec![],
            WireStreamEvent::Error { error } => {
                self.done = true;
                vec![StreamEvent::Error(StreamError {
                    status: status_for_error_type(&error.kind),
                    message: error.message,
                })]
            }
        }
    }

    fn finish(&mut self) -> Vec<StreamEvent> {
        // A tool block cut off before its stop still hands over an input it got on its start.
        let mut open: Vec<u64> = self.blocks.keys().copied().collect();
        open.sort_unstable();
        open.into_iter().flat_map(|i| self.block_stop(i)).collect()
    }

    fn done(&self) -> bool {
        self.done
    }
}

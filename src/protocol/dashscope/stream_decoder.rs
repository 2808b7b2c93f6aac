//! DashScope native SSE (protocols.md §3 streaming, §6.3) → canonical stream events.
//!
//! Every event is `event:result` with a whole response body inside: choices with a `message`,
//! running usage, and `finish_reason:"null"` until the end. There is no end marker: the stream
//! is over after the first event whose reason is not `"null"` (its content is handled first).
//! `event:error` (or a `:HTTP_STATUS/4xx` comment) carries `{"code","message"}`.
//!
//! **Incremental or cumulative.** The gateway asks for `incremental_output:true`, but some models
//! and modes ignore it and resend all text so far in every event. Appending those would repeat
//! the answer (§7 DashScope cumulative text), so the decoder keeps, per choice, the text, the
//! reasoning and each tool call's arguments known so far, and decides the mode once for the whole
//! stream, at the first event that brings a non-empty value for a field that already holds text:
//! if the new value starts with everything known so far, the stream is cumulative, otherwise
//! incremental. Until then both readings agree. Cumulative values give the part after what was
//! known, cut on a char boundary; a value that rewrites earlier text yields what follows the
//! common prefix (text already sent cannot be taken back). The rule misreads an incremental
//! stream whose second piece of a field starts with the whole first piece (say `"ha"`, `"haha"`);
//! that is rare enough, and after it the cumulative reading degrades to appending new pieces.
//!
//! Tool calls are keyed by `(choice, upstream index)` (by id, or the last call, when a piece has
//! no index); a piece with `"id":""` and no name continues its call (§7 DashScope stream tools).
//! Usage is reported after each event that carries it, as the running totals it is (§7 stream
//! usage: the latest wins, never summed).

use std::collections::BTreeMap;

use super::error::status_for_code;
use super::response::{call_id, content_text, finish_from_wire};
use super::wire::{WireChoice, WireContent, WireError, WireMessage, WireResponse, WireToolCall};
use crate::protocol::canonical::{StreamError, StreamEvent};
use crate::protocol::sse::SseEvent;
use crate::protocol::StreamDecoder;

/// Decodes one upstream DashScope stream. Build one per request.
#[derive(Debug)]
pub struct DashScopeStreamDecoder {
    expected_choices: u32,
    started: bool,
    done: bool,
    mode: Mode,
    request_id: String,
    choices: BTreeMap<u32, ChoiceState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unknown,
    Incremental,
    Cumulative,
}

#[derive(Debug, Default)]
struct ChoiceState {
    text: String,
    reasoning: String,
    tools: Vec<ToolState>,
    finished: bool,
}

#[derive(Debug)]
struct ToolState {
    upstream_index: Option<u32>,
    id: String,
    arguments: String,
}

impl Default for DashScopeStreamDecoder {
    fn default() -> Self {
        DashScopeStreamDecoder::new()
    }
}

impl DashScopeStreamDecoder {
    /// A decoder for a one-choice stream.
    pub fn new() -> Self {
        DashScopeStreamDecoder {
            expected_choices: 1,
            started: false,
            done: false,
            mode: Mode::Unknown,
            request_id: String::new(),
            choices: BTreeMap::new(),
        }
    }

    /// For `n > 1`: the stream is done only once this many choices have finished.
    pub fn with_choices(mut self, n: u32) -> Self {
        self.expected_choices = n.max(1);
        self
    }

    fn result(&mut self, wire: WireResponse) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if let Some(id) = wire.request_id.filter(|id| !id.is_empty()) {
            if self.request_id.is_empty() {
                self.request_id = id;
            }
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: self.request_id.clone(),
                model: String::new(),
            });
        }
        let output = wire.output.unwrap_or_default();
        let choices = match output.choices {
            Some(choices) => choices,
            // The text format: one choice, the text in `output.text`.
            None => vec![WireChoice {
                message: Some(WireMessage {
                    content: output.text.map(WireContent::Text),
                    ..Default::default()
                }),
                index: Some(0),
                finish_reason: output.finish_reason,
            }],
        };
        // The event's running usage goes first, so that an encoder can send it with this
        // event's content; `Finish` comes last, after the content it ends.
        if let Some(usage) = wire.usage {
            out.push(StreamEvent::Usage(usage.to_canonical()));
        }
        let mut finishes = Vec::new();
        for (position, choice) in choices.into_iter().enumerate() {
            let index = choice.index.unwrap_or(position as u32);
            finishes.extend(self.choice(index, choice, &mut out));
        }
        out.extend(finishes);
        let finished = self.choices.values().filter(|c| c.finished).count() as u32;
        if finished >= self.expected_choices && self.choices.values().all(|c| c.finished) {
            self.done = true;
        }
        out
    }

    /// Handles one choice's content; returns its `Finish`, if this event ends it.
    fn choice(
        &mut self,
        index: u32,
        choice: WireChoice,
        out: &mut Vec<StreamEvent>,
    ) -> Option<StreamEvent> {
        let state = self.choices.entry(index).or_default();
        if state.finished {
            return None;
        }
        let message = choice.message.unwrap_or_default();
        let reasoning = message.reasoning_content.unwrap_or_default();
        let piece = advance(&mut self.mode, &mut state.reasoning, &reasoning);
        if !piece.is_empty() {
            out.push(StreamEvent::ReasoningDelta {
                choice: index,
                text: piece,
            });
        }
        let text = content_text(message.content.as_ref());
        let piece = advance(&mut self.mode, &mut state.text, &text);
        if !piece.is_empty() {
            out.push(StreamEvent::TextDelta {
                choice: index,
                text: piece,
            });
        }
        for call in message.tool_calls.unwrap_or_default() {
            tool_piece(&mut self.mode, state, index, call, &self.request_id, out);
        }
        let reason = finish_from_wire(choice.finish_reason.as_deref(), !state.tools.is_empty())?;
        state.finished = true;
        Some(StreamEvent::Finish {
            choice: index,
            reason,
        })
    }

    fn error(&mut self, event: &SseEvent) -> StreamEvent {
        self.done = true;
        let wire: WireError = serde_json::from_str(&event.data).unwrap_or_default();
        let status = event
            .status
            .filter(|status| *status >= 400)
            .or_else(|| wire.code.as_deref().map(status_for_code))
            .unwrap_or(500);
        let message = match (wire.code, wire.message) {
            (Some(code), Some(message)) if !message.is_empty() => format!("{code}: {message}"),
            (code, message) => message
                .or(code)
                .unwrap_or_else(|| "The DashScope upstream stream failed.".into()),
        };
        StreamEvent::Error(StreamError { status, message })
    }
}

/// One piece of a tool call: a new call starts (with its id, or one made up when it came as
/// `""`), then its arguments advance like text.
fn tool_piece(
    mode: &mut Mode,
    state: &mut ChoiceState,
    choice: u32,
    call: WireToolCall,
    request_id: &str,
    out: &mut Vec<StreamEvent>,
) {
    let id = call.id.clone().filter(|id| !id.is_empty());
    let found = match (call.index, &id) {
        (Some(index), _) => state
            .tools
            .iter()
            .position(|t| t.upstream_index == Some(index)),
        (None, Some(id)) => state.tools.iter().position(|t| &t.id == id),
        (None, None) => state.tools.len().checked_sub(1),
    };
    let slot = match found {
        Some(slot) => slot,
        None => {
            let slot = state.tools.len();
            let id = call_id(id, request_id, slot);
            out.push(StreamEvent::ToolCallStart {
                choice,
                index: slot as u32,
                id: id.clone(),
                name: call.function.name.clone().unwrap_or_default(),
            });
            state.tools.push(ToolState {
                upstream_index: call.index,
                id,
                arguments: String::new(),
            });
            slot
        }
    };
    let arguments = call.function.arguments_text();
    let piece = advance(mode, &mut state.tools[slot].arguments, &arguments);
    if !piece.is_empty() {
        out.push(StreamEvent::ToolCallDelta {
            choice,
            index: slot as u32,
            arguments: piece,
        });
    }
}

/// The new part of a field. `known` is everything of the field so far; see the module docs for
/// how the mode is decided.
fn advance(mode: &mut Mode, known: &mut String, value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    if known.is_empty() {
        known.push_str(value);
        return value.to_string();
    }
    if *mode == Mode::Unknown {
        *mode = if value.starts_with(known.as_str()) {
            Mode::Cumulative
        } else {
            Mode::Incremental
        };
    }
    if *mode == Mode::Incremental {
        known.push_str(value);
        return value.to_string();
    }
    let kept = common_prefix(known, value);
    if kept < known.len() {
        tracing::warn!(
            "DashScope cumulative stream rewrote earlier text; sending what follows the common prefix"
        );
    }
    // `kept` is a char boundary of `value` (see `common_prefix`), so `get` always succeeds.
    let piece = value.get(kept..).unwrap_or_default().to_string();
    *known = value.to_string();
    piece
}

/// Length in bytes of the longest common prefix of `a` and `b`, on a char boundary of both.
fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .take_while(|((_, x), y)| x == y)
        .last()
        .map_or(0, |((at, c), _)| at + c.len_utf8())
}

impl StreamDecoder for DashScopeStreamDecoder {
    fn feed(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        if self.done {
            return Vec::new();
        }
        let failed = event.event.as_deref() == Some("error")
            || event.status.is_some_and(|status| status >= 400);
        if failed {
            return vec![self.error(event)];
        }
        if event.data.trim().is_empty() {
            return Vec::new();
        }
        match serde_json::from_str::<WireResponse>(&event.data) {
            Ok(wire) if wire.output.is_none() && wire.code.is_some() => vec![self.error(event)],
            Ok(wire) => self.result(wire),
            Err(e) => {
                self.done = true;
                vec![StreamEvent::Error(StreamError {
                    status: 502,
                    message: format!("The DashScope upstream sent an undecodable event: {e}"),
                })]
            }
        }
    }

    /// Nothing is buffered: every piece is emitted as it arrives. A stream cut short stays
    /// without `Finish`; the client-side encoder closes it.
    fn finish(&mut self) -> Vec<StreamEvent> {
        Vec::new()
    }

    fn done(&self) -> bool {
        self.done
    }
}

//! MiniMax stream chunks → canonical stream events: each chunk is normalized into the OpenAI
//! shape, then the OpenAI decoder does the rest (tool indexes, finish, usage).
//!
//! Quirks handled here (protocols.md §4 "Stream quirks"):
//! - a `base_resp` error inside a chunk → an error event, and the stream is over;
//! - the last chunk may repeat the whole message (`object:"chat.completion"`, or `message`
//!   instead of `delta`): only its finish reason and usage are read, its content is not
//!   appended again;
//! - `reasoning_details` deltas → reasoning. The docs treat their `text` as cumulative, field
//!   reports as incremental (MiniMax-AI/MiniMax-M2#95): a piece that repeats everything seen so
//!   far (at least [`CUMULATIVE_MIN`] bytes of it) switches the choice to cumulative mode, where
//!   only the new tail is emitted;
//! - `<think>…</think>` in the content (when `reasoning_split` was not honoured) → reasoning.
//!
//! `"role":""` and `delta:null` need nothing: the OpenAI decoder ignores both.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::response::{base_resp_error, details_texts};
use super::think::ThinkSplitter;
use crate::protocol::canonical::{StreamError, StreamEvent};
use crate::protocol::openai::wire::{content_text, Completion, Content};
use crate::protocol::openai::OpenAiStreamDecoder;
use crate::protocol::sse::SseEvent;
use crate::protocol::StreamDecoder;

/// A piece must repeat at least this much earlier reasoning to be taken as cumulative, so that
/// an incremental piece that happens to start like the (short) text so far is not cut.
const CUMULATIVE_MIN: usize = 16;

/// Decodes a MiniMax stream.
#[derive(Debug, Default)]
pub struct MiniMaxStreamDecoder {
    inner: OpenAiStreamDecoder,
    choices: BTreeMap<u32, ChoiceState>,
    /// An error ended the stream: nothing held back is worth emitting any more.
    failed: bool,
}

#[derive(Debug, Default)]
struct ChoiceState {
    think: ThinkSplitter,
    /// `reasoning_details` text seen so far.
    details_seen: String,
    details_cumulative: bool,
}

impl MiniMaxStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn normalize(&mut self, chunk: &mut Completion) {
        let whole_message = chunk.object.as_deref() == Some("chat.completion");
        for (position, choice) in chunk.choices.iter_mut().enumerate() {
            let index = choice.index.unwrap_or(position as u32);
            choice.index = Some(index);
            // A repeated whole message: not appended (its finish reason and usage still count).
            choice.message = None;
            if whole_message {
                choice.delta = None;
            }
            let state = self.choices.entry(index).or_default();
            let mut delta = choice.delta.take().unwrap_or_default();
            let details = details_texts(delta.extra.get("reasoning_details"));
            let mut reasoning: String = details
                .iter()
                .map(|piece| state.details_delta(piece))
                .collect();
            if details.is_empty() {
                reasoning = delta.reasoning_content.take().unwrap_or_default();
            }
            let content = delta.content.as_ref().map(content_text).unwrap_or_default();
            let mut split = state.think.push(&content);
            if choice.finish_reason.is_some() {
                let rest = state.think.flush();
                split.reasoning.push_str(&rest.reasoning);
                split.text.push_str(&rest.text);
            }
            reasoning.push_str(&split.reasoning);
            delta.reasoning_content = Some(reasoning);
            delta.content = Some(Content::Text(split.text));
            choice.delta = Some(delta);
        }
    }
}

impl ChoiceState {
    /// The new part of one `reasoning_details` piece.
    fn details_delta(&mut self, piece: &str) -> String {
        if let Some(rest) = piece.strip_prefix(self.details_seen.as_str()) {
            if self.details_cumulative || self.details_seen.len() >= CUMULATIVE_MIN {
                self.details_cumulative = true;
                let rest = rest.to_string();
                self.details_seen = piece.to_string();
                return rest;
            }
        } else if self.details_cumulative && self.details_seen.starts_with(piece) {
            // A stale cumulative resend: nothing new.
            return String::new();
        }
        self.details_seen.push_str(piece);
        piece.to_string()
    }
}

impl StreamDecoder for MiniMaxStreamDecoder {
    fn feed(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        let events = self.feed_event(event);
        if events.iter().any(|e| matches!(e, StreamEvent::Error(_))) {
            self.failed = true;
        }
        events
    }

    fn finish(&mut self) -> Vec<StreamEvent> {
        // Reasoning or text still held back (a stream cut before its finish) is emitted as
        // what it looked like.
        let mut events = Vec::new();
        if !self.failed {
            for (&choice, state) in &mut self.choices {
                let rest = state.think.flush();
                if !rest.reasoning.is_empty() {
                    events.push(StreamEvent::ReasoningDelta {
                        choice,
                        text: rest.reasoning,
                    });
                }
                if !rest.text.is_empty() {
                    events.push(StreamEvent::TextDelta {
                        choice,
                        text: rest.text,
                    });
                }
            }
        }
        events.extend(self.inner.finish());
        events
    }

    fn done(&self) -> bool {
        self.inner.done()
    }
}

impl MiniMaxStreamDecoder {
    fn feed_event(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        let data = event.data.trim();
        if self.inner.done() || data.is_empty() || data == "[DONE]" {
            return self.inner.feed(event);
        }
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return self.inner.feed(event);
        };
        if let Some((status, message)) = base_resp_error(&value) {
            self.inner.stop();
            return vec![StreamEvent::Error(StreamError { status, message })];
        }
        match Completion::deserialize(&value) {
            Ok(mut chunk) => {
                self.normalize(&mut chunk);
                self.inner.feed_chunk(&chunk)
            }
            Err(_) => self.inner.feed(event),
        }
    }
}

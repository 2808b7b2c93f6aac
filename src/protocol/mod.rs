//! Wire types and translation between dialects, through one canonical model (protocols.md).
//! Pure: no HTTP client, no database.
//!
//! Every dialect module (`openai`, `anthropic`, `dashscope`, `minimax`) offers the same shape:
//! - `decode_request(&[u8]) -> Result<ChatRequest, InvalidRequest>` (inbound dialects);
//! - `encode_request(&ChatRequest, upstream_model) -> Result<Value, InvalidRequest>` (upstreams);
//! - `decode_response(&[u8]) -> Result<ChatResponse, DecodeError>` (upstreams);
//! - `encode_response(&ChatResponse, &ChatRequest) -> Value` (inbound dialects);
//! - a [`StreamDecoder`] (upstream SSE → canonical events) and a [`StreamEncoder`]
//!   (canonical events → client SSE frames);
//! - its error envelope.

pub mod anthropic;
pub mod canonical;
pub mod dashscope;
pub mod minimax;
pub mod openai;
pub mod sse;

use canonical::StreamEvent;
use sse::SseEvent;

/// Turns an upstream's SSE events into canonical stream events.
pub trait StreamDecoder: Send {
    fn feed(&mut self, event: &SseEvent) -> Vec<StreamEvent>;
    /// The upstream's stream ended (cleanly or not); emits what is still pending.
    fn finish(&mut self) -> Vec<StreamEvent>;
    /// Whether the upstream signalled the end of the stream (`[DONE]`, `message_stop`, a
    /// DashScope final event): the gateway may stop reading.
    fn done(&self) -> bool;
}

/// Turns canonical stream events into a client's SSE frames (each a complete frame, blank line
/// included).
pub trait StreamEncoder: Send {
    fn feed(&mut self, event: &StreamEvent) -> Vec<String>;
    /// Closes the stream properly whatever arrived (e.g. Anthropic `message_delta` +
    /// `message_stop`, OpenAI `[DONE]`).
    fn finish(&mut self) -> Vec<String>;
}

/// An upstream response that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable upstream response: {0}")]
pub struct DecodeError(pub String);

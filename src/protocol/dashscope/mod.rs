//! DashScope native (Alibaba Model Studio / Bailian, Qwen) text generation: client requests and
//! responses, the upstream body and endpoint, SSE streams both ways, and the error envelope
//! (protocols.md §3, §5.8–5.10, §6.3, §6.4). Pure translation through the canonical model: no
//! HTTP client, no database.
//!
//! Choices made where DashScope is unclear or lossy, in one place:
//! - A client request without `result_format` gets `text`, as classic Qwen does (newer models
//!   may default to `message`; unverified). Upstream we always send `message`.
//! - Upstream streams always ask for `incremental_output:true`; the decoder still copes with an
//!   upstream that ignores it (see [`DashScopeStreamDecoder`]), and the encoder rebuilds the
//!   cumulative form for clients that want it.
//! - `repetition_penalty`, `enable_search`, `logprobs`, `partial` and other parameters the
//!   canonical model does not carry are dropped.
//! - Canonical `ToolChoice::Required` goes upstream as `"auto"`: DashScope's `"required"` is
//!   unverified (§5.1).
//! - Reasoning goes upstream as `reasoning_content` without its signature; it is never shown as
//!   text.

mod error;
mod parameters;
mod request;
mod response;
mod stream_decoder;
mod stream_encoder;
mod upstream;
mod wire;

#[cfg(test)]
mod tests;

pub use error::{decode_error, error_body};
pub use request::{decode_relayed_request, decode_request};
pub use response::{decode_response, encode_response};
pub use stream_decoder::DashScopeStreamDecoder;
pub use stream_encoder::DashScopeStreamEncoder;
pub use upstream::encode_request;

/// Where a DashScope client wants the answer: `output.text` or `output.choices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultFormat {
    /// `{"output":{"text","finish_reason"}}`; the default of classic Qwen models.
    #[default]
    Text,
    /// `{"output":{"choices":[{"finish_reason","message"}]}}`; needed for tools and reasoning.
    Message,
}

/// A DashScope client's output choices, which the canonical model does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DashScopeOptions {
    pub result_format: ResultFormat,
    /// Streams only: `true` sends new text per event, `false` (DashScope's default) resends all
    /// text so far in every event.
    pub incremental_output: bool,
}

/// The DashScope native endpoint a request must go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Text,
    /// Needed as soon as any message holds an image.
    Multimodal,
}

impl Endpoint {
    /// The path to append to a base URL ending in `/api/v1`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Text => "/services/aigc/text-generation/generation",
            Endpoint::Multimodal => "/services/aigc/multimodal-generation/generation",
        }
    }
}

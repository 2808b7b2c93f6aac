//! Anthropic Messages (protocols.md §2): the inbound dialect of `/v1/messages` and
//! `/v1/messages/count_tokens`, and an upstream dialect. Pure translation to and from the
//! canonical model: no HTTP client, no database.
//!
//! - [`decode_request`] / [`decode_count_tokens_request`]: client body → canonical;
//! - [`encode_request`]: canonical → upstream body (§5.4);
//! - [`decode_response`] / [`encode_response`]: upstream message → canonical → client message;
//! - [`AnthropicStreamDecoder`] (upstream SSE → canonical events, §6.2) and
//!   [`AnthropicStreamEncoder`] (canonical events → client SSE, §6.1);
//! - [`error_body`]: the error envelope; [`estimate_input_tokens`] for `count_tokens` in front
//!   of other upstreams.

mod error;
mod estimate;
mod image;
mod request;
mod response;
mod stream_decode;
mod stream_encode;
mod turns;
mod upstream;
pub mod wire;

#[cfg(test)]
mod tests;

pub use error::{error_body, error_type_for_status, status_for_error_type, stream_error_body};
pub use estimate::estimate_input_tokens;
pub use image::sniff_media_type;
pub use request::{decode_count_tokens_request, decode_request};
pub use response::{decode_response, encode_response, message_id};
pub use stream_decode::AnthropicStreamDecoder;
pub use stream_encode::AnthropicStreamEncoder;
pub use upstream::{budget_for_effort, encode_request, DEFAULT_MAX_TOKENS, MIN_THINKING_BUDGET};

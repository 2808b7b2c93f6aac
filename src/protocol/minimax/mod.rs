//! MiniMax native chat upstream (protocols.md §4): `POST {base_url}/text/chatcompletion_v2`,
//! with `base_url` ending in `/v1`. The body is OpenAI-shaped, so this module reuses the OpenAI
//! codec and adds MiniMax's differences:
//! - requests: `temperature`/`top_p` inside (0, 1], `n` must be 1, `reasoning_split: true` so
//!   reasoning arrives apart from the answer, earlier reasoning replayed as `reasoning_details`;
//! - responses: `base_resp.status_code` is checked first (non-zero is an error even on HTTP
//!   200); reasoning comes from `reasoning_details`, `reasoning_content` or leading
//!   `<think>…</think>` in the content, and is never left in the visible text;
//! - streams: `"role":""`, `delta:null`, usage-only chunks, a last chunk that repeats the whole
//!   message (not appended), `base_resp` errors in a chunk.
//!
//! Pure: no I/O. Only the upstream adapter knows the URL and the key.

mod request;
mod response;
mod stream;
mod think;

#[cfg(test)]
mod codec_tests;

pub use request::encode_request;
pub use response::{base_resp_error, decode_response, status_for_code};
pub use stream::MiniMaxStreamDecoder;

use crate::protocol::DecodeError;

/// The native chat path, appended to a base URL ending in `/v1`.
pub const CHAT_PATH: &str = "/text/chatcompletion_v2";

/// A MiniMax response that is not a usable completion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MiniMaxError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// `base_resp.status_code` was not 0, with the status the code maps to.
    #[error("MiniMax refused the request ({status}): {message}")]
    Upstream { status: u16, message: String },
}

impl MiniMaxError {
    /// The HTTP status this error stands for (an undecodable body is a bad gateway).
    pub fn status(&self) -> u16 {
        match self {
            MiniMaxError::Decode(_) => 502,
            MiniMaxError::Upstream { status, .. } => *status,
        }
    }
}

//! Anthropic upstreams: `POST {base_url}/v1/messages` (base URL is the host root), the
//! credential in `x-api-key`, and the `anthropic-version` every request must carry.

use super::Adapter;
use crate::crypto::Secret;

pub struct Anthropic;

/// The API version this gateway's Anthropic translation is written against.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

impl Adapter for Anthropic {
    fn chat_path(&self) -> &'static str {
        "/v1/messages"
    }

    fn prepare(
        &self,
        request: reqwest::RequestBuilder,
        credential: &Secret,
        _stream: bool,
    ) -> reqwest::RequestBuilder {
        request
            .header("x-api-key", credential.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
    }
}

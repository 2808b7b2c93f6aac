//! OpenAI-compatible upstreams: `POST {base_url}/chat/completions` (base URL ends in `/v1`),
//! Bearer credential.

use super::Adapter;
use crate::crypto::Secret;

pub struct OpenAi;

impl Adapter for OpenAi {
    fn chat_path(&self) -> &'static str {
        "/chat/completions"
    }

    fn prepare(
        &self,
        request: reqwest::RequestBuilder,
        credential: &Secret,
        _stream: bool,
    ) -> reqwest::RequestBuilder {
        request.bearer_auth(credential.expose())
    }
}

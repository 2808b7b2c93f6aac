//! MiniMax native upstreams: `POST {base_url}/text/chatcompletion_v2` (base URL ends in `/v1`),
//! Bearer credential. MiniMax can answer HTTP 200 with an error in `base_resp`; the protocol
//! decoder checks that, not the transport.

use super::Adapter;
use crate::crypto::Secret;

pub struct MiniMax;

impl Adapter for MiniMax {
    fn chat_path(&self) -> &'static str {
        "/text/chatcompletion_v2"
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

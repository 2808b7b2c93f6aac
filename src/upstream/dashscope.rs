//! DashScope native upstreams: `POST {base_url}/services/aigc/text-generation/generation` (or the
//! multimodal endpoint; base URL ends in `/api/v1`), Bearer credential, and for streams the
//! `X-DashScope-SSE: enable` switch plus `Accept: text/event-stream`, as the official SDK sends.

use super::Adapter;
use crate::crypto::Secret;

pub struct DashScope;

impl Adapter for DashScope {
    fn chat_path(&self) -> &'static str {
        "/services/aigc/text-generation/generation"
    }

    fn prepare(
        &self,
        request: reqwest::RequestBuilder,
        credential: &Secret,
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let request = request.bearer_auth(credential.expose());
        if stream {
            request
                .header("X-DashScope-SSE", "enable")
                .header("Accept", "text/event-stream")
        } else {
            request
        }
    }
}

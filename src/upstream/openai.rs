//! OpenAI-compatible upstreams: `POST {base_url}/chat/completions` with a Bearer credential.

use std::time::Duration;

use serde_json::Value;

use super::{classify, UpstreamError};
use crate::crypto::Secret;
use crate::protocol::openai::error_message;

/// Sends a chat request and returns the response once its headers arrived with a 2xx status.
pub async fn send_chat(
    client: &reqwest::Client,
    base_url: &str,
    credential: &Secret,
    body: &Value,
    first_byte_timeout: Duration,
) -> Result<reqwest::Response, UpstreamError> {
    let request = client
        .post(format!("{base_url}/chat/completions"))
        .bearer_auth(credential.expose())
        .json(body)
        .send();
    let response = tokio::time::timeout(first_byte_timeout, request)
        .await
        .map_err(|_| UpstreamError::Timeout)?
        .map_err(classify)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = tokio::time::timeout(first_byte_timeout, response.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Err(UpstreamError::Status {
        status: status.as_u16(),
        message: error_message(&body),
    })
}

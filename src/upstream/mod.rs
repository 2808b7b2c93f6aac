//! Upstream adapters: transport only — the URL, auth and protocol headers of each upstream
//! protocol, and sending with timeouts. Conversions live in `protocol/`. One file per upstream
//! protocol, one trait.

pub mod anthropic;
pub mod dashscope;
pub mod minimax;
pub mod openai;

use std::time::Duration;

use modelrouter_domain::provider::UpstreamProtocol;
use serde_json::Value;

use crate::crypto::Secret;

/// Why an upstream attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to the upstream")]
    Connect,
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream answered {status}")]
    Status {
        status: u16,
        message: Option<String>,
    },
    #[error("the upstream's credential cannot be read")]
    Credential,
    #[error("the upstream protocol {0} is not supported yet")]
    Unsupported(&'static str),
    #[error("the upstream connection failed: {0}")]
    Transport(String),
}

impl UpstreamError {
    /// Whether another attempt (same or next deployment) may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            UpstreamError::Connect | UpstreamError::Timeout | UpstreamError::Transport(_) => true,
            UpstreamError::Status { status, .. } => *status == 429 || *status >= 500,
            UpstreamError::Credential | UpstreamError::Unsupported(_) => false,
        }
    }

    /// Whether the provider refused the *platform* — its credential (401, 403) or the upstream
    /// model or URL the operator configured (404) — rather than anything in the caller's
    /// request. Such a failure is the platform's, never the customer's: answered as a 5xx in
    /// the gateway's own words, and a reason to try another deployment, never the same one.
    pub fn is_platform_fault(&self) -> bool {
        matches!(
            self,
            UpstreamError::Credential
                | UpstreamError::Status {
                    status: 401 | 403 | 404,
                    ..
                }
        )
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One call to make: where (relative to the provider's base URL) and what.
pub struct Call<'a> {
    /// Path appended to the base URL, e.g. `/chat/completions`.
    pub path: &'a str,
    pub body: &'a Value,
    pub stream: bool,
}

/// The protocol-specific part of talking to an upstream.
pub trait Adapter: Sync {
    /// The path of the chat endpoint, appended to the provider's base URL.
    fn chat_path(&self) -> &'static str;
    /// Adds authentication and protocol headers.
    fn prepare(
        &self,
        request: reqwest::RequestBuilder,
        credential: &Secret,
        stream: bool,
    ) -> reqwest::RequestBuilder;
}

pub fn adapter(protocol: UpstreamProtocol) -> &'static dyn Adapter {
    match protocol {
        UpstreamProtocol::Openai => &openai::OpenAi,
        UpstreamProtocol::Anthropic => &anthropic::Anthropic,
        UpstreamProtocol::Dashscope => &dashscope::DashScope,
        UpstreamProtocol::Minimax => &minimax::MiniMax,
    }
}

/// Sends a call and returns the response once its headers arrived with a 2xx status; any other
/// status becomes [`UpstreamError::Status`] with the upstream's message (never its raw body).
pub async fn send(
    client: &reqwest::Client,
    protocol: UpstreamProtocol,
    base_url: &str,
    credential: &Secret,
    call: Call<'_>,
    first_byte_timeout: Duration,
) -> Result<reqwest::Response, UpstreamError> {
    let adapter = adapter(protocol);
    let request = adapter
        .prepare(
            client.post(format!("{base_url}{}", call.path)),
            credential,
            call.stream,
        )
        .json(call.body)
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

/// The human-readable message of an upstream error body in any of the four protocols:
/// OpenAI and Anthropic `error.message`, DashScope `message`, MiniMax `base_resp.status_msg`.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let message = value
        .pointer("/error/message")
        .or_else(|| value.get("message"))
        .or_else(|| value.pointer("/base_resp/status_msg"))?
        .as_str()?;
    Some(message.chars().take(500).collect())
}

/// The pooled HTTP client every upstream call goes through.
pub fn http_client(connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub(crate) fn classify(error: reqwest::Error) -> UpstreamError {
    if error.is_timeout() {
        UpstreamError::Timeout
    } else if error.is_connect() {
        UpstreamError::Connect
    } else {
        UpstreamError::Transport(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_read_from_every_protocol_envelope() {
        let openai = br#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#;
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let dashscope =
            br#"{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"x"}"#;
        let minimax = br#"{"base_resp":{"status_code":1002,"status_msg":"rate limit"}}"#;
        assert_eq!(error_message(openai).as_deref(), Some("bad model"));
        assert_eq!(error_message(anthropic).as_deref(), Some("Overloaded"));
        assert_eq!(
            error_message(dashscope).as_deref(),
            Some("Invalid API-key provided.")
        );
        assert_eq!(error_message(minimax).as_deref(), Some("rate limit"));
        assert_eq!(error_message(b"<html>"), None);
    }
}

//! Upstream adapters: transport only (URL, auth headers, timeouts). Conversions live in
//! `protocol/`. One file per upstream protocol.

pub mod openai;

use std::time::Duration;

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

    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
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

//! Gateway errors and their OpenAI envelope. Each error knows its status and whether a client
//! should retry; only this edge turns them into bodies.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::protocol::openai::{ErrorBody, ErrorDetail};
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Missing API key. Send it as 'Authorization: Bearer <key>'.")]
    MissingKey,
    #[error("Invalid API key.")]
    InvalidKey,
    #[error("This account is suspended.")]
    Suspended,
    #[error("This API key may not use the model '{0}'.")]
    ModelNotAllowed(String),
    #[error("The model '{0}' does not exist.")]
    ModelNotFound(String),
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    #[error("Insufficient balance. Top up your account to continue.")]
    InsufficientBalance,
    #[error("The request body is larger than {0} bytes.")]
    BodyTooLarge(usize),
    #[error("The request body did not arrive in time.")]
    BodyTimeout,
    #[error("The model '{0}' has no available upstream right now.")]
    NoRoute(String),
    #[error("{}", upstream_message(.0))]
    Upstream(UpstreamError),
    #[error("Not found.")]
    NotFound,
    /// The balance could not be checked: the store is unreachable (and the replica's
    /// allowance cannot cover the call). Nothing was charged.
    #[error("The service is temporarily unavailable; retry shortly.")]
    StoreUnavailable,
    /// The call's usage record could not be kept (a failing disk, or too many records waiting
    /// for the store): the call is not served, or not completed, and nothing is charged.
    #[error("The service is temporarily unable to record usage; retry shortly.")]
    Unrecorded,
    #[error("The gateway failed to handle the request.")]
    Internal,
}

fn upstream_message(error: &UpstreamError) -> String {
    match error {
        UpstreamError::Status { status: 429, .. } => {
            "The upstream model is rate limited; retry shortly.".into()
        }
        error if error.is_platform_fault() => "The model is not available right now: the \
            platform could not reach it with its own configuration. This is not a problem with \
            your request."
            .into(),
        // A 4xx tells the caller what to fix (e.g. a context too long): keep its words, in
        // the caller's envelope; never the upstream's body.
        UpstreamError::Status {
            status,
            message: Some(message),
        } if *status < 500 => format!("The upstream refused the request: {message}"),
        UpstreamError::Timeout => "The upstream model did not answer in time.".into(),
        _ => "The upstream model failed to answer.".into(),
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingKey | ApiError::InvalidKey => StatusCode::UNAUTHORIZED,
            ApiError::Suspended | ApiError::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::ModelNotFound(_) | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::InsufficientBalance => StatusCode::PAYMENT_REQUIRED,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NoRoute(_) | ApiError::StoreUnavailable | ApiError::Unrecorded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Upstream(error) => match error {
                error if error.is_platform_fault() => StatusCode::BAD_GATEWAY,
                UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                UpstreamError::Status { status: 429, .. } => StatusCode::TOO_MANY_REQUESTS,
                UpstreamError::Status { status, .. } if (400..500).contains(status) => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::BAD_GATEWAY,
            },
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's error `type` and `code` for this error.
    pub fn kind_and_code(&self) -> (&'static str, Option<&'static str>) {
        match self {
            ApiError::MissingKey | ApiError::InvalidKey => {
                ("invalid_request_error", Some("invalid_api_key"))
            }
            ApiError::Suspended => ("permission_error", Some("account_suspended")),
            ApiError::ModelNotAllowed(_) => ("permission_error", Some("model_not_allowed")),
            ApiError::ModelNotFound(_) => ("invalid_request_error", Some("model_not_found")),
            ApiError::BadRequest { .. } => ("invalid_request_error", None),
            ApiError::InsufficientBalance => ("insufficient_quota", Some("insufficient_quota")),
            ApiError::BodyTooLarge(_) => ("invalid_request_error", Some("request_too_large")),
            ApiError::BodyTimeout => ("invalid_request_error", Some("request_timeout")),
            ApiError::NotFound => ("invalid_request_error", Some("unknown_url")),
            ApiError::StoreUnavailable | ApiError::Unrecorded => {
                ("server_error", Some("service_unavailable"))
            }
            ApiError::Upstream(UpstreamError::Status { status: 429, .. }) => {
                ("rate_limit_exceeded", Some("rate_limit_exceeded"))
            }
            ApiError::Upstream(UpstreamError::Timeout) => ("timeout", Some("upstream_timeout")),
            ApiError::Upstream(error) if error.is_platform_fault() => ("server_error", None),
            ApiError::Upstream(UpstreamError::Status { status, .. }) if *status < 500 => {
                ("invalid_request_error", None)
            }
            ApiError::NoRoute(_) | ApiError::Upstream(_) | ApiError::Internal => {
                ("server_error", None)
            }
        }
    }

    /// Whether an SDK's automatic retry could help; SDKs obey `x-should-retry`.
    pub fn should_retry(&self) -> bool {
        matches!(
            self.status(),
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        )
    }

    /// Seconds after which a retry may succeed (`Retry-After`), for errors that pass by
    /// themselves.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::StoreUnavailable | ApiError::Unrecorded => Some(1),
            _ => None,
        }
    }

    /// The error as an in-band stream payload (`data: {"error":…}`), for failures after the
    /// first byte went out.
    pub fn to_json(&self) -> serde_json::Value {
        let message = self.to_string();
        let (kind, code) = self.kind_and_code();
        serde_json::to_value(ErrorBody {
            error: ErrorDetail {
                message: &message,
                kind,
                param: self.param(),
                code,
            },
        })
        .unwrap_or_default()
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { param, .. } => param.as_deref(),
            ApiError::ModelNotFound(_) | ApiError::ModelNotAllowed(_) => Some("model"),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(error = ?self, "request failed");
        }
        let mut response = (self.status(), Json(self.to_json())).into_response();
        let retry = if self.should_retry() { "true" } else { "false" };
        response
            .headers_mut()
            .insert("x-should-retry", HeaderValue::from_static(retry));
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }
}

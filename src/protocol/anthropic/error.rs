//! The Anthropic error envelope (protocols.md §2 "Errors", §5.10): the `error.type` for an HTTP
//! status and back. The gateway rebuilds every error in this shape for Anthropic clients; it
//! never forwards an upstream's body.

use serde_json::{json, Value};

/// `{"type":"error","error":{"type":…,"message":…},"request_id":…}` for a status.
pub fn error_body(status: u16, message: &str, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type_for_status(status), "message": message},
        "request_id": request_id,
    })
}

/// The in-band form sent as an `event: error` once a stream has started (no request id: the
/// response headers already carried it).
pub fn stream_error_body(status: u16, message: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type_for_status(status), "message": message},
    })
}

/// Anthropic's `error.type` for an HTTP status. 503 becomes `overloaded_error` because that is
/// what an Anthropic client retries as "try again later"; other 5xx are `api_error`, other 4xx
/// `invalid_request_error` (Anthropic's catch-all for 4xx without a type of their own).
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The HTTP status an Anthropic `error.type` stands for (used for errors that arrive inside a
/// stream). Unknown types are treated as a server error.
pub fn status_for_error_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

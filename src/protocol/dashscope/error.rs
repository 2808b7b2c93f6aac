//! DashScope error bodies both ways (protocols.md §3 errors, §5.10): reading an upstream's
//! `{"code","message","request_id"}`, and building the envelope a DashScope client expects from
//! the gateway's own conditions. The raw upstream body is never forwarded.

use serde_json::{json, Value};

use super::wire::WireError;

/// Reads an upstream error: the HTTP status to act on and a message for the client. DashScope
/// sends HTTP 200 only in odd cases (an error body where a result was expected); the status is
/// then derived from the code.
pub fn decode_error(status: u16, body: &[u8]) -> (u16, String) {
    let wire: WireError = serde_json::from_slice(body).unwrap_or_default();
    let status = if status < 400 {
        wire.code.as_deref().map(status_for_code).unwrap_or(500)
    } else {
        status
    };
    let message = match (wire.code, wire.message) {
        (Some(code), Some(message)) if !message.is_empty() => format!("{code}: {message}"),
        (Some(code), _) => code,
        (None, Some(message)) if !message.is_empty() => message,
        _ => format!("The DashScope upstream answered HTTP {status}."),
    };
    (status, message)
}

/// The HTTP status DashScope pairs with an error code (§3 error table); used for errors that
/// arrive without a usable status (a stream's `event:error` without `:HTTP_STATUS`).
pub(super) fn status_for_code(code: &str) -> u16 {
    let family = code.split('.').next().unwrap_or(code);
    match family {
        "InvalidApiKey" => 401,
        "AccessDenied" => 403,
        "ModelNotFound" => 404,
        "RequestTimeOut" => 408,
        "Throttling" => 429,
        "InternalError" => 500,
        // `BadRequest.TooLarge` is the one 413 among the `BadRequest.*` codes.
        "BadRequest" if code == "BadRequest.TooLarge" => 413,
        _ => 400,
    }
}

/// The gateway's error in DashScope's envelope: the HTTP status to send and
/// `{"code","message","request_id"}` (§5.10). `status` is the gateway's condition (402 means
/// the tenant has no balance, which DashScope spells HTTP 400 `Arrearage`).
pub fn error_body(status: u16, message: &str, request_id: &str) -> (u16, Value) {
    let (status, mut code) = match status {
        400 => (400, "InvalidParameter"),
        401 => (401, "InvalidApiKey"),
        402 => (400, "Arrearage"),
        403 => (403, "AccessDenied"),
        404 => (404, "ModelNotFound"),
        408 | 504 => (408, "RequestTimeOut"),
        413 => (413, "BadRequest.TooLarge"),
        429 => (429, "Throttling.RateQuota"),
        // Other client errors (409, 422, …) have no DashScope code of their own.
        405..=499 => (400, "InvalidParameter"),
        _ => (500, "InternalError"),
    };
    // A message read by `decode_error` starts with the upstream's own code: a DashScope
    // client keeps the precise one (`DataInspectionFailed`, `Throttling.AllocationQuota`, …).
    let mut message = message;
    if let Some((upstream_code, rest)) = message.split_once(": ") {
        if is_code(upstream_code) && status_for_code(upstream_code) == status {
            code = upstream_code;
            message = rest;
        }
    }
    (
        status,
        json!({"code": code, "message": message, "request_id": request_id}),
    )
}

/// `InvalidParameter`, `BadRequest.TooLarge`: dotted words starting with a capital.
fn is_code(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|word| {
            word.starts_with(|c: char| c.is_ascii_uppercase())
                && word.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

//! OpenAI error `type`/`code` names and HTTP statuses, both ways (protocols.md §1 "Errors",
//! §5.10): naming an in-band stream error for an OpenAI client, and guessing the status of an
//! error an OpenAI-style upstream sent in-band (where there is no HTTP status to read).

use serde_json::{json, Value};

/// OpenAI's error `type` and `code` for a status, the same names the gateway's `ApiError` uses.
pub fn error_type_for_status(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        402 => ("insufficient_quota", Some("insufficient_quota")),
        403 => ("permission_error", None),
        404 => ("invalid_request_error", Some("model_not_found")),
        408 | 504 => ("timeout", Some("upstream_timeout")),
        413 => ("invalid_request_error", Some("request_too_large")),
        429 => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
        500.. => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

/// The in-band error payload `{"error":{"message","type","code"}}`.
pub fn error_payload(status: u16, message: &str) -> Value {
    let (kind, code) = error_type_for_status(status);
    json!({"error": {"message": message, "type": kind, "code": code}})
}

/// The status an in-band `error` object most likely had: a numeric `status`/`code` when there is
/// one, else a guess from the `type`/`code` words, else 502 (the upstream failed).
pub fn status_of_error(error: &Value) -> u16 {
    for key in ["status", "code", "status_code"] {
        let number = match error.get(key) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        if let Some(status @ 400..=599) = number {
            // Checked range: the conversion cannot fail.
            return u16::try_from(status).unwrap_or(502);
        }
    }
    let word = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or("");
    let words = format!("{} {}", word("type"), word("code")).to_ascii_lowercase();
    let has = |needle: &str| words.contains(needle);
    if has("rate_limit") || has("insufficient_quota") || has("too_many") {
        429
    } else if has("invalid_api_key") || has("authentication") {
        401
    } else if has("permission") {
        403
    } else if has("not_found") {
        404
    } else if has("context_length") || has("invalid_request") || has("content_filter") {
        400
    } else if has("overloaded") {
        503
    } else if has("timeout") {
        504
    } else if has("server_error") || has("internal") {
        500
    } else {
        502
    }
}

/// The message of an in-band `error` object (or the error itself when it is a string).
pub fn message_of_error(error: &Value) -> String {
    let message = match error {
        Value::String(message) => message.clone(),
        _ => error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| "The upstream reported an error.".into()),
    };
    message.chars().take(500).collect()
}

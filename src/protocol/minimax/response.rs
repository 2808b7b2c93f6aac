//! A MiniMax `chatcompletion_v2` body → the canonical response, `base_resp` first
//! (protocols.md §4 "Errors": HTTP 200 with a non-zero `status_code` is an error).

use serde::Deserialize;
use serde_json::Value;

use super::think::split_content;
use super::MiniMaxError;
use crate::protocol::canonical::{ChatResponse, Choice, FinishReason, Part};
use crate::protocol::openai::wire::{content_text, Completion, Content, ResponseMessage};
use crate::protocol::openai::{
    finish_for, message_of_error, message_parts, reasoning_parts, status_of_error, usage_from,
};
use crate::protocol::DecodeError;

/// Decodes a MiniMax body (any HTTP status): `base_resp` errors first, then the completion.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, MiniMaxError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError(format!("MiniMax body is not JSON: {e}")))?;
    if let Some((status, message)) = base_resp_error(&value) {
        return Err(MiniMaxError::Upstream { status, message });
    }
    let wire = Completion::deserialize(&value)
        .map_err(|e| DecodeError(format!("not a MiniMax chat completion: {e}")))?;
    // The OpenAI-compatible endpoints answer errors in OpenAI's envelope.
    if let Some(error) = &wire.error {
        return Err(MiniMaxError::Upstream {
            status: status_of_error(error),
            message: message_of_error(error),
        });
    }
    // The output was blocked by moderation (the visible text is then a placeholder).
    let filtered = value.get("output_sensitive").and_then(Value::as_bool) == Some(true);
    let choices = wire
        .choices
        .iter()
        .enumerate()
        .map(|(position, choice)| {
            let index = choice.index.unwrap_or(position as u32);
            let parts = choice
                .message
                .as_ref()
                .map(|m| minimax_parts(m, index))
                .unwrap_or_default();
            let finish = if filtered {
                Some(FinishReason::ContentFilter)
            } else {
                finish_for(choice.finish_reason.as_deref(), &parts)
            };
            Choice {
                index,
                parts,
                finish,
            }
        })
        .collect();
    Ok(ChatResponse {
        id: wire.id.unwrap_or_default(),
        model: wire.model.unwrap_or_default(),
        choices,
        usage: wire.usage.as_ref().and_then(usage_from),
        created: wire.created.unwrap_or(0),
    })
}

/// Reasoning from `reasoning_details[].text` (one block each), else `reasoning_content`, else a
/// leading `<think>…</think>` cut out of the content.
fn minimax_parts(message: &ResponseMessage, choice: u32) -> Vec<Part> {
    let mut reasoning = details_parts(message.extra.get("reasoning_details"));
    if reasoning.is_empty() {
        reasoning = reasoning_parts(message);
    }
    let mut message = message.clone();
    let text = message
        .content
        .as_ref()
        .map(content_text)
        .unwrap_or_default();
    let split = split_content(&text);
    if !split.reasoning.is_empty() {
        // Tags in the content while reasoning also came apart would say it twice: keep one.
        if reasoning.is_empty() {
            reasoning.push(reasoning_text(split.reasoning));
        }
        message.content = Some(Content::Text(split.text));
    }
    message_parts(&message, reasoning, choice)
}

/// `reasoning_details` items as reasoning blocks (items without text are skipped).
pub(crate) fn details_parts(details: Option<&Value>) -> Vec<Part> {
    details_texts(details)
        .into_iter()
        .map(reasoning_text)
        .collect()
}

pub(crate) fn details_texts(details: Option<&Value>) -> Vec<String> {
    details
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("text").and_then(Value::as_str))
        .filter(|text| !text.is_empty())
        .map(str::to_string)
        .collect()
}

fn reasoning_text(text: String) -> Part {
    Part::Reasoning {
        text,
        signature: None,
        redacted: None,
    }
}

/// The status and message of a non-zero `base_resp.status_code`, if the body has one.
pub fn base_resp_error(body: &Value) -> Option<(u16, String)> {
    let base = body.get("base_resp")?;
    let code = match base.get("status_code")? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    if code == 0 {
        return None;
    }
    let said = base.get("status_msg").and_then(Value::as_str).unwrap_or("");
    let message = if said.is_empty() {
        format!("MiniMax error {code}")
    } else {
        format!(
            "{} (MiniMax error {code})",
            said.chars().take(500).collect::<String>()
        )
    };
    Some((status_for_code(code), message))
}

/// The HTTP status of a `base_resp.status_code` (protocols.md §4; per-code statuses beyond
/// the official list are unverified).
pub fn status_for_code(code: i64) -> u16 {
    match code {
        1002 | 1039 => 429,
        1004 | 2049 => 401,
        1008 => 402,
        // Invalid parameters (e.g. changed tool arguments) and sensitive input/output.
        2013 | 1026 | 1027 => 400,
        // The official list calls 1001 a timeout.
        1001 => 504,
        _ => 500,
    }
}

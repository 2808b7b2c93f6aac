//! Non-streamed responses: an OpenAI-style upstream's body → canonical, and canonical → the
//! body an OpenAI client gets (protocols.md §1, §5.2, §5.3, §5.5).
//!
//! Reasoning goes out as `reasoning_content` (the de facto field) and, when any block is signed
//! or redacted, also as the `thinking_blocks` extension so a client can replay Claude thinking
//! unchanged. Plain OpenAI sends no reasoning text, and none is invented.

use serde_json::{json, Map, Value};

use super::request_decode::reasoning_part;
use super::wire::{content_text, Completion, OrUnknown, ResponseMessage, ThinkingBlock, ToolCall};
use crate::protocol::canonical::{ChatRequest, ChatResponse, Choice, FinishReason, Part, Usage};
use crate::protocol::DecodeError;

/// Decodes an OpenAI-compatible upstream's chat-completion body.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, DecodeError> {
    let wire: Completion = serde_json::from_slice(body)
        .map_err(|e| DecodeError(format!("not a chat completion: {e}")))?;
    if let Some(error) = &wire.error {
        return Err(DecodeError(format!(
            "the upstream reported an error: {}",
            super::error::message_of_error(error)
        )));
    }
    let choices = wire
        .choices
        .iter()
        .enumerate()
        .map(|(position, choice)| {
            let index = choice.index.unwrap_or(position as u32);
            let parts = choice
                .message
                .as_ref()
                .map(|m| message_parts(m, reasoning_parts(m), index))
                .unwrap_or_default();
            let finish = finish_for(choice.finish_reason.as_deref(), &parts);
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
        usage: wire.usage.as_ref().and_then(super::usage_from),
        created: wire.created.unwrap_or(0),
    })
}

/// Reasoning of a message: the signed `thinking_blocks` when present (they carry the same text
/// as `reasoning_content`), else `reasoning_content` without a signature.
pub(crate) fn reasoning_parts(message: &ResponseMessage) -> Vec<Part> {
    match &message.thinking_blocks {
        Some(blocks) if !blocks.is_empty() => blocks
            .iter()
            .filter_map(|b| match b {
                OrUnknown::Known(block) => Some(reasoning_part(block)),
                OrUnknown::Unknown(_) => None,
            })
            .collect(),
        _ => message
            .reasoning_content
            .iter()
            .filter(|t| !t.is_empty())
            .map(|text| Part::Reasoning {
                text: text.clone(),
                signature: None,
                redacted: None,
            })
            .collect(),
    }
}

/// A message's parts in canonical order: the given reasoning, then the text (or the refusal),
/// then every tool call.
pub(crate) fn message_parts(
    message: &ResponseMessage,
    reasoning: Vec<Part>,
    choice: u32,
) -> Vec<Part> {
    let mut parts = reasoning;
    let mut text = message
        .content
        .as_ref()
        .map(content_text)
        .unwrap_or_default();
    if text.is_empty() {
        text = message.refusal.clone().unwrap_or_default();
    }
    if !text.is_empty() {
        parts.push(Part::Text {
            text,
            cache_control: None,
        });
    }
    parts.extend(tool_call_parts(&message.tool_calls, choice));
    parts
}

/// Every tool call, none dropped: a missing id is generated, a missing name stays empty.
pub(crate) fn tool_call_parts(calls: &[ToolCall], choice: u32) -> Vec<Part> {
    calls
        .iter()
        .enumerate()
        .map(|(k, call)| {
            let function = call.function.as_ref();
            Part::ToolCall {
                id: call
                    .id
                    .clone()
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{choice}_{k}")),
                name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                arguments: function
                    .and_then(|f| f.arguments.as_ref())
                    .map(|a| a.to_text())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// An upstream `finish_reason` in canonical terms; an unknown one is a natural stop. A `stop`
/// next to tool calls means the tool calls (DashScope's forced tool choice does that).
pub(crate) fn finish_for(reason: Option<&str>, parts: &[Part]) -> Option<FinishReason> {
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    reason.map(|reason| finish_from(reason, has_calls))
}

pub(crate) fn finish_from(reason: &str, has_tool_calls: bool) -> FinishReason {
    match reason {
        "length" | "max_tokens" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ if has_tool_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// The OpenAI `finish_reason` of a canonical reason (§5.2): never anything outside OpenAI's set.
pub fn finish_reason_str(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence(_) | FinishReason::Pause => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// Encodes the canonical response as an OpenAI chat-completion body. The request is not needed
/// by OpenAI (every choice and field comes from the response); it is taken for the shape every
/// dialect shares.
pub fn encode_response(resp: &ChatResponse, _req: &ChatRequest) -> Value {
    let choices: Vec<Value> = resp.choices.iter().map(encode_choice).collect();
    json!({
        "id": completion_id(&resp.id),
        "object": "chat.completion",
        "created": resp.created,
        "model": resp.model,
        "choices": choices,
        "usage": usage_json(resp.usage.as_ref()),
    })
}

/// `chatcmpl-…` from the upstream id (kept as is when it already has the prefix).
pub fn completion_id(id: &str) -> String {
    if id.starts_with("chatcmpl-") {
        id.to_string()
    } else {
        format!("chatcmpl-{id}")
    }
}

fn encode_choice(choice: &Choice) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut blocks = Vec::new();
    let mut signed = false;
    let mut tool_calls = Vec::new();
    for part in &choice.parts {
        match part {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::Reasoning {
                text: t,
                signature,
                redacted,
            } => {
                signed |= signature.is_some() || redacted.is_some();
                blocks.push(match redacted {
                    Some(data) => ThinkingBlock::RedactedThinking { data: data.clone() },
                    None => ThinkingBlock::Thinking {
                        thinking: t.clone(),
                        signature: signature.clone(),
                    },
                });
                reasoning.push_str(t);
            }
            Part::ToolCall {
                id,
                name,
                arguments,
            } => tool_calls.push(json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": arguments},
            })),
            Part::Image { .. } | Part::ToolResult { .. } => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), Value::String(reasoning));
    }
    if signed {
        message.insert("thinking_blocks".into(), json!(blocks));
    }
    let finish = match &choice.finish {
        Some(reason) => finish_reason_str(reason),
        None if !tool_calls.is_empty() => "tool_calls",
        None => "stop",
    };
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    json!({"index": choice.index, "message": message, "logprobs": null, "finish_reason": finish})
}

/// OpenAI usage (§5.3): the three totals always (0 when unknown), the details only when known.
pub fn usage_json(usage: Option<&Usage>) -> Value {
    let usage = usage.copied().unwrap_or_default();
    let prompt = usage.input_total.unwrap_or(0);
    let completion = usage.output_total.unwrap_or(0);
    let mut out = Map::new();
    out.insert("prompt_tokens".into(), json!(prompt));
    out.insert("completion_tokens".into(), json!(completion));
    out.insert("total_tokens".into(), json!(prompt + completion));
    let mut prompt_details = Map::new();
    if let Some(cached) = usage.cache_read {
        prompt_details.insert("cached_tokens".into(), json!(cached));
    }
    if let Some(written) = usage.cache_write {
        prompt_details.insert("cache_write_tokens".into(), json!(written));
    }
    if !prompt_details.is_empty() {
        out.insert(
            "prompt_tokens_details".into(),
            Value::Object(prompt_details),
        );
    }
    if let Some(reasoning) = usage.reasoning {
        out.insert(
            "completion_tokens_details".into(),
            json!({"reasoning_tokens": reasoning}),
        );
    }
    Value::Object(out)
}

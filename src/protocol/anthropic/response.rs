//! Anthropic message ⇄ canonical response (protocols.md §2 "Response", §5.2, §5.3, §5.7), and
//! the stop-reason and usage mappings the stream codecs share.

use serde_json::{json, Value};

use super::request::arguments_from_input;
use super::turns::{input_from_arguments, sanitize_id};
use super::wire::{Block, KnownBlock, MessagesResponse, WireUsage};
use crate::protocol::canonical::{ChatRequest, ChatResponse, Choice, FinishReason, Part, Usage};
use crate::protocol::DecodeError;

/// Decodes an upstream's non-streaming message. Block types this gateway does not model (server
/// tool blocks and the like) are skipped.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, DecodeError> {
    let message: MessagesResponse = serde_json::from_slice(body)
        .map_err(|e| DecodeError(format!("not an Anthropic message: {e}")))?;
    if message.kind.as_deref() == Some("error") {
        return Err(DecodeError("the upstream returned an error body".into()));
    }
    let parts = message
        .content
        .into_iter()
        .filter_map(part_from_block)
        .collect();
    let finish = message
        .stop_reason
        .as_deref()
        .map(|reason| finish_from_reason(reason, message.stop_sequence));
    Ok(ChatResponse {
        id: message.id,
        model: message.model,
        choices: vec![Choice {
            index: 0,
            parts,
            finish,
        }],
        usage: message.usage.as_ref().map(usage_from_wire),
        created: now_unix(),
    })
}

fn part_from_block(block: Block) -> Option<Part> {
    match block {
        Block::Known(KnownBlock::Text { text, .. }) => Some(Part::Text {
            text,
            cache_control: None,
        }),
        other => reasoning_or_tool_call(other).ok(),
    }
}

/// The blocks an assistant turn carries the same way in requests and responses: tool use and
/// (redacted) thinking, signatures kept. Any other block is handed back.
pub(super) fn reasoning_or_tool_call(block: Block) -> Result<Part, Block> {
    match block {
        Block::Known(KnownBlock::Thinking {
            thinking,
            signature,
            ..
        }) => Ok(Part::Reasoning {
            text: thinking,
            signature,
            redacted: None,
        }),
        Block::Known(KnownBlock::RedactedThinking { data, .. }) => Ok(Part::Reasoning {
            text: String::new(),
            signature: None,
            redacted: Some(data),
        }),
        Block::Known(KnownBlock::ToolUse {
            id, name, input, ..
        }) => Ok(Part::ToolCall {
            id,
            name,
            arguments: arguments_from_input(&input),
        }),
        other => Err(other),
    }
}

/// Anthropic `stop_reason` → canonical (§5.2). An unknown reason is a normal stop: it is never
/// passed through to a client that would not know it.
pub fn finish_from_reason(reason: &str, stop_sequence: Option<String>) -> FinishReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "stop_sequence" => FinishReason::StopSequence(stop_sequence),
        "tool_use" => FinishReason::ToolCalls,
        "pause_turn" => FinishReason::Pause,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// Canonical finish → Anthropic `stop_reason` and `stop_sequence`. Tool calls present turn a
/// plain stop (or none at all) into `tool_use`; without calls, `tool_use` would leave a client
/// waiting for a call that never came, so it becomes `end_turn`. A stop sequence whose string
/// is unknown is reported as `end_turn` (§5.2: `stop_sequence` only when the string is known).
pub fn reason_for_finish(
    finish: Option<&FinishReason>,
    has_tool_calls: bool,
) -> (&'static str, Option<String>) {
    match finish {
        None | Some(FinishReason::Stop | FinishReason::ToolCalls) if has_tool_calls => {
            ("tool_use", None)
        }
        None | Some(FinishReason::Stop | FinishReason::ToolCalls) => ("end_turn", None),
        Some(FinishReason::StopSequence(Some(sequence))) => {
            ("stop_sequence", Some(sequence.clone()))
        }
        Some(FinishReason::StopSequence(None)) => ("end_turn", None),
        Some(FinishReason::Length) => ("max_tokens", None),
        Some(FinishReason::ContentFilter) => ("refusal", None),
        Some(FinishReason::Pause) => ("pause_turn", None),
    }
}

/// Anthropic usage → canonical (§5.3): `input_tokens` excludes the cache, the canonical total
/// includes it. Absent fields stay absent.
pub fn usage_from_wire(usage: &WireUsage) -> Usage {
    let any_input = usage.input_tokens.is_some()
        || usage.cache_read_input_tokens.is_some()
        || usage.cache_creation_input_tokens.is_some();
    Usage {
        input_total: any_input.then(|| {
            usage.input_tokens.unwrap_or(0)
                + usage.cache_read_input_tokens.unwrap_or(0)
                + usage.cache_creation_input_tokens.unwrap_or(0)
        }),
        cache_read: usage.cache_read_input_tokens,
        cache_write: usage.cache_creation_input_tokens,
        output_total: usage.output_tokens,
        reasoning: usage
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.thinking_tokens),
        estimated: false,
    }
}

/// Anthropic's uncached `input_tokens`: the canonical total minus both cache fields.
pub fn uncached_input(usage: &Usage) -> Option<u64> {
    usage.input_total.map(|total| {
        total
            .saturating_sub(usage.cache_read.unwrap_or(0))
            .saturating_sub(usage.cache_write.unwrap_or(0))
    })
}

/// Canonical response → the Anthropic message a client receives (§5.7). Blocks go thinking →
/// text → tool_use whatever order the upstream used; the first choice is the message.
pub fn encode_response(resp: &ChatResponse, _req: &ChatRequest) -> Value {
    let message_id = message_id(&resp.id);
    let empty = Vec::new();
    let choice = resp.choices.iter().min_by_key(|c| c.index);
    let parts = choice.map_or(&empty, |c| &c.parts);
    let mut thinking = Vec::new();
    let mut text = Vec::new();
    let mut tools = Vec::new();
    for part in parts {
        match part {
            Part::Reasoning {
                redacted: Some(data),
                ..
            } => thinking.push(json!({"type": "redacted_thinking", "data": data})),
            Part::Reasoning {
                text, signature, ..
            } if !text.is_empty() || signature.is_some() => thinking.push(json!({
                "type": "thinking",
                "thinking": text,
                // Non-Anthropic upstreams sign nothing; the field is required, so it is "".
                "signature": signature.as_deref().unwrap_or(""),
            })),
            Part::Text { text: t, .. } if !t.is_empty() => {
                text.push(json!({"type": "text", "text": t}))
            }
            Part::ToolCall {
                id,
                name,
                arguments,
            } => {
                let id = if id.is_empty() {
                    format!(
                        "toolu_{}_{}",
                        message_id.trim_start_matches("msg_"),
                        tools.len()
                    )
                } else {
                    sanitize_id(id)
                };
                tools.push(json!({
                    "type": "tool_use", "id": id, "name": name,
                    "input": input_from_arguments(arguments),
                }))
            }
            _ => {}
        }
    }
    let (stop_reason, stop_sequence) =
        reason_for_finish(choice.and_then(|c| c.finish.as_ref()), !tools.is_empty());
    let content: Vec<Value> = thinking.into_iter().chain(text).chain(tools).collect();
    json!({
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_to_wire(resp.usage.as_ref()),
    })
}

/// The usage object of a message: Anthropic requires integers, so absent numbers are 0.
fn usage_to_wire(usage: Option<&Usage>) -> Value {
    let usage = usage.cloned().unwrap_or_default();
    json!({
        "input_tokens": uncached_input(&usage).unwrap_or(0),
        "cache_creation_input_tokens": usage.cache_write.unwrap_or(0),
        "cache_read_input_tokens": usage.cache_read.unwrap_or(0),
        "output_tokens": usage.output_total.unwrap_or(0),
    })
}

/// An Anthropic-style message id from any upstream id (`chatcmpl-…`, a UUID, `msg_…`).
pub fn message_id(upstream_id: &str) -> String {
    if upstream_id.starts_with("msg_") {
        return upstream_id.to_string();
    }
    let core: String = upstream_id
        .strip_prefix("chatcmpl-")
        .unwrap_or(upstream_id)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    if core.is_empty() {
        "msg_gateway".to_string()
    } else {
        format!("msg_{core}")
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

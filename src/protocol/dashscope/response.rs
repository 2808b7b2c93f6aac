//! Non-streaming responses both ways (protocols.md §3, §5.2, §5.3, §5.8): an upstream's native
//! body → canonical, and canonical → the body a DashScope client expects, in the text or message
//! format it asked for. The finish-reason and tool-call helpers are shared with the streams.

use serde_json::Value;

use super::wire::{
    WireChoice, WireContent, WireFunctionCall, WireMessage, WireOutput, WireResponse, WireToolCall,
    WireUsage,
};
use super::{DashScopeOptions, ResultFormat};
use crate::protocol::canonical::{ChatRequest, ChatResponse, Choice, FinishReason, Part};
use crate::protocol::DecodeError;

/// Decodes an upstream's non-streaming body.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, DecodeError> {
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|e| DecodeError(format!("not a DashScope response: {e}")))?;
    let request_id = wire.request_id.unwrap_or_default();
    let Some(output) = wire.output else {
        // An error body that arrived with a success status.
        let code = wire.code.unwrap_or_else(|| "no output".into());
        let message = wire.message.unwrap_or_default();
        return Err(DecodeError(format!("{code}: {message}")));
    };
    let choices = match (output.choices, output.text) {
        (Some(choices), _) => choices
            .into_iter()
            .enumerate()
            .map(|(position, choice)| {
                let index = choice.index.unwrap_or(position as u32);
                decode_choice(index, choice, &request_id)
            })
            .collect(),
        (None, Some(text)) => {
            let parts = text_part(text).into_iter().collect();
            vec![Choice {
                index: 0,
                finish: finish_from_wire(output.finish_reason.as_deref(), false),
                parts,
            }]
        }
        (None, None) => {
            return Err(DecodeError(
                "the output holds neither text nor choices".into(),
            ))
        }
    };
    Ok(ChatResponse {
        id: request_id,
        // DashScope bodies name no model; the gateway shows the public name.
        model: String::new(),
        choices,
        usage: wire.usage.map(|usage| usage.to_canonical()),
        created: now(),
    })
}

fn decode_choice(index: u32, choice: WireChoice, request_id: &str) -> Choice {
    let message = choice.message.unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(reasoning) = message.reasoning_content.filter(|r| !r.is_empty()) {
        parts.push(Part::Reasoning {
            text: reasoning,
            signature: None,
            redacted: None,
        });
    }
    parts.extend(text_part(content_text(message.content.as_ref())));
    let calls = message.tool_calls.unwrap_or_default();
    let has_calls = !calls.is_empty();
    for (i, call) in calls.into_iter().enumerate() {
        parts.push(Part::ToolCall {
            id: call_id(call.id, request_id, i),
            name: call.function.name.clone().unwrap_or_default(),
            arguments: call.function.arguments_text(),
        });
    }
    Choice {
        index,
        parts,
        finish: finish_from_wire(choice.finish_reason.as_deref(), has_calls),
    }
}

fn text_part(text: String) -> Option<Part> {
    (!text.is_empty()).then_some(Part::Text {
        text,
        cache_control: None,
    })
}

/// A content string, or the text items of a multimodal list joined.
pub(super) fn content_text(content: Option<&WireContent>) -> String {
    match content {
        None => String::new(),
        Some(WireContent::Text(text)) => text.clone(),
        Some(WireContent::Parts(items)) => items.iter().filter_map(|i| i.text.as_deref()).collect(),
    }
}

/// The upstream's id, or one made from the request id when it sent none (or `""`).
pub(super) fn call_id(id: Option<String>, request_id: &str, position: usize) -> String {
    match id.filter(|id| !id.is_empty()) {
        Some(id) => id,
        None if request_id.is_empty() => format!("call_{position}"),
        None => format!("call_{request_id}_{position}"),
    }
}

/// A DashScope reason → canonical. `"null"` (a running stream) is no reason. A forced
/// `tool_choice` answers `"stop"` together with tool calls: tool calls decide (§7 DashScope
/// forced tool). Unknown reasons are read as a natural stop rather than passed on.
pub(super) fn finish_from_wire(reason: Option<&str>, has_tool_calls: bool) -> Option<FinishReason> {
    let reason = match reason {
        None | Some("null") | Some("") => return None,
        Some(reason) => reason,
    };
    Some(match reason {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" | "data_inspection_failed" => FinishReason::ContentFilter,
        _ if has_tool_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    })
}

/// Canonical → DashScope (§5.2): DashScope knows only `stop`, `length` and `tool_calls`.
pub(super) fn finish_to_wire(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::Stop
        | FinishReason::StopSequence(_)
        | FinishReason::ContentFilter
        | FinishReason::Pause => "stop",
    }
}

/// Encodes a canonical response for a DashScope client. `request_id` is the gateway's id for
/// the call (DashScope clients read it from the body).
pub fn encode_response(
    resp: &ChatResponse,
    _req: &ChatRequest,
    options: &DashScopeOptions,
    request_id: &str,
) -> Value {
    let output = match options.result_format {
        ResultFormat::Text => {
            // The text format has room for one answer: the first choice.
            let first = resp.choices.iter().min_by_key(|c| c.index);
            WireOutput {
                text: Some(first.map(choice_text).unwrap_or_default()),
                finish_reason: Some(first.map(final_reason).unwrap_or("stop").to_string()),
                choices: None,
            }
        }
        ResultFormat::Message => {
            let several = resp.choices.len() > 1;
            let choices = resp
                .choices
                .iter()
                .map(|choice| WireChoice {
                    message: Some(choice_message(choice)),
                    index: several.then_some(choice.index),
                    finish_reason: Some(final_reason(choice).to_string()),
                })
                .collect();
            WireOutput {
                choices: Some(choices),
                ..WireOutput::default()
            }
        }
    };
    let body = WireResponse {
        output: Some(output),
        usage: resp.usage.as_ref().map(WireUsage::from_canonical),
        request_id: Some(request_id.to_string()),
        ..WireResponse::default()
    };
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// The reason to show for a finished response; an absent one is inferred from the content.
fn final_reason(choice: &Choice) -> &'static str {
    match &choice.finish {
        Some(reason) => finish_to_wire(reason),
        None if has_tool_calls(&choice.parts) => "tool_calls",
        None => "stop",
    }
}

fn has_tool_calls(parts: &[Part]) -> bool {
    parts.iter().any(|p| matches!(p, Part::ToolCall { .. }))
}

fn choice_text(choice: &Choice) -> String {
    choice
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// `{role, content, reasoning_content?, tool_calls?}`; every tool call is kept (§7 dropped tool
/// calls), with its `index` as DashScope writes it.
fn choice_message(choice: &Choice) -> WireMessage {
    let reasoning: String = choice
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Reasoning { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let calls: Vec<WireToolCall> = choice
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::ToolCall {
                id,
                name,
                arguments,
            } => Some((id, name, arguments)),
            _ => None,
        })
        .enumerate()
        .map(|(i, (id, name, arguments))| WireToolCall {
            index: Some(i as u32),
            id: Some(id.clone()),
            kind: Some("function".into()),
            function: WireFunctionCall {
                name: Some(name.clone()),
                arguments: Some(Value::String(arguments.clone())),
            },
        })
        .collect();
    WireMessage {
        role: Some("assistant".into()),
        content: Some(WireContent::Text(choice_text(choice))),
        reasoning_content: Some(reasoning).filter(|r| !r.is_empty()),
        tool_calls: Some(calls).filter(|c| !c.is_empty()),
        ..WireMessage::default()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

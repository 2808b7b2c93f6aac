//! The canonical request → a DashScope native upstream body and the endpoint it goes to
//! (protocols.md §5.8, §5.9).
//!
//! - One system message first (several system blocks are joined with a blank line).
//! - Text-only content is a string. As soon as any message holds an image, the request goes to
//!   the multimodal endpoint and **every** message's content becomes a list of `{"text"}` /
//!   `{"image":url}` items; inline images become data URLs there, which DashScope documents
//!   only for SDK uploads (unverified).
//! - Tool calls and results keep the OpenAI shape: one `tool` message per result, text only.
//! - Earlier reasoning goes back as `reasoning_content` (DeepSeek and Kimi on DashScope need it
//!   on tool-calling turns); signatures and redacted reasoning have no DashScope form and are
//!   dropped.

use serde_json::{json, Value};

use super::wire::{
    WireContent, WireFunctionCall, WireInput, WireMessage, WireParameters, WirePart, WireRequest,
    WireTool, WireToolCall, WireToolFunction,
};
use super::Endpoint;
use crate::protocol::canonical::{
    ChatRequest, ImageSource, InvalidRequest, Message, Part, ResponseFormat, Role, ToolChoice,
};

/// DashScope's temperature range is [0, 2): 2 itself is rejected.
const MAX_TEMPERATURE: f64 = 1.99;

/// Encodes a request for a DashScope native upstream.
pub fn encode_request(
    req: &ChatRequest,
    upstream_model: &str,
) -> Result<(Value, Endpoint), InvalidRequest> {
    if let Some(n) = req.n.filter(|n| !(1..=4).contains(n)) {
        return Err(InvalidRequest::new(
            format!("DashScope generates 1 to 4 choices, not {n}."),
            Some("n"),
        ));
    }
    let multimodal = req
        .messages
        .iter()
        .flat_map(|m| &m.parts)
        .any(|part| matches!(part, Part::Image { .. }));
    let mut messages = Vec::new();
    let system: Vec<&str> = req.system.iter().map(|b| b.text.as_str()).collect();
    if !system.is_empty() {
        messages.push(WireMessage {
            role: Some("system".into()),
            content: Some(content(&texts_only(system.join("\n\n")), multimodal)),
            ..WireMessage::default()
        });
    }
    for message in &req.messages {
        encode_message(message, multimodal, &mut messages);
    }
    if messages.iter().all(|m| m.role.as_deref() == Some("system")) {
        return Err(InvalidRequest::new(
            "The request holds no message to send.",
            Some("messages"),
        ));
    }
    let body = WireRequest {
        model: Some(upstream_model.to_string()),
        input: Some(WireInput {
            messages: Some(messages),
            ..WireInput::default()
        }),
        parameters: Some(parameters(req)),
        extra: Default::default(),
    };
    let value = serde_json::to_value(body)
        .map_err(|e| InvalidRequest::new(format!("Cannot encode the request: {e}"), None))?;
    let endpoint = if multimodal {
        Endpoint::Multimodal
    } else {
        Endpoint::Text
    };
    Ok((value, endpoint))
}

fn texts_only(text: String) -> Vec<Part> {
    vec![Part::Text {
        text,
        cache_control: None,
    }]
}

/// One canonical message → zero or more DashScope messages. Tool results become `tool`
/// messages first, then whatever else the message holds; empty messages are dropped.
fn encode_message(message: &Message, multimodal: bool, out: &mut Vec<WireMessage>) {
    let mut shown = Vec::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for part in &message.parts {
        match part {
            Part::Text { text, .. } if !text.is_empty() => shown.push(part.clone()),
            Part::Text { .. } => {}
            Part::Image { .. } => shown.push(part.clone()),
            Part::Reasoning { text, .. } => reasoning.push_str(text),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(WireToolCall {
                index: None,
                id: Some(id.clone()),
                kind: Some("function".into()),
                function: WireFunctionCall {
                    name: Some(name.clone()),
                    arguments: Some(Value::String(arguments.clone())),
                },
            }),
            Part::ToolResult {
                call_id,
                content: result,
                is_error,
            } => out.push(tool_message(call_id, result, *is_error, multimodal)),
        }
    }
    let role = match message.role {
        Role::Assistant => "assistant",
        // Text beside tool results (an Anthropic user turn) follows them as a user message.
        Role::User | Role::Tool => "user",
    };
    if message.role != Role::Assistant {
        if !shown.is_empty() {
            out.push(WireMessage {
                role: Some(role.into()),
                content: Some(content(&shown, multimodal)),
                name: message.name.clone(),
                ..WireMessage::default()
            });
        }
        return;
    }
    if shown.is_empty() && calls.is_empty() && reasoning.is_empty() {
        return;
    }
    out.push(WireMessage {
        role: Some(role.into()),
        // An assistant turn of only tool calls carries empty content, as DashScope returns it.
        content: Some(content(&shown, multimodal)),
        reasoning_content: Some(reasoning).filter(|r| !r.is_empty()),
        tool_calls: Some(calls).filter(|c| !c.is_empty()),
        ..WireMessage::default()
    });
}

/// A tool result: its text only. Images inside a result have no place in a DashScope `tool`
/// message and are dropped; an error result is marked in the text, as OpenAI-style upstreams
/// have no error flag.
fn tool_message(call_id: &str, result: &[Part], is_error: bool, multimodal: bool) -> WireMessage {
    let mut text: String = result
        .iter()
        .filter_map(|part| match part {
            Part::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    if is_error {
        text = format!("Error: {text}");
    }
    WireMessage {
        role: Some("tool".into()),
        content: Some(content(&texts_only(text), multimodal)),
        tool_call_id: Some(call_id.to_string()),
        ..WireMessage::default()
    }
}

/// Text parts joined into one string, or (multimodal) one item per text or image part.
fn content(parts: &[Part], multimodal: bool) -> WireContent {
    if !multimodal {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|part| match part {
                Part::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        return WireContent::Text(texts.join("\n"));
    }
    let items = parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text, .. } if !text.is_empty() => Some(WirePart {
                text: Some(text.clone()),
                ..WirePart::default()
            }),
            Part::Image { source } => Some(WirePart {
                image: Some(Value::String(image_url(source))),
                ..WirePart::default()
            }),
            _ => None,
        })
        .collect();
    WireContent::Parts(items)
}

fn image_url(source: &ImageSource) -> String {
    match source {
        ImageSource::Url { url } => url.clone(),
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
    }
}

fn parameters(req: &ChatRequest) -> WireParameters {
    let reasoning = req.reasoning.as_ref();
    // An effort of `none`/`minimal` means no thinking (§5.6 rule 9 read backwards).
    let thinking =
        reasoning.map(|r| r.enabled && !matches!(r.effort.as_deref(), Some("none" | "minimal")));
    WireParameters {
        // Tools and reasoning need the message format, whatever the client asked for.
        result_format: Some("message".into()),
        incremental_output: req.stream.then_some(true),
        max_tokens: req.max_output_tokens,
        temperature: req.temperature.map(|t| t.clamp(0.0, MAX_TEMPERATURE)),
        top_p: req.top_p,
        top_k: req.top_k,
        // DashScope seeds are unsigned; a negative one (valid for OpenAI) would be a 400.
        seed: req.seed.filter(|seed| *seed >= 0),
        stop: Some(&req.stop)
            .filter(|stop| !stop.is_empty())
            .map(|stop| json!(stop)),
        presence_penalty: req.presence_penalty,
        n: req.n,
        tools: Some(
            req.tools
                .iter()
                .map(|tool| WireTool {
                    kind: Some("function".into()),
                    function: Some(WireToolFunction {
                        name: tool.name.clone(),
                        description: tool.description.clone(),
                        parameters: tool.parameters.clone(),
                        strict: tool.strict,
                    }),
                })
                .collect::<Vec<_>>(),
        )
        .filter(|tools| !tools.is_empty()),
        tool_choice: req.tool_choice.as_ref().map(|choice| match choice {
            ToolChoice::Auto | ToolChoice::Required => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Named(name) => json!({"type": "function", "function": {"name": name}}),
        }),
        parallel_tool_calls: req.parallel_tool_calls,
        response_format: req
            .response_format
            .as_ref()
            .and_then(|format| match format {
                ResponseFormat::Text => None,
                ResponseFormat::JsonObject => Some(json!({"type": "json_object"})),
                // Unverified on DashScope; sent as OpenAI spells it.
                ResponseFormat::JsonSchema {
                    name,
                    schema,
                    strict,
                } => {
                    let mut spec = json!({
                        "name": name.clone().unwrap_or_else(|| "response".into()),
                        "schema": schema,
                    });
                    if let (Some(strict), Some(spec)) = (strict, spec.as_object_mut()) {
                        spec.insert("strict".into(), Value::Bool(*strict));
                    }
                    Some(json!({"type": "json_schema", "json_schema": spec}))
                }
            }),
        enable_thinking: thinking,
        thinking_budget: reasoning
            .filter(|_| thinking == Some(true))
            .and_then(|r| r.budget_tokens),
        ..WireParameters::default()
    }
}

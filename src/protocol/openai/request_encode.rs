//! The canonical request → an OpenAI-compatible upstream body (protocols.md §5.6, §5.8).
//!
//! Rules that other gateways got wrong and that this file keeps (§7): every tool result becomes
//! its own `tool` message, in order, before the user text of that turn; tool-call `arguments`
//! are replayed byte for byte; a single stop string is still sent as an array; tools without a
//! schema are kept; stream usage is always requested so every call can be metered.

use serde_json::{json, Map, Value};

use super::tools::{encode_tool, encode_tool_choice};
use super::wire::{
    Arguments, AssistantMessage, ChatCompletionRequest, Content, ContentPart, FunctionCall,
    ImageUrl, JsonSchema, OrUnknown, RequestMessage, ResponseFormat, Stop, StreamOptions,
    SystemMessage, ToolCall, ToolMessage, UserMessage,
};
use crate::protocol::canonical::{
    self, ChatRequest, ImageSource, InvalidRequest, Message, Part, ReasoningConfig, Role,
};

/// System blocks become one system message, joined by a blank line.
const SYSTEM_SEPARATOR: &str = "\n\n";
/// Several reasoning blocks of one turn become one `reasoning_content`.
const REASONING_SEPARATOR: &str = "\n\n";

/// Encodes the canonical request for an OpenAI-compatible upstream serving `upstream_model`.
pub fn encode_request(req: &ChatRequest, upstream_model: &str) -> Result<Value, InvalidRequest> {
    let body = build_request(req, upstream_model, ReasoningReplay::Content);
    serde_json::to_value(body)
        .map_err(|e| InvalidRequest::new(format!("The request cannot be encoded: {e}"), None))
}

/// How earlier reasoning of assistant turns is sent back (signatures are always dropped: only
/// Anthropic can check them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReasoningReplay {
    /// `reasoning_content`, which DeepSeek, Kimi and DashScope compatible-mode need back on
    /// tool-calling turns.
    Content,
    /// MiniMax `reasoning_details: [{"text": …}]`, one item per reasoning block.
    Details,
}

/// The typed upstream body, for dialects that adjust it further (MiniMax).
pub(crate) fn build_request(
    req: &ChatRequest,
    upstream_model: &str,
    replay: ReasoningReplay,
) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: upstream_model.to_string(),
        messages: encode_messages(req, replay),
        max_completion_tokens: req.max_output_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        // An array even with one entry (new-api#7175); absent rather than `[]`.
        stop: (!req.stop.is_empty()).then(|| Stop::Many(req.stop.clone())),
        seed: req.seed,
        n: req.n,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        user: req.user.clone(),
        tools: (!req.tools.is_empty()).then(|| req.tools.iter().map(encode_tool).collect()),
        tool_choice: req.tool_choice.as_ref().map(encode_tool_choice),
        parallel_tool_calls: req.parallel_tool_calls,
        response_format: req.response_format.as_ref().map(encode_response_format),
        reasoning_effort: req.reasoning.as_ref().and_then(reasoning_effort),
        stream: req.stream.then_some(true),
        // Always asked for, whatever the client said: the gateway meters every call.
        stream_options: req.stream.then_some(StreamOptions {
            include_usage: Some(true),
        }),
        extra: Map::new(),
    }
}

fn encode_messages(req: &ChatRequest, replay: ReasoningReplay) -> Vec<RequestMessage> {
    let mut out = Vec::new();
    if !req.system.is_empty() {
        let text: Vec<&str> = req.system.iter().map(|b| b.text.as_str()).collect();
        out.push(RequestMessage::System(SystemMessage {
            content: Content::Text(text.join(SYSTEM_SEPARATOR)),
            name: None,
        }));
    }
    for message in &req.messages {
        match message.role {
            Role::Assistant => out.extend(encode_assistant(message, replay)),
            Role::User | Role::Tool => encode_user_turn(message, &mut out),
        }
    }
    out
}

/// A user or tool turn: one `tool` message per result, in order, first; then one user message
/// with the images the results carried (tool messages take text only) and the turn's own parts.
fn encode_user_turn(message: &Message, out: &mut Vec<RequestMessage>) {
    let mut user_parts: Vec<&Part> = Vec::new();
    let mut own_parts: Vec<&Part> = Vec::new();
    for part in &message.parts {
        match part {
            Part::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let mut text: String = content
                    .iter()
                    .filter_map(|p| match p {
                        Part::Text { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                if *is_error {
                    text = format!("Error: {text}");
                }
                out.push(RequestMessage::Tool(ToolMessage {
                    content: Content::Text(text),
                    tool_call_id: call_id.clone(),
                }));
                user_parts.extend(content.iter().filter(|p| matches!(p, Part::Image { .. })));
            }
            Part::Text { text, .. } if !text.is_empty() => own_parts.push(part),
            Part::Image { .. } => own_parts.push(part),
            // Reasoning and tool calls do not belong to a user turn; empty text is dropped.
            _ => {}
        }
    }
    user_parts.extend(own_parts);
    if let Some(content) = user_content(&user_parts) {
        out.push(RequestMessage::User(UserMessage {
            content,
            name: message.name.clone(),
        }));
    }
}

/// One text part → a plain string (every compatible server takes it); otherwise parts.
fn user_content(parts: &[&Part]) -> Option<Content> {
    match parts {
        [] => None,
        [Part::Text { text, .. }] => Some(Content::Text(text.clone())),
        parts => Some(Content::Parts(
            parts
                .iter()
                .filter_map(|part| match part {
                    Part::Text { text, .. } => Some(ContentPart::Text { text: text.clone() }),
                    Part::Image { source } => Some(ContentPart::ImageUrl {
                        image_url: ImageUrl {
                            url: image_url(source),
                            detail: None,
                        },
                    }),
                    _ => None,
                })
                .map(OrUnknown::Known)
                .collect(),
        )),
    }
}

/// An image as `image_url` takes it: the URL, or the inline data as a data URL.
pub(crate) fn image_url(source: &ImageSource) -> String {
    match source {
        ImageSource::Url { url } => url.clone(),
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
    }
}

fn encode_assistant(message: &Message, replay: ReasoningReplay) -> Option<RequestMessage> {
    let mut text = String::new();
    let mut reasoning: Vec<&str> = Vec::new();
    let mut tool_calls = Vec::new();
    for part in &message.parts {
        match part {
            Part::Text { text: t, .. } => text.push_str(t),
            // Redacted reasoning has no text an OpenAI-style upstream could use.
            Part::Reasoning { text: t, .. } if !t.is_empty() => reasoning.push(t),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => tool_calls.push(ToolCall {
                index: None,
                id: Some(id.clone()),
                kind: Some("function".into()),
                function: Some(FunctionCall {
                    name: Some(name.clone()),
                    arguments: Some(Arguments::Text(arguments.clone())),
                }),
            }),
            _ => {}
        }
    }
    if text.is_empty() && tool_calls.is_empty() && reasoning.is_empty() {
        return None;
    }
    let mut assistant = AssistantMessage {
        // `null` content is allowed only next to tool calls.
        content: (!text.is_empty() || tool_calls.is_empty()).then_some(Content::Text(text)),
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        reasoning_content: None,
        thinking_blocks: None,
        refusal: None,
        name: message.name.clone(),
        extra: Map::new(),
    };
    if !reasoning.is_empty() {
        match replay {
            ReasoningReplay::Content => {
                assistant.reasoning_content = Some(reasoning.join(REASONING_SEPARATOR));
            }
            ReasoningReplay::Details => {
                let details: Vec<Value> = reasoning.iter().map(|t| json!({"text": t})).collect();
                assistant
                    .extra
                    .insert("reasoning_details".into(), Value::Array(details));
            }
        }
    }
    Some(RequestMessage::Assistant(assistant))
}

fn encode_response_format(format: &canonical::ResponseFormat) -> ResponseFormat {
    match format {
        canonical::ResponseFormat::Text => ResponseFormat::Text,
        canonical::ResponseFormat::JsonObject => ResponseFormat::JsonObject,
        canonical::ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => ResponseFormat::JsonSchema {
            json_schema: JsonSchema {
                name: name.clone(),
                schema: (!schema.is_null()).then(|| schema.clone()),
                strict: *strict,
                description: None,
            },
        },
    }
}

/// `reasoning_effort` for a reasoning setting: the effort as said, or one derived from the
/// budget (≤2k low, ≤8k medium, else high). Turned off: omitted, except that OpenAI's own
/// `none`/`minimal` are sent back, since omitting them would mean the model's default effort.
pub(crate) fn reasoning_effort(reasoning: &ReasoningConfig) -> Option<String> {
    if !reasoning.enabled {
        return reasoning
            .effort
            .clone()
            .filter(|e| matches!(e.as_str(), "none" | "minimal"));
    }
    if let Some(effort) = &reasoning.effort {
        return Some(effort.clone());
    }
    let effort = match reasoning.budget_tokens? {
        0..=2048 => "low",
        2049..=8192 => "medium",
        _ => "high",
    };
    Some(effort.into())
}

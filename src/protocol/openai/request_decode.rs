//! A client's chat-completions body → the canonical request (protocols.md §1, §5.4 steps 1–4).
//!
//! Fields are read one by one so that a malformed one is named in the 400. What the canonical
//! model has no place for is dropped here: `logprobs`, `logit_bias`, `metadata`, `store`,
//! `service_tier`, image `detail`, `json_schema.description`. A same-dialect call forwards the
//! client's bytes instead and loses nothing.
//!
//! System and developer messages become system blocks wherever they stand: a mid-conversation
//! one keeps its text but loses its position (Anthropic has nowhere else to put it either).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::tools::{decode_tool_choice, decode_tools};
use super::wire::{
    AssistantMessage, Content, ContentPart, OrUnknown, RequestMessage, ResponseFormat, Stop,
    StreamOptions, ThinkingBlock, ToolCall, ToolChoice,
};
use crate::protocol::canonical::{
    self, ChatRequest, ImageSource, InvalidRequest, Message, Part, ReasoningConfig, Role,
    SystemBlock,
};

/// Decodes a client's chat-completions body into the canonical request.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, InvalidRequest> {
    let (value, info) =
        super::parse_chat_request(body).map_err(|e| InvalidRequest::new(e.message, e.param))?;
    let map = value
        .as_object()
        .ok_or_else(|| InvalidRequest::new("The request body must be a JSON object.", None))?;
    let mut request = ChatRequest {
        model: info.model,
        stream: info.stream,
        include_usage: info.include_usage,
        max_output_tokens: info.max_output_tokens,
        temperature: field(map, "temperature")?,
        top_p: field(map, "top_p")?,
        seed: field(map, "seed")?,
        n: field(map, "n")?,
        presence_penalty: field(map, "presence_penalty")?,
        frequency_penalty: field(map, "frequency_penalty")?,
        user: field(map, "user")?,
        parallel_tool_calls: field(map, "parallel_tool_calls")?,
        ..ChatRequest::default()
    };
    if let Some(options) = field::<StreamOptions>(map, "stream_options")? {
        request.include_usage = options.include_usage.unwrap_or(false);
    }
    request.stop = match field::<Stop>(map, "stop")? {
        None => Vec::new(),
        Some(Stop::One(stop)) => vec![stop],
        Some(Stop::Many(stops)) => stops,
    };
    request.tools = decode_tools(field(map, "tools")?.unwrap_or_default())?;
    request.tool_choice = field::<ToolChoice>(map, "tool_choice")?
        .map(decode_tool_choice)
        .transpose()?;
    request.response_format = field::<ResponseFormat>(map, "response_format")?.map(|f| match f {
        ResponseFormat::Text => canonical::ResponseFormat::Text,
        ResponseFormat::JsonObject => canonical::ResponseFormat::JsonObject,
        ResponseFormat::JsonSchema { json_schema } => canonical::ResponseFormat::JsonSchema {
            name: json_schema.name,
            schema: json_schema.schema.unwrap_or(Value::Null),
            strict: json_schema.strict,
        },
    });
    request.reasoning = field::<String>(map, "reasoning_effort")?.map(|effort| ReasoningConfig {
        enabled: !matches!(effort.as_str(), "none" | "minimal"),
        effort: Some(effort),
        budget_tokens: None,
    });
    let messages = map.get("messages").and_then(Value::as_array);
    for (i, raw) in messages.into_iter().flatten().enumerate() {
        decode_message(raw, i, &mut request)?;
    }
    Ok(request)
}

fn invalid(message: String, param: &str) -> InvalidRequest {
    InvalidRequest::new(message, Some(param))
}

/// A top-level field of a known type; `null` counts as absent.
fn field<T: DeserializeOwned>(
    map: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, InvalidRequest> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => T::deserialize(value)
            .map(Some)
            .map_err(|e| invalid(format!("'{name}' is invalid: {e}."), name)),
    }
}

fn decode_message(raw: &Value, i: usize, request: &mut ChatRequest) -> Result<(), InvalidRequest> {
    let at = format!("messages[{i}]");
    if raw.get("role").and_then(Value::as_str) == Some("function") {
        return Err(invalid(
            format!(
                "'{at}': the deprecated 'function' role is not supported; send 'tool' messages."
            ),
            &at,
        ));
    }
    let message = RequestMessage::deserialize(raw)
        .map_err(|e| invalid(format!("'{at}' is malformed: {e}."), &at))?;
    match message {
        RequestMessage::System(system) | RequestMessage::Developer(system) => {
            for text in system_texts(&system.content, &at)? {
                request.system.push(SystemBlock {
                    text,
                    cache_control: None,
                });
            }
        }
        RequestMessage::User(user) => {
            let parts = user_parts(&user.content, &at)?;
            if !parts.is_empty() {
                request.messages.push(Message {
                    role: Role::User,
                    parts,
                    name: user.name,
                });
            }
        }
        RequestMessage::Assistant(assistant) => {
            let parts = assistant_parts(&assistant, &at)?;
            if !parts.is_empty() {
                request.messages.push(Message {
                    role: Role::Assistant,
                    parts,
                    name: assistant.name,
                });
            }
        }
        RequestMessage::Tool(tool) => {
            let result = Part::ToolResult {
                call_id: tool.tool_call_id,
                content: user_parts(&tool.content, &at)?,
                is_error: false,
            };
            // Consecutive tool messages answer one assistant turn: one canonical Tool message.
            match request.messages.last_mut() {
                Some(last) if last.role == Role::Tool => last.parts.push(result),
                _ => request.messages.push(Message {
                    role: Role::Tool,
                    parts: vec![result],
                    name: None,
                }),
            }
        }
    }
    Ok(())
}

fn system_texts(content: &Content, at: &str) -> Result<Vec<String>, InvalidRequest> {
    let texts = match content {
        Content::Text(text) => vec![text.clone()],
        Content::Parts(parts) => {
            let mut texts = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match part {
                    OrUnknown::Known(ContentPart::Text { text }) => texts.push(text.clone()),
                    _ => {
                        return Err(invalid(
                            format!("'{at}.content[{j}]': system messages take text parts only."),
                            at,
                        ))
                    }
                }
            }
            texts
        }
    };
    Ok(texts.into_iter().filter(|t| !t.is_empty()).collect())
}

/// User (and tool) content: text and images; empty text is dropped.
fn user_parts(content: &Content, at: &str) -> Result<Vec<Part>, InvalidRequest> {
    let text = |text: &str| Part::Text {
        text: text.to_string(),
        cache_control: None,
    };
    let mut out = Vec::new();
    match content {
        Content::Text(t) if t.is_empty() => {}
        Content::Text(t) => out.push(text(t)),
        Content::Parts(parts) => {
            for (j, part) in parts.iter().enumerate() {
                let at = format!("{at}.content[{j}]");
                match part {
                    OrUnknown::Known(ContentPart::Text { text: t })
                    | OrUnknown::Known(ContentPart::Refusal { refusal: t }) => {
                        if !t.is_empty() {
                            out.push(text(t));
                        }
                    }
                    OrUnknown::Known(ContentPart::ImageUrl { image_url }) => {
                        out.push(Part::Image {
                            source: image_source(&image_url.url, &at)?,
                        })
                    }
                    OrUnknown::Unknown(other) => return Err(unsupported_part(other, &at)),
                }
            }
        }
    }
    Ok(out)
}

fn unsupported_part(part: &Value, at: &str) -> InvalidRequest {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("(none)");
    let message = match kind {
        "text" | "image_url" | "refusal" => format!("'{at}' is a malformed '{kind}' part."),
        _ => format!("'{at}': content parts of type '{kind}' are not supported by this gateway."),
    };
    invalid(message, at)
}

/// An `image_url` URL: a base64 data URL becomes inline data with its media type; anything else
/// stays a URL for the upstream to fetch.
fn image_source(url: &str, at: &str) -> Result<ImageSource, InvalidRequest> {
    let is_data = url
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("data:"));
    if !is_data {
        return Ok(ImageSource::Url {
            url: url.to_string(),
        });
    }
    let bad = |why: &str| invalid(format!("'{at}.image_url.url' {why}."), at);
    let (meta, data) = url[5..]
        .split_once(',')
        .ok_or_else(|| bad("is a data URL without data"))?;
    let mut params = meta.split(';');
    let media_type = params.next().unwrap_or("").trim().to_ascii_lowercase();
    if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err(bad("must be a base64 data URL"));
    }
    if media_type.is_empty() {
        return Err(bad("must name the image media type"));
    }
    Ok(ImageSource::Base64 {
        media_type,
        data: data.to_string(),
    })
}

/// Assistant turn: reasoning first (signed `thinking_blocks` win over the plain
/// `reasoning_content`, which repeats their text), then text, then every tool call.
fn assistant_parts(message: &AssistantMessage, at: &str) -> Result<Vec<Part>, InvalidRequest> {
    let mut parts = Vec::new();
    match &message.thinking_blocks {
        Some(blocks) if !blocks.is_empty() => {
            for (k, block) in blocks.iter().enumerate() {
                match block {
                    OrUnknown::Known(block) => parts.push(reasoning_part(block)),
                    OrUnknown::Unknown(_) => {
                        return Err(invalid(
                            format!("'{at}.thinking_blocks[{k}]' must be a thinking or redacted_thinking block."),
                            at,
                        ))
                    }
                }
            }
            fill_streamed_thinking(&mut parts, message.reasoning_content.as_deref());
        }
        _ => {
            if let Some(text) = message
                .reasoning_content
                .as_deref()
                .filter(|t| !t.is_empty())
            {
                parts.push(Part::Reasoning {
                    text: text.to_string(),
                    signature: None,
                    redacted: None,
                });
            }
        }
    }
    let mut text = match &message.content {
        None => String::new(),
        Some(Content::Text(text)) => text.clone(),
        Some(Content::Parts(content)) => {
            let mut text = String::new();
            for (j, part) in content.iter().enumerate() {
                match part {
                    OrUnknown::Known(ContentPart::Text { text: t })
                    | OrUnknown::Known(ContentPart::Refusal { refusal: t }) => text.push_str(t),
                    OrUnknown::Known(ContentPart::ImageUrl { .. }) | OrUnknown::Unknown(_) => {
                        return Err(invalid(
                            format!("'{at}.content[{j}]': assistant content takes text and refusal parts only."),
                            at,
                        ))
                    }
                }
            }
            text
        }
    };
    if text.is_empty() {
        text = message.refusal.clone().unwrap_or_default();
    }
    if !text.is_empty() {
        parts.push(Part::Text {
            text,
            cache_control: None,
        });
    }
    for (k, call) in message.tool_calls.iter().flatten().enumerate() {
        parts.push(tool_call_part(call, &format!("{at}.tool_calls[{k}]"))?);
    }
    Ok(parts)
}

/// A client that rebuilt the turn from our stream has the text in `reasoning_content` and the
/// signature in a `thinking_blocks` entry with empty `thinking` (that is how the stream encoder
/// sends a signature). With exactly one thinking block the text can only be its own; an empty
/// `reasoning_content` means the thinking really was omitted (`display:"omitted"`).
fn fill_streamed_thinking(parts: &mut [Part], reasoning_content: Option<&str>) {
    let Some(content) = reasoning_content.filter(|t| !t.is_empty()) else {
        return;
    };
    let mut thinking = parts
        .iter_mut()
        .filter(|p| matches!(p, Part::Reasoning { redacted: None, .. }));
    if let (Some(Part::Reasoning { text, .. }), None) = (thinking.next(), thinking.next()) {
        if text.is_empty() {
            *text = content.to_string();
        }
    }
}

/// A thinking block of the `thinking_blocks` extension as canonical reasoning.
pub(crate) fn reasoning_part(block: &ThinkingBlock) -> Part {
    match block {
        ThinkingBlock::Thinking {
            thinking,
            signature,
        } => Part::Reasoning {
            text: thinking.clone(),
            signature: signature.clone(),
            redacted: None,
        },
        ThinkingBlock::RedactedThinking { data } => Part::Reasoning {
            text: String::new(),
            signature: None,
            redacted: Some(data.clone()),
        },
    }
}

fn tool_call_part(call: &ToolCall, at: &str) -> Result<Part, InvalidRequest> {
    let id = call.id.clone().filter(|id| !id.is_empty());
    let function = call.function.as_ref();
    let name = function
        .and_then(|f| f.name.clone())
        .filter(|n| !n.is_empty());
    match (id, name) {
        (Some(id), Some(name)) => Ok(Part::ToolCall {
            id,
            name,
            // Verbatim: arguments are replayed byte for byte (MiniMax rejects changed ones).
            arguments: function
                .and_then(|f| f.arguments.as_ref())
                .map(|a| a.to_text())
                .unwrap_or_default(),
        }),
        (None, _) => Err(invalid(format!("'{at}.id' is required."), at)),
        (_, None) => Err(invalid(format!("'{at}.function.name' is required."), at)),
    }
}

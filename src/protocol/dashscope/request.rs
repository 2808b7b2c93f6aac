//! A DashScope client's text-generation body → the canonical request (protocols.md §3, §5.8
//! "DashScope request → OpenAI"). Everything the gateway cannot honour is refused here, before
//! any upstream is called, with a message naming the field.

use serde_json::Value;

use super::parameters::decode_parameters;
use super::wire::{WireContent, WireMessage, WireParameters, WirePart, WireRequest};
use super::{DashScopeOptions, ResultFormat};
use crate::protocol::canonical::{
    ChatRequest, ImageSource, InvalidRequest, Message, Part, Role, SystemBlock,
};

/// Decodes a client's DashScope body. `stream` comes from the gateway (`X-DashScope-SSE: enable`
/// or `Accept: text/event-stream`): DashScope has no body field for it.
pub fn decode_request(
    body: &[u8],
    stream: bool,
) -> Result<(ChatRequest, DashScopeOptions), InvalidRequest> {
    let wire: WireRequest = serde_json::from_slice(body)
        .map_err(|e| InvalidRequest::new(format!("The request body is not valid: {e}"), None))?;
    let model = match wire.model {
        Some(model) if !model.is_empty() => model,
        _ => {
            return Err(invalid(
                "Model not specified: 'model' is required.",
                "model",
            ))
        }
    };
    let input = wire.input.unwrap_or_default();
    if input.history.is_some() {
        return Err(invalid(
            "'input.history' is deprecated and not supported; send 'input.messages'.",
            "input.history",
        ));
    }
    let messages = match (input.messages, input.prompt) {
        (Some(messages), _) if !messages.is_empty() => messages,
        (_, Some(prompt)) if !prompt.is_empty() => vec![WireMessage {
            role: Some("user".into()),
            content: Some(WireContent::Text(prompt)),
            ..WireMessage::default()
        }],
        _ => {
            return Err(invalid(
                "'input.messages' (or 'input.prompt') is required and must not be empty.",
                "input.messages",
            ))
        }
    };
    let mut request = ChatRequest {
        model,
        stream,
        // DashScope streams carry usage in every event, asked for or not.
        include_usage: true,
        ..ChatRequest::default()
    };
    decode_messages(messages, &mut request)?;
    let params = wire.parameters.unwrap_or_default();
    let options = decode_parameters(params, &mut request)?;
    if options.result_format == ResultFormat::Text && !request.tools.is_empty() {
        return Err(invalid(
            "Tools need \"result_format\": \"message\"; the text format cannot carry tool calls.",
            "parameters.result_format",
        ));
    }
    Ok((request, options))
}

/// What the gateway itself needs from a request that is valid DashScope but cannot be
/// translated (`InvalidRequest::untranslatable`), so it can be relayed as it is to a DashScope
/// upstream: the model, and every parameter checked exactly as [`decode_request`] checks it —
/// `max_tokens` and `n` size the balance hold — except the untranslatable `stop`.
pub fn decode_relayed_request(
    body: &[u8],
    stream: bool,
) -> Result<(ChatRequest, DashScopeOptions), InvalidRequest> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| InvalidRequest::new(format!("The request body is not valid: {e}"), None))?;
    let model = match value.get("model").and_then(Value::as_str) {
        Some(model) if !model.is_empty() => model.to_string(),
        _ => {
            return Err(invalid(
                "Model not specified: 'model' is required.",
                "model",
            ))
        }
    };
    if !value.get("input").is_some_and(Value::is_object) {
        return Err(invalid("'input' must be an object.", "input"));
    }
    let mut params = value
        .get_mut("parameters")
        .map(Value::take)
        .unwrap_or_else(|| Value::Object(Default::default()));
    if let Value::Object(map) = &mut params {
        map.remove("stop");
    }
    let params: WireParameters = serde_json::from_value(params).map_err(|e| {
        InvalidRequest::new(
            format!("'parameters' is not valid: {e}"),
            Some("parameters"),
        )
    })?;
    let mut request = ChatRequest {
        model,
        stream,
        include_usage: true,
        ..ChatRequest::default()
    };
    let options = decode_parameters(params, &mut request)?;
    Ok((request, options))
}

fn invalid(message: impl Into<String>, param: &str) -> InvalidRequest {
    InvalidRequest::new(message, Some(param))
}

/// Messages in order. System messages go to `system` wherever they stand (DashScope wants them
/// first anyway); consecutive tool messages become one canonical tool message, so that an
/// Anthropic upstream gets all results of a turn in one user message (§7 parallel tool results).
fn decode_messages(
    messages: Vec<WireMessage>,
    request: &mut ChatRequest,
) -> Result<(), InvalidRequest> {
    for (i, message) in messages.into_iter().enumerate() {
        let param = format!("input.messages[{i}]");
        let role = message.role.clone().unwrap_or_default();
        match role.as_str() {
            "system" => {
                let text = plain_text(message.content, &param)?;
                if !text.is_empty() {
                    request.system.push(SystemBlock {
                        text,
                        cache_control: None,
                    });
                }
            }
            "user" => {
                let parts = content_parts(message.content, &param)?;
                push_message(request, Role::User, parts, message.name);
            }
            "assistant" => {
                let parts = assistant_parts(message, &param)?;
                push_message(request, Role::Assistant, parts, None);
            }
            "tool" => {
                let Some(call_id) = message.tool_call_id.filter(|id| !id.is_empty()) else {
                    return Err(invalid(
                        format!("'{param}.tool_call_id' is required for a tool message."),
                        &param,
                    ));
                };
                let result = Part::ToolResult {
                    call_id,
                    content: content_parts(message.content, &param)?,
                    is_error: false,
                };
                match request.messages.last_mut() {
                    Some(last) if last.role == Role::Tool => last.parts.push(result),
                    _ => request.messages.push(Message {
                        role: Role::Tool,
                        parts: vec![result],
                        name: None,
                    }),
                }
            }
            other => {
                return Err(invalid(
                    format!(
                        "'{param}.role' must be system, user, assistant or tool, not '{other}'."
                    ),
                    &param,
                ))
            }
        }
    }
    if request.messages.is_empty() {
        return Err(invalid(
            "'input.messages' holds no user, assistant or tool content.",
            "input.messages",
        ));
    }
    Ok(())
}

/// Adds a message unless it ended up empty (§7 empty content: empty blocks and messages are
/// dropped; several upstreams reject them).
fn push_message(request: &mut ChatRequest, role: Role, parts: Vec<Part>, name: Option<String>) {
    if !parts.is_empty() {
        request.messages.push(Message { role, parts, name });
    }
}

fn assistant_parts(message: WireMessage, param: &str) -> Result<Vec<Part>, InvalidRequest> {
    let mut parts = Vec::new();
    if let Some(reasoning) = message.reasoning_content.filter(|r| !r.is_empty()) {
        parts.push(Part::Reasoning {
            text: reasoning,
            signature: None,
            redacted: None,
        });
    }
    parts.extend(content_parts(message.content, param)?);
    for (i, call) in message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let name = call.function.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(invalid(
                format!("'{param}.tool_calls[{i}].function.name' is required."),
                param,
            ));
        }
        parts.push(Part::ToolCall {
            id: call.id.clone().unwrap_or_default(),
            name,
            arguments: call.function.arguments_text(),
        });
    }
    Ok(parts)
}

/// Text and image parts of a message; empty text is dropped.
fn content_parts(content: Option<WireContent>, param: &str) -> Result<Vec<Part>, InvalidRequest> {
    let items = match content {
        None => return Ok(Vec::new()),
        Some(WireContent::Text(text)) => vec![WirePart {
            text: Some(text),
            ..WirePart::default()
        }],
        Some(WireContent::Parts(items)) => items,
    };
    let mut parts = Vec::new();
    for item in items {
        if let Some(text) = item.text {
            if !text.is_empty() {
                parts.push(Part::Text {
                    text,
                    cache_control: None,
                });
            }
        } else if let Some(url) = image_url(&item) {
            parts.push(Part::Image {
                source: image_source(url),
            });
        } else {
            let kind = item.extra.keys().next().cloned().unwrap_or_default();
            return Err(InvalidRequest::untranslatable(
                format!("'{param}.content' holds an unsupported item '{kind}': only text and image are supported."),
                Some(param),
            ));
        }
    }
    Ok(parts)
}

/// `{"image":"url"}`, `{"image":{"url"}}` or OpenAI's `{"image_url":{"url"}}`.
fn image_url(item: &WirePart) -> Option<String> {
    let value = item.image.as_ref().or(item.image_url.as_ref())?;
    match value {
        Value::String(url) => Some(url.clone()),
        other => other.get("url").and_then(Value::as_str).map(str::to_string),
    }
}

/// A `data:` URL becomes inline base64; anything else stays a URL.
pub(super) fn image_source(url: String) -> ImageSource {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((media_type, data)) = rest.split_once(";base64,") {
            return ImageSource::Base64 {
                media_type: media_type.to_string(),
                data: data.to_string(),
            };
        }
    }
    ImageSource::Url { url }
}

/// System content must be text; parts are joined with newlines.
fn plain_text(content: Option<WireContent>, param: &str) -> Result<String, InvalidRequest> {
    let mut texts = Vec::new();
    for part in content_parts(content, param)? {
        match part {
            Part::Text { text, .. } => texts.push(text),
            _ => return Err(invalid(format!("'{param}.content' must be text."), param)),
        }
    }
    Ok(texts.join("\n"))
}

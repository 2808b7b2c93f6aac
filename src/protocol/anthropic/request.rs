//! Anthropic `/v1/messages` and `/v1/messages/count_tokens` bodies from a client → canonical
//! request (protocols.md §2, §5.6). Checks what Anthropic itself checks first (`model`,
//! `messages`, `max_tokens`) so the client gets the same 400 it would get from Anthropic.

use serde_json::Value;

use super::wire::{
    Block, Content, ImageSource as WireImage, KnownBlock, MessagesRequest, ResultContent,
    WireMessage, WireTool, WireToolChoice,
};
use crate::protocol::canonical::{
    ChatRequest, ImageSource, InvalidRequest, Message, Part, ReasoningConfig, ResponseFormat, Role,
    SystemBlock, Tool, ToolChoice,
};

/// Decodes a Messages request. `max_tokens` is required, as Anthropic requires it.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, InvalidRequest> {
    decode(body, true)
}

/// Decodes a `count_tokens` request: the same body without `max_tokens`.
pub fn decode_count_tokens_request(body: &[u8]) -> Result<ChatRequest, InvalidRequest> {
    decode(body, false)
}

fn decode(body: &[u8], needs_max_tokens: bool) -> Result<ChatRequest, InvalidRequest> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        InvalidRequest::new(format!("The request body is not valid JSON: {e}"), None)
    })?;
    let Value::Object(map) = &value else {
        return Err(InvalidRequest::new(
            "The request body must be a JSON object.",
            None,
        ));
    };
    match map.get("model") {
        Some(Value::String(model)) if !model.is_empty() => {}
        Some(_) => return Err(field_error("model", "must be a non-empty string")),
        None => return Err(field_error("model", "Field required")),
    }
    match map.get("messages") {
        Some(Value::Array(_)) => {}
        Some(_) => return Err(field_error("messages", "must be an array")),
        None => return Err(field_error("messages", "Field required")),
    }
    if needs_max_tokens {
        match map.get("max_tokens") {
            Some(v) if v.is_u64() => {}
            Some(_) => return Err(field_error("max_tokens", "must be a non-negative integer")),
            None => return Err(field_error("max_tokens", "Field required")),
        }
    }
    let wire: MessagesRequest = serde_json::from_value(value)
        .map_err(|e| InvalidRequest::new(format!("Invalid request body: {e}"), None))?;
    from_wire(wire)
}

fn field_error(field: &str, what: &str) -> InvalidRequest {
    InvalidRequest::new(format!("{field}: {what}"), Some(field))
}

fn from_wire(wire: MessagesRequest) -> Result<ChatRequest, InvalidRequest> {
    let mut system = match wire.system {
        Some(content) => system_blocks(content)?,
        None => Vec::new(),
    };
    let mut messages = Vec::new();
    for (i, message) in wire.messages.into_iter().enumerate() {
        decode_message(i, message, &mut system, &mut messages)?;
    }
    if messages.is_empty() {
        return Err(field_error(
            "messages",
            "at least one non-empty message is required",
        ));
    }
    let (tool_choice, parallel_tool_calls) = match wire.tool_choice {
        Some(choice) => decode_tool_choice(choice)?,
        None => (None, None),
    };
    let effort = wire.output_config.as_ref().and_then(|c| c.effort.clone());
    let reasoning = match wire.thinking {
        Some(thinking) => Some(match thinking.kind.as_str() {
            "enabled" => ReasoningConfig {
                enabled: true,
                effort,
                budget_tokens: thinking.budget_tokens,
            },
            "adaptive" => ReasoningConfig {
                enabled: true,
                effort,
                budget_tokens: None,
            },
            "disabled" => ReasoningConfig {
                enabled: false,
                effort: None,
                budget_tokens: None,
            },
            other => {
                return Err(field_error(
                    "thinking",
                    &format!("unknown type `{other}` (expected enabled, adaptive or disabled)"),
                ))
            }
        }),
        // `output_config.effort` alone still steers how hard the model works.
        None => effort.map(|effort| ReasoningConfig {
            enabled: true,
            effort: Some(effort),
            budget_tokens: None,
        }),
    };
    let response_format = wire
        .output_config
        .and_then(|c| c.format)
        .and_then(|format| match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => Some(ResponseFormat::JsonSchema {
                name: None,
                schema: format.get("schema").cloned().unwrap_or(Value::Null),
                strict: None,
            }),
            _ => None,
        });
    Ok(ChatRequest {
        model: wire.model,
        system,
        messages,
        tools: wire
            .tools
            .unwrap_or_default()
            .into_iter()
            .map(decode_tool)
            .collect::<Result<_, _>>()?,
        tool_choice,
        parallel_tool_calls,
        max_output_tokens: wire.max_tokens,
        temperature: wire.temperature,
        top_p: wire.top_p,
        top_k: wire.top_k,
        stop: wire.stop_sequences.unwrap_or_default(),
        seed: None,
        n: None,
        presence_penalty: None,
        frequency_penalty: None,
        user: wire.metadata.and_then(|m| m.user_id),
        reasoning,
        response_format,
        stream: wire.stream.unwrap_or(false),
        // Anthropic streams always carry usage.
        include_usage: true,
    })
}

fn system_blocks(content: Content) -> Result<Vec<SystemBlock>, InvalidRequest> {
    let blocks = match content {
        Content::Text(text) => vec![SystemBlock {
            text,
            cache_control: None,
        }],
        Content::Blocks(blocks) => blocks
            .into_iter()
            .map(|block| match block {
                Block::Known(KnownBlock::Text {
                    text,
                    cache_control,
                    ..
                }) => Ok(SystemBlock {
                    text,
                    cache_control,
                }),
                other => Err(field_error(
                    "system",
                    &format!("blocks must be text, not `{}`", other.type_name()),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(blocks.into_iter().filter(|b| !b.text.is_empty()).collect())
}

/// Decodes one message. A user message's `tool_result` blocks become one `Role::Tool` message
/// (in order), followed by a user message with the rest of its content. A mid-conversation
/// `system` message (newest SDKs) joins the system prompt.
fn decode_message(
    i: usize,
    message: WireMessage,
    system: &mut Vec<SystemBlock>,
    out: &mut Vec<Message>,
) -> Result<(), InvalidRequest> {
    let role = match message.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => {
            system.extend(system_blocks(message.content)?);
            return Ok(());
        }
        other => {
            return Err(field_error(
                "messages",
                &format!("messages.{i}.role: unexpected role `{other}` (user or assistant)"),
            ))
        }
    };
    let blocks = match message.content {
        Content::Text(text) => vec![Block::Known(KnownBlock::Text {
            text,
            cache_control: None,
            extra: Default::default(),
        })],
        Content::Blocks(blocks) => blocks,
    };
    let mut results = Vec::new();
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            Block::Known(KnownBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
                ..
            }) if role == Role::User => results.push(Part::ToolResult {
                call_id: tool_use_id,
                content: result_parts(i, content)?,
                is_error: is_error.unwrap_or(false),
            }),
            block => parts.extend(decode_block(i, block)?),
        }
    }
    if !results.is_empty() {
        out.push(Message {
            role: Role::Tool,
            parts: results,
            name: None,
        });
    }
    if !parts.is_empty() {
        out.push(Message {
            role,
            parts,
            name: None,
        });
    }
    Ok(())
}

/// One block → at most one part (empty text is dropped: Anthropic rejects it anyway).
fn decode_block(i: usize, block: Block) -> Result<Option<Part>, InvalidRequest> {
    Ok(match block {
        Block::Known(KnownBlock::Text {
            text,
            cache_control,
            ..
        }) => (!text.is_empty()).then_some(Part::Text {
            text,
            cache_control,
        }),
        Block::Known(KnownBlock::Image { source, .. }) => Some(Part::Image {
            source: match source {
                WireImage::Base64 { media_type, data } => ImageSource::Base64 { media_type, data },
                WireImage::Url { url } => ImageSource::Url { url },
            },
        }),
        Block::Known(KnownBlock::ToolResult { .. }) => {
            return Err(field_error(
                "messages",
                &format!("messages.{i}: tool_result blocks belong in a user message"),
            ))
        }
        other => match super::response::reasoning_or_tool_call(other) {
            Ok(part) => Some(part),
            Err(other) => {
                return Err(InvalidRequest::untranslatable(
                    format!(
                        "messages: messages.{i}: content block `{}` is not supported by this \
                         model's upstream (or is malformed)",
                        other.type_name()
                    ),
                    Some("messages"),
                ))
            }
        },
    })
}

fn result_parts(i: usize, content: Option<ResultContent>) -> Result<Vec<Part>, InvalidRequest> {
    let blocks = match content {
        None => return Ok(Vec::new()),
        Some(ResultContent::Text(text)) if text.is_empty() => return Ok(Vec::new()),
        Some(ResultContent::Text(text)) => {
            return Ok(vec![Part::Text {
                text,
                cache_control: None,
            }])
        }
        Some(ResultContent::Blocks(blocks)) => blocks,
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            Block::Known(KnownBlock::Text { .. } | KnownBlock::Image { .. }) => {
                parts.extend(decode_block(i, block)?)
            }
            other => {
                return Err(field_error(
                    "messages",
                    &format!(
                        "messages.{i}: tool_result content may hold text and images, not `{}`",
                        other.type_name()
                    ),
                ))
            }
        }
    }
    Ok(parts)
}

/// `tool_use.input` → the canonical `arguments` string: compact JSON of the object.
pub(super) fn arguments_from_input(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_string(),
        input => serde_json::to_string(input).unwrap_or_else(|_| "{}".to_string()),
    }
}

fn decode_tool(tool: WireTool) -> Result<Tool, InvalidRequest> {
    match tool.kind.as_deref() {
        None | Some("custom") => {}
        Some(kind) => {
            return Err(InvalidRequest::untranslatable(
                format!("tools: server tool `{kind}` cannot be used with this model's upstream"),
                Some("tools"),
            ))
        }
    }
    if tool.name.is_empty() {
        return Err(field_error("tools", "every tool needs a name"));
    }
    Ok(Tool {
        name: tool.name,
        description: tool.description,
        parameters: tool.input_schema,
        strict: tool.strict,
    })
}

fn decode_tool_choice(
    choice: WireToolChoice,
) -> Result<(Option<ToolChoice>, Option<bool>), InvalidRequest> {
    let tool_choice = match (choice.kind.as_str(), choice.name) {
        ("auto", _) => ToolChoice::Auto,
        ("any", _) => ToolChoice::Required,
        ("none", _) => ToolChoice::None,
        ("tool", Some(name)) if !name.is_empty() => ToolChoice::Named(name),
        ("tool", _) => return Err(field_error("tool_choice", "type `tool` needs a `name`")),
        (other, _) => {
            return Err(field_error(
                "tool_choice",
                &format!("unknown type `{other}` (auto, any, tool or none)"),
            ))
        }
    };
    let parallel = match choice.disable_parallel_tool_use {
        Some(true) => Some(false),
        _ => None,
    };
    Ok((Some(tool_choice), parallel))
}

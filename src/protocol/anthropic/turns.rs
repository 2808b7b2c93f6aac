//! Canonical messages → Anthropic `messages` (protocols.md §5.4 steps 2–4, §7 "parallel tool
//! results", "empty content", "thinking replay"). Anthropic wants strictly alternating turns,
//! all tool results of one assistant turn in ONE user message before any text, no empty text,
//! `tool_use.input` always an object, and thinking replayed only when it carries a signature.

use serde_json::{json, Map, Value};

use super::image::anthropic_source;
use super::wire::{Block, Content, KnownBlock, ResultContent, WireMessage};
use crate::protocol::canonical::{InvalidRequest, Message, Part, Role};

/// Builds the alternating user/assistant turns.
pub fn encode_messages(messages: &[Message]) -> Result<Vec<WireMessage>, InvalidRequest> {
    let mut turns: Vec<(&'static str, Vec<KnownBlock>)> = Vec::new();
    for message in messages {
        let role = match message.role {
            Role::Assistant => "assistant",
            // Tool results travel in a user message; merging below puts consecutive results
            // and the user text that follows them into one turn.
            Role::User | Role::Tool => "user",
        };
        let mut blocks = Vec::new();
        for part in &message.parts {
            blocks.extend(encode_part(role, part)?);
        }
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    Ok(turns
        .into_iter()
        .map(|(role, mut blocks)| {
            // Stable sorts: results lead a user turn, thinking leads an assistant turn; the
            // order within each group is kept (thinking must be replayed in order).
            if role == "user" {
                blocks.sort_by_key(|b| !matches!(b, KnownBlock::ToolResult { .. }));
            } else {
                blocks.sort_by_key(|b| {
                    !matches!(
                        b,
                        KnownBlock::Thinking { .. } | KnownBlock::RedactedThinking { .. }
                    )
                });
            }
            WireMessage {
                role: role.to_string(),
                content: Content::Blocks(blocks.into_iter().map(Block::Known).collect()),
                extra: Map::new(),
            }
        })
        .collect())
}

/// One canonical part → at most one block. Parts a role cannot carry are dropped: reasoning
/// without a signature (Anthropic rejects unsigned thinking), empty text, calls or reasoning in
/// a user turn, results in an assistant turn.
fn encode_part(role: &str, part: &Part) -> Result<Option<KnownBlock>, InvalidRequest> {
    let assistant = role == "assistant";
    Ok(match part {
        Part::Text {
            text,
            cache_control,
        } => text_block(text, cache_control.clone()),
        Part::Image { source } => Some(KnownBlock::Image {
            source: anthropic_source(source)?,
            extra: Map::new(),
        }),
        Part::ToolCall {
            id,
            name,
            arguments,
        } if assistant => Some(KnownBlock::ToolUse {
            id: sanitize_id(id),
            name: name.clone(),
            input: input_from_arguments(arguments),
            extra: Map::new(),
        }),
        Part::ToolResult {
            call_id,
            content,
            is_error,
        } if !assistant => {
            let mut blocks = Vec::new();
            for part in content {
                if let Some(block) = encode_part("user", part)? {
                    if matches!(block, KnownBlock::Text { .. } | KnownBlock::Image { .. }) {
                        blocks.push(Block::Known(block));
                    }
                }
            }
            Some(KnownBlock::ToolResult {
                tool_use_id: sanitize_id(call_id),
                content: (!blocks.is_empty()).then_some(ResultContent::Blocks(blocks)),
                is_error: is_error.then_some(true),
                extra: Map::new(),
            })
        }
        Part::Reasoning {
            redacted: Some(data),
            ..
        } if assistant => Some(KnownBlock::RedactedThinking {
            data: data.clone(),
            extra: Map::new(),
        }),
        // Signed thinking goes back unchanged, even when its text is empty (display omitted).
        Part::Reasoning {
            text,
            signature: Some(signature),
            ..
        } if assistant => Some(KnownBlock::Thinking {
            thinking: text.clone(),
            signature: Some(signature.clone()),
            extra: Map::new(),
        }),
        _ => None,
    })
}

fn text_block(text: &str, cache_control: Option<Value>) -> Option<KnownBlock> {
    (!text.is_empty()).then(|| KnownBlock::Text {
        text: text.to_string(),
        cache_control,
        extra: Map::new(),
    })
}

/// Tool-call arguments → `tool_use.input`, which must be a JSON object: `""` → `{}`; text that
/// is not a JSON object is wrapped as `{"_raw": text}` so nothing the model wrote is lost.
pub fn input_from_arguments(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => json!({ "_raw": arguments }),
    }
}

/// Anthropic tool ids match `[A-Za-z0-9_-]+`; other characters become `_`. The same mapping is
/// applied to `tool_use.id` and `tool_result.tool_use_id`, so pairs still match.
pub fn sanitize_id(id: &str) -> String {
    if id.is_empty() {
        return "toolu_missing".to_string();
    }
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

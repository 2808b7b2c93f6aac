//! A token estimate for `/v1/messages/count_tokens` in front of a non-Anthropic upstream, which
//! has no such endpoint (protocols.md §2 "count_tokens"). It is an estimate and the gateway must
//! say so; it never feeds billing.
//!
//! The rule: everything the model reads — system text, message text, reasoning, tool-call names
//! and arguments, tool results, and each tool's name, description and JSON schema — counted with
//! the o200k_base tokenizer (`crate::tokenizer`), plus 4 tokens per message and per tool for the
//! framing around them, and a flat 1600 per image (about what Anthropic charges for a
//! 1.15-megapixel image, its recommended size).

use crate::protocol::canonical::{ChatRequest, Part};
use crate::tokenizer;

const OVERHEAD_PER_ITEM: u64 = 4;
const TOKENS_PER_IMAGE: u64 = 1600;

/// Estimated input tokens of a request.
pub fn estimate_input_tokens(req: &ChatRequest) -> u64 {
    let mut text = String::new();
    let mut fixed: u64 = 0;
    for block in &req.system {
        read(&mut text, &block.text);
    }
    for message in &req.messages {
        fixed += OVERHEAD_PER_ITEM;
        for part in &message.parts {
            fixed += part_text(part, &mut text);
        }
    }
    for tool in &req.tools {
        fixed += OVERHEAD_PER_ITEM;
        read(&mut text, &tool.name);
        read(&mut text, tool.description.as_deref().unwrap_or(""));
        if let Some(schema) = &tool.parameters {
            read(&mut text, &schema.to_string());
        }
    }
    tokenizer::count(&text) + fixed
}

fn read(text: &mut String, more: &str) {
    if !more.is_empty() {
        text.push_str(more);
        text.push('\n');
    }
}

/// Adds what the model reads of one part to `text`; returns its fixed tokens.
fn part_text(part: &Part, text: &mut String) -> u64 {
    match part {
        Part::Text { text: t, .. } | Part::Reasoning { text: t, .. } => {
            read(text, t);
            0
        }
        Part::Image { .. } => TOKENS_PER_IMAGE,
        Part::ToolCall {
            name, arguments, ..
        } => {
            read(text, name);
            read(text, arguments);
            0
        }
        Part::ToolResult { content, .. } => content.iter().map(|p| part_text(p, text)).sum(),
    }
}

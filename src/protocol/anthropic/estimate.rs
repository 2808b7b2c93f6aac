//! A token estimate for `/v1/messages/count_tokens` in front of a non-Anthropic upstream, which
//! has no such endpoint (protocols.md §2 "count_tokens"). It is an estimate and the gateway must
//! say so; it never feeds billing.
//!
//! The rule: one token per 4 characters (rounded up) of everything the model reads — system
//! text, message text, reasoning, tool-call names and arguments, tool results, and each tool's
//! name, description and JSON schema — plus 4 tokens per message and per tool for the framing
//! around them, and a flat 1600 per image (about what Anthropic charges for a 1.15-megapixel
//! image, its recommended size).

use crate::protocol::canonical::{ChatRequest, Part};

const CHARS_PER_TOKEN: u64 = 4;
const OVERHEAD_PER_ITEM: u64 = 4;
const TOKENS_PER_IMAGE: u64 = 1600;

/// Estimated input tokens of a request.
pub fn estimate_input_tokens(req: &ChatRequest) -> u64 {
    let mut chars: u64 = 0;
    let mut fixed: u64 = 0;
    for block in &req.system {
        chars += char_count(&block.text);
    }
    for message in &req.messages {
        fixed += OVERHEAD_PER_ITEM;
        for part in &message.parts {
            let (c, f) = part_size(part);
            chars += c;
            fixed += f;
        }
    }
    for tool in &req.tools {
        fixed += OVERHEAD_PER_ITEM;
        chars += char_count(&tool.name);
        chars += tool.description.as_deref().map_or(0, char_count);
        chars += tool
            .parameters
            .as_ref()
            .map_or(0, |schema| char_count(&schema.to_string()));
    }
    chars.div_ceil(CHARS_PER_TOKEN) + fixed
}

/// (characters, fixed tokens) of one part.
fn part_size(part: &Part) -> (u64, u64) {
    match part {
        Part::Text { text, .. } => (char_count(text), 0),
        Part::Image { .. } => (0, TOKENS_PER_IMAGE),
        Part::ToolCall {
            name, arguments, ..
        } => (char_count(name) + char_count(arguments), 0),
        Part::ToolResult { content, .. } => content.iter().fold((0, 0), |(c, f), part| {
            let (pc, pf) = part_size(part);
            (c + pc, f + pf)
        }),
        Part::Reasoning { text, .. } => (char_count(text), 0),
    }
}

fn char_count(text: &str) -> u64 {
    text.chars().count() as u64
}

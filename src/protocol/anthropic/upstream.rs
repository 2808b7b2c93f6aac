//! Canonical request → Anthropic upstream `/v1/messages` body (protocols.md §5.4, §5.1).
//!
//! Choices made here, since the canonical model carries more than Anthropic accepts:
//! - `max_tokens` is required: `max_output_tokens`, else [`DEFAULT_MAX_TOKENS`] (the gateway
//!   fills a per-model default before calling, so the fallback is a last resort).
//! - Reasoning uses the `enabled` + `budget_tokens` form every thinking model accepts. An effort
//!   without a budget maps through [`budget_for_effort`]: low 1024, medium 4096, high 16384,
//!   xhigh/max 32768 (unknown words count as medium); `none`/`minimal` turn thinking off. The
//!   budget is at least 1024 (Anthropic's minimum) and `max_tokens` is raised to budget +
//!   the requested limit when it would not exceed the budget, so the answer keeps its room.
//! - With thinking on, Anthropic rejects `temperature`, `top_k`, `top_p` below 0.95 and a forced
//!   `tool_choice`: those are dropped, and a forced choice becomes `auto`.
//! - `response_format` becomes a system instruction appended after the system prompt: it works
//!   on every Claude model, where `output_config.format` exists only on the newest ones.
//! - `seed` and the penalties have no Anthropic equivalent and are dropped; `n > 1` is a 400.

use serde_json::{Map, Value};

use super::turns::encode_messages;
use super::wire::{
    Block, Content, KnownBlock, MessagesRequest, Metadata, Thinking, WireTool, WireToolChoice,
};
use crate::protocol::canonical::{
    ChatRequest, InvalidRequest, ReasoningConfig, ResponseFormat, ToolChoice,
};

/// `max_tokens` when neither the client nor the gateway set one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Anthropic's smallest thinking budget.
pub const MIN_THINKING_BUDGET: u64 = 1024;

/// Builds the upstream body for `upstream_model`.
pub fn encode_request(req: &ChatRequest, upstream_model: &str) -> Result<Value, InvalidRequest> {
    if req.n.unwrap_or(1) > 1 {
        return Err(InvalidRequest::new(
            "Anthropic models return a single choice: `n` must be 1.",
            Some("n"),
        ));
    }
    let messages = encode_messages(&req.messages)?;
    if messages.is_empty() {
        return Err(InvalidRequest::new(
            "messages: at least one non-empty message is required",
            Some("messages"),
        ));
    }
    let mut max_tokens = req.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let budget = req.reasoning.as_ref().and_then(thinking_budget);
    let thinking = match (&req.reasoning, budget) {
        (_, Some(budget)) => {
            if max_tokens <= budget {
                max_tokens = budget.saturating_add(max_tokens);
            }
            Some(thinking("enabled", Some(budget)))
        }
        (Some(_), None) => Some(thinking("disabled", None)),
        (None, None) => None,
    };
    let thinking_on = budget.is_some();
    let mut wire = MessagesRequest {
        model: upstream_model.to_string(),
        max_tokens: Some(max_tokens),
        messages,
        system: system(req),
        stop_sequences: (!req.stop.is_empty()).then(|| req.stop.clone()),
        temperature: req
            .temperature
            .filter(|t| t.is_finite() && !thinking_on)
            .map(|t| t.clamp(0.0, 1.0)),
        top_p: req
            .top_p
            .filter(|p| p.is_finite() && (!thinking_on || *p >= 0.95)),
        top_k: req.top_k.filter(|_| !thinking_on),
        metadata: req.user.as_ref().map(|user| Metadata {
            user_id: Some(user.clone()),
            extra: Map::new(),
        }),
        thinking,
        stream: req.stream.then_some(true),
        ..MessagesRequest::default()
    };
    if !req.tools.is_empty() {
        wire.tools = Some(req.tools.iter().map(tool).collect());
        wire.tool_choice = tool_choice(req, thinking_on);
    }
    serde_json::to_value(wire).map_err(|e| {
        InvalidRequest::new(
            format!("The request cannot be encoded for Anthropic: {e}"),
            None,
        )
    })
}

/// The thinking budget, or `None` when thinking is off.
fn thinking_budget(reasoning: &ReasoningConfig) -> Option<u64> {
    if !reasoning.enabled {
        return None;
    }
    let budget = match (reasoning.budget_tokens, reasoning.effort.as_deref()) {
        (Some(budget), _) => budget,
        (None, Some(effort)) => budget_for_effort(effort)?,
        (None, None) => budget_for_effort("medium")?,
    };
    Some(budget.max(MIN_THINKING_BUDGET))
}

/// The budget table for an effort word; `None` for the words that mean "no thinking".
pub fn budget_for_effort(effort: &str) -> Option<u64> {
    match effort {
        "none" | "minimal" => None,
        "low" => Some(1024),
        "high" => Some(16_384),
        "xhigh" | "max" => Some(32_768),
        _ => Some(4096),
    }
}

fn thinking(kind: &str, budget_tokens: Option<u64>) -> Thinking {
    Thinking {
        kind: kind.to_string(),
        budget_tokens,
        extra: Map::new(),
    }
}

fn system(req: &ChatRequest) -> Option<Content> {
    let mut blocks: Vec<Block> = req
        .system
        .iter()
        .filter(|b| !b.text.is_empty())
        .map(|b| {
            Block::Known(KnownBlock::Text {
                text: b.text.clone(),
                cache_control: b.cache_control.clone(),
                extra: Map::new(),
            })
        })
        .collect();
    if let Some(instruction) = req.response_format.as_ref().and_then(format_instruction) {
        blocks.push(Block::Known(KnownBlock::Text {
            text: instruction,
            cache_control: None,
            extra: Map::new(),
        }));
    }
    (!blocks.is_empty()).then_some(Content::Blocks(blocks))
}

/// The system instruction standing in for `response_format`.
fn format_instruction(format: &ResponseFormat) -> Option<String> {
    match format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(
            "Respond with a single valid JSON object and nothing else: no prose, no code fences."
                .to_string(),
        ),
        ResponseFormat::JsonSchema { schema, .. } => Some(format!(
            "Respond with a single valid JSON value that conforms to this JSON Schema, and \
             nothing else (no prose, no code fences):\n{schema}"
        )),
    }
}

fn tool(tool: &crate::protocol::canonical::Tool) -> WireTool {
    WireTool {
        kind: None,
        name: tool.name.clone(),
        description: tool.description.clone(),
        // A tool without parameters takes no arguments; Anthropic still wants a schema.
        input_schema: Some(
            tool.parameters
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        ),
        strict: tool.strict,
        extra: Map::new(),
    }
}

fn tool_choice(req: &ChatRequest, thinking_on: bool) -> Option<WireToolChoice> {
    let no_parallel = req.parallel_tool_calls == Some(false);
    let (kind, name) = match &req.tool_choice {
        Some(ToolChoice::None) => ("none", None),
        // Thinking allows only auto or none.
        Some(ToolChoice::Required | ToolChoice::Named(_)) if thinking_on => ("auto", None),
        Some(ToolChoice::Required) => ("any", None),
        Some(ToolChoice::Named(name)) => ("tool", Some(name.clone())),
        Some(ToolChoice::Auto) => ("auto", None),
        None if no_parallel => ("auto", None),
        None => return None,
    };
    Some(WireToolChoice {
        kind: kind.to_string(),
        name,
        disable_parallel_tool_use: (no_parallel && kind != "none").then_some(true),
        extra: Map::new(),
    })
}

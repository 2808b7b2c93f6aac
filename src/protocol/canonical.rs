//! The canonical model every dialect decodes into and encodes from (protocols.md §5): one
//! request, one response and one stream-event vocabulary between OpenAI, Anthropic, DashScope
//! and MiniMax. Pure data: no I/O, no wire details.
//!
//! Rules the types encode:
//! - tool-call `arguments` stay a **string** end to end; only an Anthropic encoder parses them
//!   (`""` → `{}`), and only an Anthropic decoder serializes `input` back;
//! - reasoning keeps its signature (or redacted data) so it can be replayed unchanged, and is
//!   never turned into visible text;
//! - usage fields are `Option`: absent is not zero (see `modelrouter_domain::inference::Usage`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use modelrouter_domain::inference::Usage;

/// The dialect a request arrived in or an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Openai,
    Anthropic,
    Dashscope,
    Minimax,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Openai => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Dashscope => "dashscope",
            Dialect::Minimax => "minimax",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model name as the client sent it (the public name).
    pub model: String,
    /// System prompt blocks, in order (OpenAI system/developer messages, Anthropic `system`,
    /// DashScope's first system message).
    pub system: Vec<SystemBlock>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` forbids parallel tool calls.
    pub parallel_tool_calls: Option<bool>,
    /// Output limit (OpenAI `max_completion_tokens ?? max_tokens`, Anthropic `max_tokens`,
    /// DashScope `parameters.max_tokens`).
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    /// Always a list, even for one stop string.
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    /// Number of choices; `None` means 1.
    pub n: Option<u32>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    pub reasoning: Option<ReasoningConfig>,
    pub response_format: Option<ResponseFormat>,
    pub stream: bool,
    /// Whether the client asked to see usage in the stream (OpenAI `include_usage`; Anthropic
    /// and DashScope streams always carry usage).
    pub include_usage: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemBlock {
    pub text: String,
    /// Anthropic `cache_control`, kept for Anthropic upstreams.
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    /// Tool results. Anthropic carries them in a user message; OpenAI-style dialects as one
    /// `tool` message per result. A canonical `Tool` message holds only `ToolResult` parts.
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
    /// OpenAI/MiniMax `name` on a message, kept where the target dialect has it.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
        cache_control: Option<Value>,
    },
    Image {
        source: ImageSource,
    },
    /// A tool call made by the assistant. `arguments` is the JSON text exactly as produced,
    /// replayed byte for byte.
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    ToolResult {
        call_id: String,
        /// Text and image parts only.
        content: Vec<Part>,
        is_error: bool,
    },
    /// Model reasoning. `signature` (Anthropic) must round-trip unchanged; `redacted` holds an
    /// Anthropic `redacted_thinking` block's opaque data (then `text` is empty).
    Reasoning {
        text: String,
        signature: Option<String>,
        redacted: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    Url { url: String },
    Base64 { media_type: String, data: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments; `None` means "no arguments" (kept, never dropped).
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    None,
    /// OpenAI `required`, Anthropic `any`.
    Required,
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningConfig {
    /// `false` turns reasoning off explicitly.
    pub enabled: bool,
    /// `low` / `medium` / `high` / … as the client said it.
    pub effort: Option<String>,
    pub budget_tokens: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: Option<String>,
        schema: Value,
        strict: Option<bool>,
    },
}

/// Why generation stopped, in canonical terms (protocols.md §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end of turn.
    Stop,
    /// A stop sequence matched (the string, when known).
    StopSequence(Option<String>),
    /// The output limit (or context window) was reached.
    Length,
    ToolCalls,
    /// Refused or filtered.
    ContentFilter,
    /// Anthropic `pause_turn`.
    Pause,
}

/// One generated choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    /// Reasoning first, then text, then tool calls — the order every encoder emits.
    pub parts: Vec<Part>,
    pub finish: Option<FinishReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The upstream's response id (encoders derive their own id style from it).
    pub id: String,
    /// The model name to show the client (the gateway sets the public name).
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Option<Usage>,
    /// Unix seconds.
    pub created: i64,
}

/// Events of a streamed response, in the order an upstream produced them. Stream decoders turn
/// upstream frames into these; stream encoders turn these into client frames. Both are small
/// state machines: feed one input, get zero or more outputs, then `finish()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The response started (always first).
    Start {
        id: String,
        model: String,
    },
    ReasoningDelta {
        choice: u32,
        text: String,
    },
    /// Anthropic thinking signature (comes just before the reasoning block ends).
    ReasoningSignature {
        choice: u32,
        signature: String,
    },
    /// Anthropic `redacted_thinking` block, whole.
    RedactedReasoning {
        choice: u32,
        data: String,
    },
    TextDelta {
        choice: u32,
        text: String,
    },
    /// A new tool call. `index` counts tool calls only, from 0, per choice.
    ToolCallStart {
        choice: u32,
        index: u32,
        id: String,
        name: String,
    },
    /// A piece of a tool call's arguments (never empty).
    ToolCallDelta {
        choice: u32,
        index: u32,
        arguments: String,
    },
    /// The choice is finished (content for it may no longer arrive).
    Finish {
        choice: u32,
        reason: FinishReason,
    },
    /// Usage so far: the latest value of each field wins (never add them up).
    Usage(Usage),
    /// The upstream failed after the stream started.
    Error(StreamError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamError {
    /// The HTTP status the error would have had before the stream started.
    pub status: u16,
    pub message: String,
}

/// A request the gateway refuses before calling any upstream (400 unless `status` says
/// otherwise), with the offending field when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<String>,
    pub status: u16,
    /// The request is valid in its own protocol, only not expressible in the canonical model
    /// (Anthropic server tools or documents, DashScope token-id stop sequences): it may still be
    /// relayed to an upstream of the same protocol. Every other refusal is final.
    pub untranslatable: bool,
}

impl InvalidRequest {
    pub fn new(message: impl Into<String>, param: Option<&str>) -> Self {
        InvalidRequest {
            message: message.into(),
            param: param.map(str::to_string),
            status: 400,
            untranslatable: false,
        }
    }

    /// A request valid in its own protocol that cannot be translated (see `untranslatable`).
    pub fn untranslatable(message: impl Into<String>, param: Option<&str>) -> Self {
        InvalidRequest {
            untranslatable: true,
            ..InvalidRequest::new(message, param)
        }
    }
}

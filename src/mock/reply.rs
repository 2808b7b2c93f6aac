//! The deterministic content model every protocol shares: what the mock answers and how it
//! counts usage, whatever the wire format. Protocol files only read their request into the few
//! inputs of [`Answer::new`] and render the [`Answer`] in their own shapes.
//!
//! - The reply echoes the last user message text: `"Mock reply to: <text>"`, `[mock:...]`
//!   directives stripped; `[mock:words=N]` replaces it with `w1 … wN`. A token limit caps the
//!   words, and the answer then ends in `length` (`max_tokens` for Anthropic).
//! - `[mock:tool_call]` on a request with tools: a call to the first tool with the arguments
//!   `{"city":"Paris"}`, streamed as two fragments; it counts 3 output tokens.
//! - `[mock:thinking]`: the reasoning "Thinking about it." before the reply (3 more output
//!   tokens, reported as reasoning where the protocol has a field for it). The limit caps the
//!   reply words only.
//! - Input tokens: Σ over the messages, system prompt included, of (words of its text + 3).
//!   Words are whitespace-separated; a message's text is its string content or its text parts
//!   concatenated as they are.
//! - `[mock:cache_read=N]` marks N input tokens (at most all of them) as read from cache.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::faults::{Directives, FailCounts};

/// The id of the mock's only tool call, in OpenAI-style protocols.
pub(super) const TOOL_CALL_ID: &str = "call_mock_1";
/// The arguments of the mock's tool call, as streamed: two fragments.
pub(super) const TOOL_ARGUMENT_FRAGMENTS: [&str; 2] = ["{\"city\":", "\"Paris\"}"];
/// The reasoning `[mock:thinking]` adds.
pub(super) const THINKING_TEXT: &str = "Thinking about it.";
/// The completion tokens a tool call counts as: the name and two argument fragments.
const TOOL_CALL_TOKENS: u64 = 3;
/// Input tokens added per message on top of its words.
const TOKENS_PER_MESSAGE: u64 = 3;

/// What the mock answers.
#[derive(Debug)]
pub(super) enum Reply {
    /// Text, as the words to emit (already capped by the token limit).
    Text { words: Vec<String>, capped: bool },
    /// A call to the request's first tool.
    ToolCall { name: String },
}

/// Why the answer ended, before each protocol names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    Stop,
    Length,
    ToolCall,
}

impl Ending {
    /// The OpenAI-style `finish_reason` (OpenAI, DashScope, MiniMax).
    pub fn finish_reason(self) -> &'static str {
        match self {
            Ending::Stop => "stop",
            Ending::Length => "length",
            Ending::ToolCall => "tool_calls",
        }
    }
}

/// Token usage, in words. `input` includes the `cached` tokens; `output` includes `reasoning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Usage {
    pub input: u64,
    pub cached: u64,
    pub output: u64,
    pub reasoning: u64,
}

/// The protocol-neutral answer to one valid request.
#[derive(Debug)]
pub(super) struct Answer {
    pub directives: Directives,
    /// The raw text of the last user message: the key of the `fail_first` counter.
    pub fail_key: String,
    pub reply: Reply,
    pub usage: Usage,
}

impl Answer {
    /// Decides the answer from the input tokens, the last user text (directives included), the
    /// name of the request's first tool and the cap on reply words.
    pub fn new(
        input: u64,
        last_user_text: String,
        first_tool: Option<&str>,
        limit: Option<u64>,
    ) -> Self {
        let (directives, echoed) = Directives::parse(&last_user_text);
        let reply = match first_tool {
            Some(name) if directives.tool_call => Reply::ToolCall {
                name: name.to_owned(),
            },
            _ => text_reply(&directives, &echoed, limit),
        };
        let reasoning = if directives.thinking {
            word_count(THINKING_TEXT)
        } else {
            0
        };
        let reply_tokens = match &reply {
            Reply::Text { words, .. } => words.len() as u64,
            Reply::ToolCall { .. } => TOOL_CALL_TOKENS,
        };
        let usage = Usage {
            input,
            cached: directives.cache_read.unwrap_or(0).min(input),
            output: reply_tokens + reasoning,
            reasoning,
        };
        Self {
            directives,
            fail_key: last_user_text,
            reply,
            usage,
        }
    }

    /// Waits `[mock:delay_ms]`, then names the status of the scripted fault that answers
    /// instead (`fail_first` → 500, `status`), if any.
    pub async fn scripted_fault(&self, fail_counts: &FailCounts) -> Option<StatusCode> {
        if self.directives.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.directives.delay_ms)).await;
        }
        if let Some(n) = self.directives.fail_first {
            if fail_counts.should_fail(&self.fail_key, n) {
                return Some(StatusCode::INTERNAL_SERVER_ERROR);
            }
        }
        self.directives.status
    }

    pub fn ending(&self) -> Ending {
        match &self.reply {
            Reply::Text { capped: true, .. } => Ending::Length,
            Reply::Text { .. } => Ending::Stop,
            Reply::ToolCall { .. } => Ending::ToolCall,
        }
    }

    /// The reply text (empty for a tool call).
    pub fn text(&self) -> String {
        match &self.reply {
            Reply::Text { words, .. } => words.join(" "),
            Reply::ToolCall { .. } => String::new(),
        }
    }

    /// The reasoning, when `[mock:thinking]` asked for it.
    pub fn thinking(&self) -> Option<&'static str> {
        self.directives.thinking.then_some(THINKING_TEXT)
    }

    /// How many pieces the reply streams as: one per word, or the argument fragments.
    pub fn piece_count(&self) -> usize {
        match &self.reply {
            Reply::Text { words, .. } => words.len(),
            Reply::ToolCall { .. } => TOOL_ARGUMENT_FRAGMENTS.len(),
        }
    }

    /// Streamed piece `index` of a text reply: the word plus a space, except the last; empty for
    /// a tool call or past the end.
    pub fn word_piece(&self, index: usize) -> String {
        match &self.reply {
            Reply::Text { words, .. } => match words.get(index) {
                Some(word) if index + 1 < words.len() => format!("{word} "),
                Some(word) => word.clone(),
                None => String::new(),
            },
            Reply::ToolCall { .. } => String::new(),
        }
    }

    /// The first `count` words of a text reply, joined: what a cumulative stream has sent.
    pub fn text_prefix(&self, count: usize) -> String {
        match &self.reply {
            Reply::Text { words, .. } => words[..count.min(words.len())].join(" "),
            Reply::ToolCall { .. } => String::new(),
        }
    }
}

/// An OpenAI-shape tool call (also DashScope's and MiniMax's) with the given arguments.
pub(super) fn tool_call_json(name: &str, arguments: &str) -> Value {
    json!({
        "id": TOOL_CALL_ID,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    })
}

/// The text of a `content` field: a string, or the `text` of every part that has one,
/// concatenated (OpenAI parts, Anthropic text blocks, DashScope `{"text"}` items).
pub(super) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// The input tokens one message of this text counts for.
pub(super) fn message_tokens(text: &str) -> u64 {
    word_count(text) + TOKENS_PER_MESSAGE
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A tool's name (OpenAI-style tools nest it under `function`); `tool` when it has none.
pub(super) fn tool_name(tool: &Value) -> &str {
    tool.pointer("/function/name")
        .or_else(|| tool.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("tool")
}

/// The name of the first tool of a `tools` array, if there is one.
pub(super) fn first_tool(tools: Option<&Value>) -> Option<&str> {
    tools
        .and_then(Value::as_array)
        .and_then(|tools| tools.first())
        .map(tool_name)
}

fn text_reply(directives: &Directives, echoed: &str, limit: Option<u64>) -> Reply {
    let mut words: Vec<String> = match directives.words {
        Some(n) => (1..=n).map(|i| format!("w{i}")).collect(),
        None => format!("Mock reply to: {echoed}")
            .trim()
            .split(' ')
            .map(str::to_owned)
            .collect(),
    };
    let limit = limit.map_or(usize::MAX, |limit| {
        usize::try_from(limit).unwrap_or(usize::MAX)
    });
    let capped = words.len() > limit;
    words.truncate(limit);
    Reply::Text { words, capped }
}

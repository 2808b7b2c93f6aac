//! Scripted faults and behaviours for the mock upstream: the `[mock:...]` directives written
//! inside the last user message (so they pass through a gateway unchanged), the per-text
//! `fail_first` counters and the OpenAI error envelope.
//!
//! Directives (several may combine; unknown or malformed ones are stripped and ignored). Every
//! protocol renders them in its own shapes; the protocol files say how.
//! - `[mock:status=NNN]`: answer with that status (400..=599) and an error envelope.
//! - `[mock:fail_first=N]`: the first N requests with this exact message text get a 500.
//! - `[mock:delay_ms=N]`: wait N ms before sending the response headers.
//! - `[mock:chunk_delay_ms=N]`: wait N ms between stream frames.
//! - `[mock:cut_after=N]`: streaming only, break the body after N content chunks.
//! - `[mock:stream_error]`: streaming only, an in-band error right after the first content chunk.
//! - `[mock:one_piece]`: streaming only, the whole stream in one body chunk with `Content-Length`
//!   (as a buffering proxy or a short reply in one TCP segment delivers it).
//! - `[mock:random_cuts=SEED]`: streaming only, the stream's bytes cut at places drawn from SEED,
//!   regardless of event boundaries.
//! - `[mock:no_usage]`: never report usage.
//! - `[mock:words=N]`: the reply is exactly `w1 w2 … wN`.
//! - `[mock:tool_call]`: call the first tool of a request that has tools.
//! - `[mock:thinking]`: reason ("Thinking about it.") before answering.
//! - `[mock:cache_read=N]` (alias `[mock:cached=N]`): N input tokens were read from cache.
//! - `[mock:cumulative]`: DashScope, stream cumulative text even when incremental was asked.
//! - `[mock:forced_tool_stop]`: DashScope, a tool call ends with `stop`, not `tool_calls`.
//! - `[mock:base_resp=NNNN]`: MiniMax, HTTP 200 with that non-zero `base_resp.status_code`.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::lock;

/// The most words `[mock:words=N]` produces, so a typo cannot exhaust memory.
const MAX_WORDS: usize = 1_000_000;

/// The directives found in one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Directives {
    pub status: Option<StatusCode>,
    pub fail_first: Option<u32>,
    pub delay_ms: u64,
    pub chunk_delay_ms: u64,
    pub cut_after: Option<usize>,
    pub no_usage: bool,
    pub words: Option<usize>,
    pub tool_call: bool,
    pub stream_error: bool,
    pub one_piece: bool,
    pub random_cuts: Option<u64>,
    pub thinking: bool,
    pub cache_read: Option<u64>,
    pub cumulative: bool,
    pub forced_tool_stop: bool,
    pub base_resp: Option<u32>,
}

impl Directives {
    /// Reads every `[mock:...]` directive in `text`. Returns them with the text stripped of them,
    /// runs of spaces collapsed to one and the ends trimmed.
    pub fn parse(text: &str) -> (Self, String) {
        let mut directives = Self::default();
        let mut rest = text;
        let mut stripped = String::with_capacity(text.len());
        while let Some(start) = rest.find("[mock:") {
            let body_start = start + "[mock:".len();
            let Some(len) = rest[body_start..].find(']') else {
                break;
            };
            stripped.push_str(&rest[..start]);
            directives.apply(&rest[body_start..body_start + len]);
            rest = &rest[body_start + len + 1..];
        }
        stripped.push_str(rest);
        (directives, collapse_spaces(&stripped))
    }

    fn apply(&mut self, directive: &str) {
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (directive.trim(), None),
        };
        let number = value.and_then(|value| value.parse::<u64>().ok());
        match (name, number) {
            ("status", Some(code)) => {
                self.status = u16::try_from(code)
                    .ok()
                    .filter(|code| (400..=599).contains(code))
                    .and_then(|code| StatusCode::from_u16(code).ok());
            }
            ("fail_first", Some(n)) => self.fail_first = u32::try_from(n).ok(),
            ("delay_ms", Some(ms)) => self.delay_ms = ms,
            ("chunk_delay_ms", Some(ms)) => self.chunk_delay_ms = ms,
            ("cut_after", Some(n)) => self.cut_after = usize::try_from(n).ok(),
            ("words", Some(n)) => {
                self.words = usize::try_from(n).ok().map(|n| n.min(MAX_WORDS));
            }
            ("cache_read" | "cached", Some(n)) => self.cache_read = Some(n),
            ("random_cuts", Some(seed)) => self.random_cuts = Some(seed),
            ("base_resp", Some(code)) => {
                self.base_resp = u32::try_from(code).ok().filter(|code| *code != 0);
            }
            ("no_usage", None) => self.no_usage = true,
            ("tool_call", None) => self.tool_call = true,
            ("stream_error", None) => self.stream_error = true,
            ("one_piece", None) => self.one_piece = true,
            ("thinking", None) => self.thinking = true,
            ("cumulative", None) => self.cumulative = true,
            ("forced_tool_stop", None) => self.forced_tool_stop = true,
            _ => {}
        }
    }
}

/// Collapses runs of spaces (left behind by stripped directives) and trims the ends.
fn collapse_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        out.push(c);
    }
    out
}

/// How many requests carrying each `fail_first` message text were failed so far.
#[derive(Debug, Default)]
pub(super) struct FailCounts(Mutex<HashMap<String, u32>>);

/// Distinct texts remembered before the counters start over (bounds memory in long runs).
const FAIL_COUNTS_CAPACITY: usize = 10_000;

impl FailCounts {
    /// True when this request must fail: fewer than `n` requests with `text` failed before.
    pub fn should_fail(&self, text: &str, n: u32) -> bool {
        let mut counts = lock(&self.0);
        if let Some(seen) = counts.get_mut(text) {
            if *seen >= n {
                return false;
            }
            *seen += 1;
            return true;
        }
        if n == 0 {
            return false;
        }
        if counts.len() >= FAIL_COUNTS_CAPACITY {
            counts.clear();
        }
        counts.insert(text.to_owned(), 1);
        true
    }
}

/// An OpenAI error envelope: `{"error":{"message","type","param","code"}}`.
pub(super) fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
) -> Response {
    let body = json!({
        "error": { "message": message, "type": kind, "param": param, "code": code },
    });
    (status, Json(body)).into_response()
}

/// The response to a scripted fault (`status` or `fail_first`).
pub(super) fn fault_response(status: StatusCode) -> Response {
    let kind = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limit_exceeded"
    } else if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let message = format!("mock fault {}", status.as_u16());
    error_response(status, &message, kind, Some(kind), None)
}

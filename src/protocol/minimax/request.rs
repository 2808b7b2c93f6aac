//! The canonical request → a MiniMax `chatcompletion_v2` body (protocols.md §4): the OpenAI body
//! with MiniMax's ranges and reasoning fields.
//!
//! `reasoning_effort` is not sent: MiniMax documents no such control (its M2 models always
//! reason). `response_format`, penalties and `stop` go through as OpenAI would send them;
//! whether every MiniMax model honours them is unverified.

use serde_json::Value;

use crate::protocol::canonical::{ChatRequest, InvalidRequest};
use crate::protocol::openai::{build_request, ReasoningReplay};

/// The smallest temperature/top_p MiniMax takes (0 is rejected).
const MIN_SAMPLING: f64 = 0.01;

/// Encodes the canonical request for MiniMax's native endpoint.
pub fn encode_request(req: &ChatRequest, upstream_model: &str) -> Result<Value, InvalidRequest> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(InvalidRequest::new(
            "MiniMax generates one choice per request: 'n' must be 1.",
            Some("n"),
        ));
    }
    // Earlier reasoning goes back as `reasoning_details`, tool arguments byte for byte: MiniMax
    // wants the assistant turn back unchanged in multi-turn tool use (error 2013 otherwise).
    let mut body = build_request(req, upstream_model, ReasoningReplay::Details);
    body.n = None;
    body.temperature = body.temperature.map(clamp_unit);
    body.top_p = body.top_p.map(clamp_unit);
    body.reasoning_effort = None;
    // Without it M2 models put their reasoning inside the content as <think>…</think>.
    body.extra
        .insert("reasoning_split".into(), Value::Bool(true));
    serde_json::to_value(body)
        .map_err(|e| InvalidRequest::new(format!("The request cannot be encoded: {e}"), None))
}

/// Into (0, 1]: MiniMax rejects 0 and anything above 1.
fn clamp_unit(value: f64) -> f64 {
    value.clamp(MIN_SAMPLING, 1.0)
}

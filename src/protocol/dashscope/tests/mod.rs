//! Tests of the DashScope dialect: golden fixtures (`tests/fixtures/dashscope/`), the §7 edge
//! cases by name, streams split at every byte, and round-trip properties.

mod edge_cases;
mod edge_streams;
mod golden;
mod props;
mod requests;
mod stream_props;
mod streams;

use serde_json::{json, Value};

use super::{
    decode_request, DashScopeOptions, DashScopeStreamDecoder, DashScopeStreamEncoder, ResultFormat,
};
use crate::protocol::canonical::{ChatRequest, Message, Part, Role, StreamEvent};
use crate::protocol::sse::{SseEvent, SseParser};
use crate::protocol::{StreamDecoder, StreamEncoder};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dashscope/");

pub(super) fn fixture(name: &str) -> String {
    let path = format!("{FIXTURES}{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(super) fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Compares with a golden JSON file (as parsed JSON: key order does not matter). With
/// `UPDATE_GOLDEN=1` the file is rewritten instead, to be reviewed before committing.
pub(super) fn assert_golden(name: &str, actual: &Value) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(actual).expect("serializable") + "\n";
        std::fs::write(format!("{FIXTURES}{name}"), text).expect("writable");
        return;
    }
    let expected = json_fixture(name);
    assert_eq!(
        actual,
        &expected,
        "{name} differs; actual:\n{}",
        serde_json::to_string_pretty(actual).unwrap_or_default()
    );
}

/// SSE text → events, the way the gateway reads an upstream.
pub(super) fn parse_sse(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events: Vec<SseEvent> = chunks.iter().flat_map(|c| parser.feed(c)).collect();
    events.extend(parser.finish());
    events
}

/// Runs SSE bytes (in the given chunks) through the parser and a fresh decoder.
pub(super) fn decode_chunks(chunks: &[&[u8]]) -> (Vec<StreamEvent>, bool) {
    let mut decoder = DashScopeStreamDecoder::new();
    let mut events: Vec<StreamEvent> = parse_sse(chunks)
        .iter()
        .flat_map(|event| decoder.feed(event))
        .collect();
    events.extend(decoder.finish());
    (events, decoder.done())
}

/// All text deltas of choice 0, joined: what a user would read.
pub(super) fn visible_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            StreamEvent::TextDelta { choice: 0, text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// One SSE frame body for an upstream event (DashScope style, no space after colons).
pub(super) fn result_frame(id: u32, data: &Value) -> String {
    format!("id:{id}\nevent:result\n:HTTP_STATUS/200\ndata:{data}\n\n")
}

/// An upstream stream event body with one choice.
pub(super) fn event(
    content: &str,
    reason: &str,
    tools: Option<Value>,
    output_tokens: u64,
) -> Value {
    let mut message = json!({"content": content, "role": "assistant"});
    if let Some(tools) = tools {
        message["tool_calls"] = tools;
    }
    json!({
        "output": {"choices": [{"message": message, "index": 0, "finish_reason": reason}]},
        "usage": {"input_tokens": 100, "output_tokens": output_tokens, "total_tokens": 100 + output_tokens},
        "request_id": "rid-1",
    })
}

pub(super) fn transcript(events: &[Value]) -> String {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| result_frame(i as u32 + 1, e))
        .collect()
}

pub(super) fn request(body: Value) -> Result<(ChatRequest, DashScopeOptions), String> {
    decode_request(body.to_string().as_bytes(), false).map_err(|e| {
        assert_eq!(e.status, 400);
        format!("{} [{}]", e.message, e.param.unwrap_or_default())
    })
}

pub(super) fn text(text: &str) -> Part {
    Part::Text {
        text: text.into(),
        cache_control: None,
    }
}

pub(super) fn call(id: &str, arguments: &str) -> Part {
    Part::ToolCall {
        id: id.into(),
        name: "lookup".into(),
        arguments: arguments.into(),
    }
}

pub(super) fn message(role: Role, parts: Vec<Part>) -> Message {
    Message {
        role,
        parts,
        name: None,
    }
}

pub(super) fn encode_stream(events: &[StreamEvent], options: DashScopeOptions) -> Vec<Value> {
    let mut encoder = DashScopeStreamEncoder::new("gw-1".into(), options);
    let mut frames: Vec<String> = events.iter().flat_map(|e| encoder.feed(e)).collect();
    frames.extend(encoder.finish());
    parse_sse(&[frames.concat().as_bytes()])
        .iter()
        .map(|e| serde_json::from_str(&e.data).expect("json"))
        .collect()
}

pub(super) const MESSAGE_INCREMENTAL: DashScopeOptions = DashScopeOptions {
    result_format: ResultFormat::Message,
    incremental_output: true,
};

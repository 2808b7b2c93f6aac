//! Tests of the Anthropic dialect: golden fixtures (`tests/fixtures/anthropic/`), the §7 edge
//! cases by name, stream transcripts split at every byte, and round-trip properties.

mod content_rules;
mod edge_cases;
mod golden;
mod props;
mod request_rules;
mod strategies;
mod stream;
mod stream_rules;

use serde_json::Value;

use crate::protocol::canonical::StreamEvent;
use crate::protocol::sse::{SseEvent, SseParser};
use crate::protocol::{StreamDecoder, StreamEncoder};

use super::{AnthropicStreamDecoder, AnthropicStreamEncoder};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/anthropic/");

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}{name}"))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Compares with a golden JSON file (parsed, so key order does not matter). With
/// `UPDATE_GOLDEN=1` the file is rewritten instead; review the diff before committing.
pub fn assert_golden_json(name: &str, actual: &Value) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(actual).expect("serializable") + "\n";
        std::fs::write(format!("{FIXTURES}{name}"), text).expect("writable fixture");
        return;
    }
    assert_eq!(actual, &fixture_json(name), "golden {name}");
}

/// Compares SSE frame by frame with a golden `.sse` file (each frame's data parsed as JSON).
pub fn assert_golden_sse(name: &str, frames: &[String]) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(format!("{FIXTURES}{name}"), frames.concat()).expect("writable fixture");
        return;
    }
    let expected = parse_sse(fixture(name).as_bytes());
    let actual = parse_sse(frames.concat().as_bytes());
    assert_eq!(actual.len(), expected.len(), "frame count of {name}");
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a.event, e.event, "event name of frame {i} of {name}");
        let a_data: Value = serde_json::from_str(&a.data).expect("json data");
        let e_data: Value = serde_json::from_str(&e.data).expect("json data");
        assert_eq!(a_data, e_data, "data of frame {i} of {name}");
    }
}

pub fn parse_sse(bytes: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = parser.feed(bytes);
    events.extend(parser.finish());
    events
}

/// Runs a transcript through the decoder, fed in the given pieces.
pub fn decode_stream(pieces: &[&[u8]]) -> Vec<StreamEvent> {
    let mut parser = SseParser::new();
    let mut decoder = AnthropicStreamDecoder::new();
    let mut out = Vec::new();
    for piece in pieces {
        for event in parser.feed(piece) {
            out.extend(decoder.feed(&event));
        }
    }
    if let Some(event) = parser.finish() {
        out.extend(decoder.feed(&event));
    }
    out.extend(decoder.finish());
    out
}

/// Runs canonical events through a fresh encoder and closes it.
pub fn encode_stream(events: &[StreamEvent]) -> Vec<String> {
    let mut encoder = AnthropicStreamEncoder::new("msg_test".into(), "public-model".into());
    let mut frames: Vec<String> = events.iter().flat_map(|e| encoder.feed(e)).collect();
    frames.extend(encoder.finish());
    frames
}

/// The `(event name, data)` of each frame.
pub fn frames_json(frames: &[String]) -> Vec<(String, Value)> {
    parse_sse(frames.concat().as_bytes())
        .into_iter()
        .map(|e| {
            (
                e.event.unwrap_or_default(),
                serde_json::from_str(&e.data).expect("json data"),
            )
        })
        .collect()
}

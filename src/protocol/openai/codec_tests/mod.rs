//! Tests of the OpenAI canonical codec: golden fixtures (`tests/fixtures/openai/`), one test per
//! protocols.md §7 edge case, stream transcripts split at every byte, and round-trip properties.
//! The helpers are shared with the MiniMax tests.

mod edge_cases;
mod edge_cases_responses;
mod fixtures;
mod invalid;
mod properties;
mod stream_properties;
mod streams;

use serde::Serialize;
use serde_json::Value;

use crate::protocol::canonical::StreamEvent;
use crate::protocol::sse::{SseEvent, SseParser};
use crate::protocol::{StreamDecoder, StreamEncoder};

/// A fixture file's text (`dialect/name`).
pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub(crate) fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Compares `actual` with a golden JSON file (parsed, so key order does not matter). With
/// `BLESS=1` the file is (re)written instead, to be reviewed before committing.
pub(crate) fn assert_golden_json(name: &str, actual: &impl Serialize) {
    let actual = serde_json::to_value(actual).expect("serializable");
    if std::env::var_os("BLESS").is_some() {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = serde_json::to_string_pretty(&actual).expect("serializable");
        std::fs::write(&path, text + "\n").expect("golden written");
        return;
    }
    let expected = fixture_json(name);
    assert_eq!(
        actual,
        expected,
        "{name} differs; actual:\n{}",
        serde_json::to_string_pretty(&actual).unwrap_or_default()
    );
}

/// Compares SSE frames with a golden `.sse` file, frame by frame.
pub(crate) fn assert_golden_sse(name: &str, frames: &[String]) {
    if std::env::var_os("BLESS").is_some() {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(&path, frames.concat()).expect("golden written");
        return;
    }
    let expected = fixture(name);
    let expected: Vec<&str> = expected.split_inclusive("\n\n").collect();
    assert_eq!(frames.len(), expected.len(), "{name}: frame count");
    for (i, (actual, expected)) in frames.iter().zip(&expected).enumerate() {
        assert_eq!(actual, expected, "{name}: frame {i}");
    }
}

/// Feeds a transcript, cut into the given pieces, through the SSE parser and a decoder.
pub(crate) fn decode_pieces(decoder: &mut dyn StreamDecoder, pieces: &[&[u8]]) -> Vec<StreamEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for piece in pieces {
        for event in parser.feed(piece) {
            events.extend(decoder.feed(&event));
        }
    }
    if let Some(event) = parser.finish() {
        events.extend(decoder.feed(&event));
    }
    events.extend(decoder.finish());
    events
}

/// Decodes a transcript whole, then cut at every byte boundary (in two) and in single bytes, and
/// checks that every way gives the same events. Returns them.
pub(crate) fn decode_every_split<D: StreamDecoder>(
    new: impl Fn() -> D,
    text: &str,
) -> Vec<StreamEvent> {
    let bytes = text.as_bytes();
    let whole = decode_pieces(&mut new(), &[bytes]);
    for cut in 0..=bytes.len() {
        let split = decode_pieces(&mut new(), &[&bytes[..cut], &bytes[cut..]]);
        assert_eq!(split, whole, "cut at byte {cut}");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(decode_pieces(&mut new(), &singles), whole, "byte by byte");
    whole
}

/// Runs events through an encoder, `finish()` included.
pub(crate) fn encode_all(encoder: &mut dyn StreamEncoder, events: &[StreamEvent]) -> Vec<String> {
    let mut frames: Vec<String> = events.iter().flat_map(|e| encoder.feed(e)).collect();
    frames.extend(encoder.finish());
    frames
}

/// The `data` payloads of SSE frames, parsed (`[DONE]` as a string).
pub(crate) fn payloads(frames: &[String]) -> Vec<Value> {
    let mut parser = SseParser::new();
    frames
        .iter()
        .flat_map(|f| parser.feed(f.as_bytes()))
        .map(|event: SseEvent| {
            serde_json::from_str(&event.data).unwrap_or(Value::String(event.data))
        })
        .collect()
}

//! Golden fixtures: each input file in `tests/fixtures/anthropic/` through one codec, compared
//! with its `*.expected.*` file.

use serde_json::Value;

use super::*;
use crate::protocol::anthropic::{
    decode_request, decode_response, encode_request, encode_response,
};
use crate::protocol::canonical::{ChatRequest, ChatResponse, StreamEvent};

#[test]
fn client_request_decodes_to_canonical() {
    let req = decode_request(fixture("request_full.json").as_bytes()).expect("valid request");
    let canonical = serde_json::to_value(&req).expect("serializable");
    assert_golden_json("request_full.canonical.expected.json", &canonical);
}

#[test]
fn canonical_request_encodes_for_an_anthropic_upstream() {
    let req: ChatRequest =
        serde_json::from_value(fixture_json("upstream_request.canonical.json")).expect("canon");
    let body = encode_request(&req, "claude-sonnet-4-5").expect("encodable");
    assert_golden_json("upstream_request.expected.json", &body);
}

#[test]
fn client_request_round_trips_through_the_upstream_encoder() {
    let req = decode_request(fixture("request_full.json").as_bytes()).expect("valid request");
    let body = encode_request(&req, "claude-sonnet-4-5").expect("encodable");
    assert_golden_json("request_full.upstream.expected.json", &body);
}

#[test]
fn upstream_message_decodes_to_canonical() {
    let mut resp =
        decode_response(fixture("response_tool_use.json").as_bytes()).expect("decodable");
    assert!(
        resp.created > 1_700_000_000,
        "created is the time of decoding"
    );
    resp.created = 0;
    let canonical = serde_json::to_value(&resp).expect("serializable");
    assert_golden_json("response_tool_use.canonical.expected.json", &canonical);
}

#[test]
fn canonical_response_encodes_as_an_anthropic_message() {
    let resp: ChatResponse =
        serde_json::from_value(fixture_json("canonical_response.json")).expect("canon");
    let message = encode_response(&resp, &ChatRequest::default());
    assert_golden_json("canonical_response.expected.json", &message);
}

#[test]
fn upstream_stream_decodes_to_canonical_events() {
    let events = decode_stream(&[fixture("stream_tool_use.sse").as_bytes()]);
    let canonical = serde_json::to_value(&events).expect("serializable");
    assert_golden_json("stream_tool_use.expected.json", &canonical);
}

#[test]
fn canonical_events_encode_as_an_anthropic_stream() {
    let events: Vec<StreamEvent> =
        serde_json::from_value(fixture_json("stream_from_openai.events.json")).expect("events");
    let frames = encode_stream(&events);
    assert_golden_sse("stream_from_openai.expected.sse", &frames);
}

#[test]
fn anthropic_stream_survives_decode_then_encode() {
    // Anthropic upstream → canonical → Anthropic client: the same blocks come out.
    let events = decode_stream(&[fixture("stream_tool_use.sse").as_bytes()]);
    let frames = encode_stream(&events);
    let names: Vec<String> = frames_json(&frames).into_iter().map(|(n, _)| n).collect();
    let original: Vec<String> = parse_sse(fixture("stream_tool_use.sse").as_bytes())
        .into_iter()
        .filter_map(|e| e.event)
        .filter(|n| n != "ping")
        .collect();
    // The empty `input_json_delta` piece is not repeated; everything else lines up.
    let mut expected = original.clone();
    let empty_piece = 14;
    assert_eq!(expected.remove(empty_piece), "content_block_delta");
    assert_eq!(names, expected);
    let deltas: Vec<Value> = frames_json(&frames)
        .into_iter()
        .filter(|(n, _)| n == "message_delta")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(deltas[0]["delta"]["stop_reason"], "tool_use");
    assert_eq!(deltas[0]["usage"]["cache_read_input_tokens"], 1024);
    assert_eq!(deltas[0]["usage"]["input_tokens"], 310);
    assert_eq!(deltas[0]["usage"]["output_tokens"], 61);
}

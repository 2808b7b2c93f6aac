//! Golden fixtures: recorded-shape bodies and transcripts in, reviewed outputs compared.

use super::{
    assert_golden_json, assert_golden_sse, decode_every_split, encode_all, fixture, fixture_json,
};
use crate::protocol::canonical::{ChatRequest, ChatResponse, StreamEvent};
use crate::protocol::openai::{
    decode_request, decode_response, encode_request, encode_response, OpenAiStreamDecoder,
    OpenAiStreamEncoder,
};

#[test]
fn full_request_decodes_to_the_canonical_golden() {
    let request = decode_request(fixture("openai/request_full.json").as_bytes()).expect("valid");
    assert_golden_json("openai/request_full.canonical.json", &request);
}

#[test]
fn full_request_encodes_to_the_upstream_golden() {
    let canonical: ChatRequest =
        serde_json::from_value(fixture_json("openai/request_full.canonical.json"))
            .expect("canonical");
    let body = encode_request(&canonical, "gpt-4o-2024-08-06").expect("encodable");
    assert_golden_json("openai/request_full.upstream.expected.json", &body);
}

#[test]
fn tool_call_response_decodes_to_the_canonical_golden() {
    let response =
        decode_response(fixture("openai/response_tool_calls.json").as_bytes()).expect("valid");
    assert_golden_json("openai/response_tool_calls.canonical.json", &response);
}

#[test]
fn claude_response_encodes_to_the_openai_golden() {
    let response: ChatResponse =
        serde_json::from_value(fixture_json("openai/response_claude.canonical.json"))
            .expect("canonical");
    let body = encode_response(&response, &ChatRequest::default());
    assert_golden_json("openai/response_claude.expected.json", &body);
}

#[test]
fn tool_call_stream_decodes_to_the_golden_events() {
    let events = decode_every_split(
        OpenAiStreamDecoder::new,
        &fixture("openai/stream_tool_calls.sse"),
    );
    assert_golden_json("openai/stream_tool_calls.events.json", &events);
}

#[test]
fn reasoning_stream_with_a_late_error_decodes_to_the_golden_events() {
    let events = decode_every_split(
        OpenAiStreamDecoder::new,
        &fixture("openai/stream_reasoning_error.sse"),
    );
    assert_golden_json("openai/stream_reasoning_error.events.json", &events);
}

#[test]
fn claude_events_encode_to_the_golden_stream() {
    let events: Vec<StreamEvent> =
        serde_json::from_value(fixture_json("openai/stream_encode.events.json")).expect("events");
    let new = |include_usage| {
        OpenAiStreamEncoder::new(
            "chatcmpl-msg_02".into(),
            "acme-claude".into(),
            1732500002,
            include_usage,
        )
    };
    assert_golden_sse(
        "openai/stream_encode.expected.sse",
        &encode_all(&mut new(true), &events),
    );
    assert_golden_sse(
        "openai/stream_encode_no_usage.expected.sse",
        &encode_all(&mut new(false), &events),
    );
}

//! Golden fixtures: every input under `tests/fixtures/dashscope/` against its expected output.

use serde_json::{json, Value};

use super::{assert_golden, decode_chunks, fixture, json_fixture, parse_sse};
use crate::protocol::canonical::{ChatRequest, ChatResponse, StreamEvent};
use crate::protocol::dashscope::{
    decode_request, decode_response, encode_request, encode_response, DashScopeOptions,
    DashScopeStreamEncoder, ResultFormat,
};
use crate::protocol::StreamEncoder;

fn golden_request(name: &str, stream: bool) {
    let body = fixture(&format!("{name}.json"));
    let (request, options) = decode_request(body.as_bytes(), stream).expect("valid request");
    let format = match options.result_format {
        ResultFormat::Text => "text",
        ResultFormat::Message => "message",
    };
    let actual = json!({
        "request": request,
        "options": {"result_format": format, "incremental_output": options.incremental_output},
    });
    assert_golden(&format!("{name}.canonical.json"), &actual);
}

#[test]
fn client_request_with_tool_history_decodes_to_canonical() {
    golden_request("request_tools", true);
}

#[test]
fn client_request_with_a_prompt_decodes_to_one_user_message() {
    golden_request("request_prompt", false);
}

#[test]
fn client_multimodal_request_decodes_images_and_joined_system_text() {
    golden_request("request_multimodal", false);
}

fn golden_upstream(name: &str, upstream_model: &str) {
    let request: ChatRequest =
        serde_json::from_value(json_fixture(&format!("{name}.canonical.json"))).expect("canonical");
    let (body, endpoint) = encode_request(&request, upstream_model).expect("encodable");
    let actual = json!({"endpoint": endpoint.path(), "body": body});
    assert_golden(&format!("{name}.expected.json"), &actual);
}

#[test]
fn upstream_body_for_tools_reasoning_and_results() {
    golden_upstream("upstream_tools", "qwen-plus-latest");
}

#[test]
fn upstream_body_with_an_image_goes_multimodal_for_every_message() {
    golden_upstream("upstream_multimodal", "qwen-vl-max");
}

fn golden_response(name: &str) {
    let mut response =
        decode_response(fixture(&format!("{name}.json")).as_bytes()).expect("decodable response");
    assert!(response.created > 0, "the gateway stamps the time");
    response.created = 0;
    let actual = serde_json::to_value(&response).expect("serializable");
    assert_golden(&format!("{name}.canonical.json"), &actual);
}

#[test]
fn upstream_message_response_with_reasoning_tools_and_cache() {
    golden_response("response_message_tools");
}

#[test]
fn upstream_text_format_response() {
    golden_response("response_text");
}

#[test]
fn upstream_forced_tool_response() {
    golden_response("response_forced_tool");
}

#[test]
fn upstream_multimodal_response_joins_text_items() {
    golden_response("response_multimodal");
}

#[test]
fn client_response_in_message_and_text_format() {
    let response: ChatResponse =
        serde_json::from_value(json_fixture("encode_response.canonical.json")).expect("canonical");
    for (format, file) in [
        (
            ResultFormat::Message,
            "encode_response.message.expected.json",
        ),
        (ResultFormat::Text, "encode_response.text.expected.json"),
    ] {
        let options = DashScopeOptions {
            result_format: format,
            incremental_output: false,
        };
        let body = encode_response(&response, &ChatRequest::default(), &options, "req-gw-1");
        assert_golden(file, &body);
    }
}

fn golden_stream_decode(name: &str) -> Vec<StreamEvent> {
    let (events, done) = decode_chunks(&[fixture(&format!("{name}.sse")).as_bytes()]);
    assert!(done, "{name}: the stream ends at its final or error event");
    assert_golden(
        &format!("{name}.events.json"),
        &serde_json::to_value(&events).expect("serializable"),
    );
    events
}

#[test]
fn upstream_incremental_stream_with_parallel_tool_calls() {
    golden_stream_decode("stream_incremental_tools");
}

#[test]
fn upstream_cumulative_stream_with_cjk_reasoning_and_text() {
    golden_stream_decode("stream_cumulative_cjk");
}

#[test]
fn upstream_incremental_stream_with_reasoning() {
    golden_stream_decode("stream_reasoning");
}

#[test]
fn upstream_stream_error_after_content() {
    golden_stream_decode("stream_error");
}

/// Encodes canonical events and compares frame by frame with a golden transcript: the `id`,
/// `event` and `:HTTP_STATUS` lines exactly, the data as JSON.
fn golden_stream_encode(events: &str, options: DashScopeOptions, expected: &str) {
    let events: Vec<StreamEvent> =
        serde_json::from_value(json_fixture(events)).expect("canonical events");
    let mut encoder = DashScopeStreamEncoder::new("req-gw-2".into(), options);
    let mut frames: Vec<String> = events.iter().flat_map(|e| encoder.feed(e)).collect();
    frames.extend(encoder.finish());
    let text = frames.concat();
    assert!(
        !text.contains("data: ") && !text.contains("event: "),
        "DashScope writes no space after the colon"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let path = format!("{}{expected}", super::FIXTURES);
        std::fs::write(path, &text).expect("writable");
        return;
    }
    let actual = parse_sse(&[text.as_bytes()]);
    let wanted = parse_sse(&[fixture(expected).as_bytes()]);
    assert_eq!(
        actual.len(),
        wanted.len(),
        "{expected}: frame count\n{text}"
    );
    for (i, (a, w)) in actual.iter().zip(&wanted).enumerate() {
        assert_eq!(
            (&a.id, &a.event, a.status),
            (&w.id, &w.event, w.status),
            "{expected}: frame {i}"
        );
        let a: Value = serde_json::from_str(&a.data).expect("json data");
        let w: Value = serde_json::from_str(&w.data).expect("json data");
        assert_eq!(a, w, "{expected}: frame {i} data");
    }
}

#[test]
fn client_stream_incremental_message_format_with_tools() {
    let options = DashScopeOptions {
        result_format: ResultFormat::Message,
        incremental_output: true,
    };
    golden_stream_encode(
        "stream_incremental_tools.events.json",
        options,
        "client_stream_tools.incremental.expected.sse",
    );
}

#[test]
fn client_stream_cumulative_message_format_with_tools() {
    let options = DashScopeOptions {
        result_format: ResultFormat::Message,
        incremental_output: false,
    };
    golden_stream_encode(
        "stream_incremental_tools.events.json",
        options,
        "client_stream_tools.cumulative.expected.sse",
    );
}

#[test]
fn client_stream_cumulative_text_format_hides_reasoning() {
    let options = DashScopeOptions::default();
    golden_stream_encode(
        "stream_cumulative_cjk.events.json",
        options,
        "client_stream_cjk.text.expected.sse",
    );
}

#[test]
fn client_stream_error_after_content() {
    let options = DashScopeOptions {
        result_format: ResultFormat::Message,
        incremental_output: true,
    };
    golden_stream_encode(
        "stream_error.events.json",
        options,
        "client_stream_error.expected.sse",
    );
}

//! MiniMax request encoding: ranges, `n`, reasoning replay, byte-for-byte arguments.

use serde_json::{json, Value};

use crate::protocol::canonical::{ChatRequest, Message, Part, Role};
use crate::protocol::minimax::{encode_request, CHAT_PATH};
use crate::protocol::openai::codec_tests::{assert_golden_json, fixture_json};

fn canonical() -> ChatRequest {
    serde_json::from_value(fixture_json("minimax/request.canonical.json")).expect("canonical")
}

fn user(text: &str) -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages: vec![Message {
            role: Role::User,
            parts: vec![Part::Text {
                text: text.into(),
                cache_control: None,
            }],
            name: None,
        }],
        ..ChatRequest::default()
    }
}

#[test]
fn request_encodes_to_the_minimax_golden() {
    let body = encode_request(&canonical(), "MiniMax-M2").expect("encodable");
    assert_golden_json("minimax/request.expected.json", &body);
    assert_eq!(CHAT_PATH, "/text/chatcompletion_v2");
}

#[test]
fn replayed_arguments_and_reasoning_go_back_unchanged() {
    let body = encode_request(&canonical(), "MiniMax-M2").expect("encodable");
    let assistant = &body["messages"][2];
    assert_eq!(assistant["role"], "assistant");
    // Byte for byte: MiniMax answers 2013 "invalid function arguments json string" otherwise.
    assert_eq!(
        assistant["tool_calls"][1]["function"]["arguments"],
        "{\"city\":\"Rome\" , \"unit\":\"C\"}"
    );
    // Reasoning as reasoning_details, never as visible text nor as reasoning_content.
    assert_eq!(
        assistant["reasoning_details"],
        json!([{"text": "Two cities: two calls."}])
    );
    assert!(assistant.get("reasoning_content").is_none());
    assert_eq!(assistant["content"], "Checking both.");
}

#[test]
fn sampling_is_clamped_into_minimax_ranges() {
    let mut request = user("hi");
    for (temperature, top_p, sent_temperature, sent_top_p) in [
        (0.0, 0.0, 0.01, 0.01),
        (1.7, 1.5, 1.0, 1.0),
        (0.3, 0.95, 0.3, 0.95),
    ] {
        request.temperature = Some(temperature);
        request.top_p = Some(top_p);
        let body = encode_request(&request, "MiniMax-M2").expect("encodable");
        assert_eq!(
            body["temperature"],
            json!(sent_temperature),
            "{temperature}"
        );
        assert_eq!(body["top_p"], json!(sent_top_p), "{top_p}");
    }
    request.temperature = None;
    request.top_p = None;
    let body = encode_request(&request, "MiniMax-M2").expect("encodable");
    assert!(body.get("temperature").is_none() && body.get("top_p").is_none());
}

#[test]
fn more_than_one_choice_is_refused_naming_n() {
    let mut request = user("hi");
    request.n = Some(2);
    let error = encode_request(&request, "MiniMax-M2").expect_err("n > 1");
    assert_eq!((error.status, error.param.as_deref()), (400, Some("n")));
    request.n = Some(1);
    let body = encode_request(&request, "MiniMax-M2").expect("n = 1 is fine");
    assert!(body.get("n").is_none());
}

#[test]
fn reasoning_is_always_split_and_effort_is_not_sent() {
    let body = encode_request(&canonical(), "MiniMax-M2").expect("encodable");
    assert_eq!(body["reasoning_split"], Value::Bool(true));
    assert!(body.get("reasoning_effort").is_none());
    assert_eq!(body["max_completion_tokens"], 2048);
    assert!(body.get("top_k").is_none());
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

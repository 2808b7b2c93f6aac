//! Refused requests name the offending field, and no input makes a decoder panic.

use proptest::prelude::*;
use serde_json::json;

use crate::protocol::openai::{decode_request, decode_response, OpenAiStreamDecoder};
use crate::protocol::sse::SseEvent;
use crate::protocol::StreamDecoder;

fn refused(body: serde_json::Value) -> (String, Option<String>) {
    let error = decode_request(body.to_string().as_bytes()).expect_err("refused");
    assert_eq!(error.status, 400);
    (error.message, error.param)
}

fn with_messages(messages: serde_json::Value) -> serde_json::Value {
    json!({"model": "m", "messages": messages})
}

#[test]
fn the_passthrough_checks_still_apply() {
    let (_, param) = refused(json!({"messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(param.as_deref(), Some("model"));
    let (_, param) = refused(json!({"model": "m", "messages": []}));
    assert_eq!(param.as_deref(), Some("messages"));
    let (_, param) = refused(
        json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(param.as_deref(), Some("max_tokens"));
    let error = decode_request(b"{oops").expect_err("refused");
    assert!(
        error.message.contains("not valid JSON"),
        "{}",
        error.message
    );
}

#[test]
fn unsupported_parts_name_the_message_and_part() {
    let (message, param) = refused(with_messages(json!([{"role": "user", "content": [
        {"type": "text", "text": "listen"},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}])));
    assert_eq!(param.as_deref(), Some("messages[0].content[1]"));
    assert!(message.contains("input_audio"), "{message}");
    let (message, _) = refused(with_messages(json!([{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-1"}}]}])));
    assert!(message.contains("'file'"), "{message}");
}

#[test]
fn malformed_fields_are_named() {
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            json!({"model": "m", "messages": user, "temperature": "hot"}),
            "temperature",
        ),
        (json!({"model": "m", "messages": user, "stop": 5}), "stop"),
        (
            json!({"model": "m", "messages": user, "tools": [{"type": "web_search"}]}),
            "tools[0]",
        ),
        (
            json!({"model": "m", "messages": user, "tools": [{"type": "function"}]}),
            "tools[0]",
        ),
        (
            json!({"model": "m", "messages": user, "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "messages": user, "reasoning_effort": 3}),
            "reasoning_effort",
        ),
        (
            json!({"model": "m", "messages": user, "response_format": {"type": "yaml"}}),
            "response_format",
        ),
        (
            with_messages(json!([{"role": "tool", "content": "x"}])),
            "messages[0]",
        ),
        (
            with_messages(json!([{"role": "function", "name": "f", "content": "x"}])),
            "messages[0]",
        ),
        (
            with_messages(
                json!([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]),
            ),
            "messages[0].tool_calls[0]",
        ),
        (
            with_messages(
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]),
            ),
            "messages[0].content[0]",
        ),
        (
            with_messages(
                json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]),
            ),
            "messages[0]",
        ),
    ];
    for (body, expected) in cases {
        let (message, param) = refused(body.clone());
        assert_eq!(param.as_deref(), Some(expected), "{body} → {message}");
        assert!(
            message.contains(expected.split('[').next().unwrap_or(expected)),
            "{message}"
        );
    }
}

#[test]
fn allowed_tools_choice_is_auto() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}});
    let request = decode_request(body.to_string().as_bytes()).expect("valid");
    assert_eq!(
        request.tool_choice,
        Some(crate::protocol::canonical::ToolChoice::Auto)
    );
}

/// JSON values shaped somewhat like chat bodies and chunks, to reach past the first check.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "(user|assistant|tool|system|text|image_url|data:image/png;base64,|function|stop|\\PC{0,6})".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                "(model|messages|role|content|tool_calls|index|delta|choices|usage|error|finish_reason|function|arguments|id|type|text|image_url|url|thinking_blocks|base_resp|status_code)",
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn decoders_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(&bytes);
        let _ = decode_response(&bytes);
        let mut decoder = OpenAiStreamDecoder::new();
        let _ = decoder.feed(&SseEvent { data: String::from_utf8_lossy(&bytes).into_owned(), ..SseEvent::default() });
        let _ = decoder.finish();
    }

    #[test]
    fn decoders_never_panic_on_json(value in json_value(), model in json_value()) {
        let mut body = json!({"model": "m", "messages": [value.clone()]});
        body["tools"] = model;
        let _ = decode_request(body.to_string().as_bytes());
        let _ = decode_request(value.to_string().as_bytes());
        let _ = decode_response(value.to_string().as_bytes());
        let mut decoder = OpenAiStreamDecoder::new();
        let _ = decoder.feed(&SseEvent { data: value.to_string(), ..SseEvent::default() });
        let chunk = json!({"choices": [{"index": 0, "delta": value}]});
        let _ = decoder.feed(&SseEvent { data: chunk.to_string(), ..SseEvent::default() });
    }
}

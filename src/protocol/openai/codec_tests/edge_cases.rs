//! One test per protocols.md §7 edge case that touches the OpenAI dialect, named after it:
//! request cases here, non-streamed response cases in `edge_cases_responses.rs`, stream cases
//! in `streams.rs`.

use serde_json::{json, Value};

use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, ImageSource, Message, Part, Role,
};
use crate::protocol::openai::{decode_request, encode_request};

pub(super) fn text(t: &str) -> Part {
    Part::Text {
        text: t.into(),
        cache_control: None,
    }
}

pub(super) fn call(id: &str, arguments: &str) -> Part {
    Part::ToolCall {
        id: id.into(),
        name: "get_weather".into(),
        arguments: arguments.into(),
    }
}

pub(super) fn request(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages,
        ..ChatRequest::default()
    }
}

pub(super) fn message(role: Role, parts: Vec<Part>) -> Message {
    Message {
        role,
        parts,
        name: None,
    }
}

pub(super) fn response(parts: Vec<Part>, finish: Option<FinishReason>) -> ChatResponse {
    ChatResponse {
        id: "chatcmpl-1".into(),
        model: "acme".into(),
        choices: vec![Choice {
            index: 0,
            parts,
            finish,
        }],
        usage: None,
        created: 1,
    }
}

pub(super) fn decode(body: Value) -> ChatRequest {
    decode_request(body.to_string().as_bytes()).expect("valid request")
}

#[test]
fn parallel_tool_results_one_tool_message_each_in_order_before_the_user_text() {
    let png = ImageSource::Base64 {
        media_type: "image/png".into(),
        data: "iVBORw0KGgo=".into(),
    };
    // As an Anthropic client sends it: every result, then text, in one user turn.
    let turn = message(
        Role::Tool,
        vec![
            Part::ToolResult {
                call_id: "call_b".into(),
                content: vec![
                    text("18°C"),
                    Part::Image {
                        source: png.clone(),
                    },
                ],
                is_error: false,
            },
            Part::ToolResult {
                call_id: "call_a".into(),
                content: vec![text("city unknown")],
                is_error: true,
            },
            text("Now summarize."),
        ],
    );
    let body = encode_request(&request(vec![turn]), "u").expect("ok");
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(
        messages[0],
        json!({"role": "tool", "tool_call_id": "call_b", "content": "18°C"})
    );
    assert_eq!(
        messages[1],
        json!({"role": "tool", "tool_call_id": "call_a", "content": "Error: city unknown"})
    );
    // Tool messages carry text only: the image follows in a user message, before the text.
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(
        messages[2]["content"][0]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    assert_eq!(
        messages[2]["content"][1],
        json!({"type": "text", "text": "Now summarize."})
    );

    // And back: consecutive tool messages are one canonical Tool turn, in order.
    let decoded = decode(json!({"model": "m", "messages": body["messages"]}));
    assert_eq!(decoded.messages[0].role, Role::Tool);
    let ids: Vec<&str> = decoded.messages[0]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["call_b", "call_a"]);
}

#[test]
fn replayed_arguments_go_back_byte_for_byte() {
    // Odd spacing, key order, unicode escapes and even invalid JSON must not be "fixed".
    let raw = r#"{ "city":"Par\u00eds" ,"days": 3.0 ,}"#;
    let client = json!({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": raw}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]});
    let upstream = encode_request(&decode(client), "u").expect("ok");
    assert_eq!(
        upstream["messages"][1]["tool_calls"][0]["function"]["arguments"],
        raw
    );
}

#[test]
fn stream_usage_is_always_requested_upstream() {
    let client = decode(json!({"model": "m", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]}));
    assert!(!client.include_usage, "the client did not ask");
    let upstream = encode_request(&client, "u").expect("ok");
    assert_eq!(upstream["stream_options"], json!({"include_usage": true}));
    let not_streaming = encode_request(&request(vec![message(Role::User, vec![text("hi")])]), "u");
    let not_streaming = not_streaming.expect("ok");
    assert!(not_streaming.get("stream_options").is_none() && not_streaming.get("stream").is_none());
}

#[test]
fn empty_content_blocks_and_messages_are_dropped() {
    let decoded = decode(json!({"model": "m", "messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": null, "reasoning_content": ""},
        {"role": "user", "content": ""}]}));
    assert!(decoded.system.is_empty());
    assert_eq!(
        decoded.messages,
        vec![message(Role::User, vec![text("hi")])]
    );

    let canonical = request(vec![
        message(Role::User, vec![text("")]),
        message(Role::Assistant, vec![text("")]),
        message(Role::User, vec![text("hi")]),
    ]);
    let body = encode_request(&canonical, "u").expect("ok");
    assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[test]
fn stop_shape_one_stop_string_stays_an_array() {
    let decoded = decode(json!({"model": "m", "stop": "END",
        "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(decoded.stop, vec!["END".to_string()]);
    let body = encode_request(&decoded, "u").expect("ok");
    assert_eq!(body["stop"], json!(["END"]));
    // No stop at all: absent, never `null` or `[]`.
    let body =
        encode_request(&request(vec![message(Role::User, vec![text("hi")])]), "u").expect("ok");
    assert!(
        body.get("stop").is_none() && body.get("tools").is_none(),
        "{body}"
    );
}

#[test]
fn tools_without_schema_are_kept() {
    let decoded = decode(
        json!({"model": "m", "messages": [{"role": "user", "content": "time?"}],
        "tools": [{"type": "function", "function": {"name": "now"}},
                  {"type": "function", "function": {"name": "get_weather",
                      "parameters": {"type": "object", "properties": {}}}}]}),
    );
    assert_eq!(decoded.tools.len(), 2);
    assert_eq!(decoded.tools[0].parameters, None);
    let body = encode_request(&decoded, "u").expect("ok");
    assert_eq!(
        body["tools"][0],
        json!({"type": "function", "function": {"name": "now"}})
    );
    assert_eq!(
        body["tools"][1]["function"]["parameters"],
        json!({"type": "object", "properties": {}})
    );
}

#[test]
fn image_url_vs_base64_each_kept_in_its_form() {
    let decoded = decode(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]}]}),
    );
    assert_eq!(
        decoded.messages[0].parts,
        vec![
            Part::Image {
                source: ImageSource::Base64 {
                    media_type: "image/webp".into(),
                    data: "UklGRg==".into()
                }
            },
            Part::Image {
                source: ImageSource::Url {
                    url: "https://example.com/cat.jpg".into()
                }
            },
        ]
    );
    let body = encode_request(&decoded, "u").expect("ok");
    assert_eq!(
        body["messages"][0]["content"][0]["image_url"]["url"],
        "data:image/webp;base64,UklGRg=="
    );
    assert_eq!(
        body["messages"][0]["content"][1]["image_url"]["url"],
        "https://example.com/cat.jpg"
    );
}

//! One test per protocols.md §7 edge case that touches the OpenAI dialect, named after it, on
//! the request and non-streamed response side (stream cases are in `streams.rs`).

use serde_json::{json, Value};

use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, ImageSource, Message, Part, Role, Usage,
};
use crate::protocol::openai::{decode_request, decode_response, encode_request, encode_response};

fn text(t: &str) -> Part {
    Part::Text {
        text: t.into(),
        cache_control: None,
    }
}

fn call(id: &str, arguments: &str) -> Part {
    Part::ToolCall {
        id: id.into(),
        name: "get_weather".into(),
        arguments: arguments.into(),
    }
}

fn request(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages,
        ..ChatRequest::default()
    }
}

fn message(role: Role, parts: Vec<Part>) -> Message {
    Message {
        role,
        parts,
        name: None,
    }
}

fn response(parts: Vec<Part>, finish: Option<FinishReason>) -> ChatResponse {
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

fn decode(body: Value) -> ChatRequest {
    decode_request(body.to_string().as_bytes()).expect("valid request")
}

#[test]
fn dropped_tool_calls_every_call_survives_both_ways() {
    let calls = vec![
        call("call_a", "{}"),
        call("call_b", "{\"x\":1}"),
        call("call_c", ""),
    ];
    let body = encode_response(
        &response(calls.clone(), Some(FinishReason::ToolCalls)),
        &ChatRequest::default(),
    );
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let back = decode_response(body.to_string().as_bytes()).expect("valid");
    assert_eq!(back.choices[0].parts, calls);

    let upstream =
        encode_request(&request(vec![message(Role::Assistant, calls.clone())]), "u").expect("ok");
    assert_eq!(
        upstream["messages"][0]["tool_calls"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(
        decode(json!({"model": "m", "messages": upstream["messages"]})).messages[0].parts,
        calls
    );
}

#[test]
fn empty_arguments_stay_an_empty_string() {
    let body = json!({"id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": ""}},
            {"id": "call_2", "type": "function", "function": {"name": "now"}}]}}]});
    let decoded = decode_response(body.to_string().as_bytes()).expect("valid");
    for part in &decoded.choices[0].parts {
        assert!(
            matches!(part, Part::ToolCall { arguments, .. } if arguments.is_empty()),
            "{part:?}"
        );
    }
    let out = encode_response(&decoded, &ChatRequest::default());
    assert_eq!(
        out["choices"][0]["message"]["tool_calls"][1]["function"]["arguments"],
        ""
    );
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
fn thinking_replay_keeps_signed_blocks_even_empty_ones() {
    let blocks = json!([
        {"type": "thinking", "thinking": "", "signature": "sig-omitted-display"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "thinking", "thinking": "Step two.", "signature": "sig-2"}]);
    let request = decode(json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello", "thinking_blocks": blocks}]}));
    let parts = &request.messages[1].parts;
    assert_eq!(
        parts.len(),
        4,
        "three reasoning blocks and the text: {parts:?}"
    );
    assert_eq!(
        parts[0],
        Part::Reasoning {
            text: String::new(),
            signature: Some("sig-omitted-display".into()),
            redacted: None
        }
    );
    // Returned to the client unchanged, in order, in the extension field.
    let body = encode_response(&response(parts.clone(), Some(FinishReason::Stop)), &request);
    assert_eq!(body["choices"][0]["message"]["thinking_blocks"], blocks);
    assert_eq!(body["choices"][0]["message"]["content"], "Hello");
}

#[test]
fn reasoning_toward_openai_no_reasoning_text_is_invented() {
    let body = json!({"id": "chatcmpl-2", "object": "chat.completion", "created": 5, "model": "o3",
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "42", "refusal": null}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 300,
            "completion_tokens_details": {"reasoning_tokens": 290}}});
    let decoded = decode_response(body.to_string().as_bytes()).expect("valid");
    assert_eq!(decoded.choices[0].parts, vec![text("42")]);
    assert_eq!(decoded.usage.and_then(|u| u.reasoning), Some(290));
    let out = encode_response(&decoded, &ChatRequest::default());
    let message = &out["choices"][0]["message"];
    assert!(message.get("reasoning_content").is_none(), "{message}");
    assert!(message.get("thinking_blocks").is_none(), "{message}");
    assert_eq!(
        out["usage"]["completion_tokens_details"]["reasoning_tokens"],
        290
    );
}

#[test]
fn reasoning_content_and_thinking_map_both_ways() {
    // reasoning_content (DeepSeek style) → reasoning without a signature, never visible text.
    let body = json!({"id": "r", "choices": [{"index": 0, "finish_reason": "stop", "message":
        {"role": "assistant", "content": "Yes.", "reasoning_content": "Check it."}}]});
    let decoded = decode_response(body.to_string().as_bytes()).expect("valid");
    assert_eq!(
        decoded.choices[0].parts,
        vec![
            Part::Reasoning {
                text: "Check it.".into(),
                signature: None,
                redacted: None
            },
            text("Yes.")
        ]
    );
    let out = encode_response(&decoded, &ChatRequest::default());
    assert_eq!(out["choices"][0]["message"]["content"], "Yes.");
    assert_eq!(
        out["choices"][0]["message"]["reasoning_content"],
        "Check it."
    );
    assert!(
        out["choices"][0]["message"]
            .get("thinking_blocks")
            .is_none(),
        "unsigned: no extension"
    );

    // Signed Claude thinking toward a reasoning_content upstream: text back, signature dropped.
    let turn = message(
        Role::Assistant,
        vec![
            Part::Reasoning {
                text: "Need weather.".into(),
                signature: Some("EqQB".into()),
                redacted: None,
            },
            call("toolu_1", "{\"city\":\"Paris\"}"),
        ],
    );
    let upstream = encode_request(&request(vec![turn]), "deepseek-reasoner").expect("ok");
    let assistant = &upstream["messages"][0];
    assert_eq!(assistant["reasoning_content"], "Need weather.");
    assert_eq!(assistant["content"], Value::Null);
    assert!(
        !assistant.to_string().contains("EqQB"),
        "no signature upstream: {assistant}"
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
fn cache_accounting_prompt_tokens_include_cached_tokens() {
    let mut resp = response(vec![text("ok")], Some(FinishReason::Stop));
    // Canonical input_total already includes the cache, as OpenAI's prompt_tokens does.
    resp.usage = Some(Usage {
        input_total: Some(2060),
        cache_read: Some(2048),
        output_total: Some(95),
        ..Usage::default()
    });
    let out = encode_response(&resp, &ChatRequest::default());
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 2060, "completion_tokens": 95, "total_tokens": 2155,
            "prompt_tokens_details": {"cached_tokens": 2048}})
    );
    let back = decode_response(out.to_string().as_bytes()).expect("valid");
    assert_eq!(back.usage, resp.usage);
    // Unknown usage: the three totals are still there, as zeros; no invented details.
    resp.usage = None;
    let out = encode_response(&resp, &ChatRequest::default());
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    );
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

#[test]
fn reason_passthrough_every_reason_maps_into_openais_set() {
    let cases = [
        (FinishReason::Stop, "stop"),
        (FinishReason::StopSequence(Some("END".into())), "stop"),
        (FinishReason::Pause, "stop"),
        (FinishReason::Length, "length"),
        (FinishReason::ToolCalls, "tool_calls"),
        (FinishReason::ContentFilter, "content_filter"),
    ];
    for (reason, expected) in cases {
        let out = encode_response(
            &response(vec![text("x")], Some(reason.clone())),
            &ChatRequest::default(),
        );
        assert_eq!(out["choices"][0]["finish_reason"], expected, "{reason:?}");
    }
    // Upstream reasons outside the set never reach the canonical model as something odd.
    for (upstream, expected) in [
        ("refusal", FinishReason::Stop),
        ("max_tokens", FinishReason::Length),
        ("function_call", FinishReason::ToolCalls),
        ("content_filter", FinishReason::ContentFilter),
    ] {
        let body = json!({"id": "x", "choices": [{"index": 0, "finish_reason": upstream,
            "message": {"role": "assistant", "content": "x"}}]});
        let decoded = decode_response(body.to_string().as_bytes()).expect("valid");
        assert_eq!(decoded.choices[0].finish, Some(expected), "{upstream}");
    }
}

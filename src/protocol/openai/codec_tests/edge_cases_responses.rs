//! §7 edge cases on the non-streamed response side (and the both-ways tool-call rows).

use serde_json::{json, Value};

use super::edge_cases::{call, decode, message, request, response, text};
use crate::protocol::canonical::{ChatRequest, FinishReason, Part, Role, Usage};
use crate::protocol::openai::{decode_response, encode_request, encode_response};

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

#[test]
fn thinking_replay_after_a_stream_joins_text_and_signature() {
    // What a client rebuilt from our stream: text in reasoning_content, the signature in a
    // thinking block whose own text is empty.
    let request = decode(json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello", "reasoning_content": "Greet back.",
         "thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig-1"},
                             {"type": "redacted_thinking", "data": "opaque"}]}]}));
    assert_eq!(
        request.messages[1].parts[0],
        Part::Reasoning {
            text: "Greet back.".into(),
            signature: Some("sig-1".into()),
            redacted: None
        }
    );
}

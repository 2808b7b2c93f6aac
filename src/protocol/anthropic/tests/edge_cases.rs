//! protocols.md §7 rows about tool calls and reasoning in requests and responses (streams in
//! `stream_rules.rs`; content, images, stops and reasons in `content_rules.rs`).

use serde_json::{json, Value};

use super::stream_rules::{start, streamed_tools, tool_start};
use super::*;
use crate::protocol::anthropic::{
    decode_request, decode_response, encode_request, encode_response,
};
use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, Message, Part, Role, StreamEvent,
};

pub fn user(text: &str) -> Message {
    Message {
        role: Role::User,
        parts: vec![Part::Text {
            text: text.into(),
            cache_control: None,
        }],
        name: None,
    }
}

pub fn call(id: &str, name: &str, arguments: &str) -> Part {
    Part::ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    }
}

pub fn assistant(parts: Vec<Part>) -> Message {
    Message {
        role: Role::Assistant,
        parts,
        name: None,
    }
}

pub fn request(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages,
        ..ChatRequest::default()
    }
}

pub fn response(parts: Vec<Part>, finish: Option<FinishReason>) -> ChatResponse {
    ChatResponse {
        id: "chatcmpl-1".into(),
        model: "public".into(),
        choices: vec![Choice {
            index: 0,
            parts,
            finish,
        }],
        usage: None,
        created: 0,
    }
}

#[test]
fn dropped_tool_calls_every_call_converted_non_stream() {
    let body = json!({"id": "msg_1", "type": "message", "model": "c", "stop_reason": "tool_use",
        "content": [
            {"type": "tool_use", "id": "t1", "name": "a", "input": {"x": 1}},
            {"type": "tool_use", "id": "t2", "name": "b", "input": {}},
            {"type": "tool_use", "id": "t3", "name": "c", "input": {"y": [1, 2]}}]});
    let resp = decode_response(body.to_string().as_bytes()).expect("decodes");
    let calls: Vec<&Part> = resp.choices[0]
        .parts
        .iter()
        .filter(|p| matches!(p, Part::ToolCall { .. }))
        .collect();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2], &call("t3", "c", "{\"y\":[1,2]}"));

    let parts = vec![
        call("c1", "a", "{}"),
        call("c2", "b", "{\"k\":1}"),
        call("c3", "c", ""),
    ];
    let message = encode_response(&response(parts.clone(), None), &ChatRequest::default());
    let ids: Vec<&str> = message["content"]
        .as_array()
        .expect("content")
        .iter()
        .map(|b| b["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["c1", "c2", "c3"]);

    let body = encode_request(&request(vec![user("go"), assistant(parts)]), "c").expect("ok");
    assert_eq!(
        body["messages"][1]["content"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn empty_arguments_become_an_empty_object_never_a_string() {
    let parts = vec![
        call("c1", "a", ""),
        call("c2", "b", "  "),
        call("c3", "c", "not json"),
        call("c4", "d", "[1]"),
    ];
    let body =
        encode_request(&request(vec![user("go"), assistant(parts.clone())]), "c").expect("encodes");
    let inputs: Vec<&Value> = body["messages"][1]["content"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| &b["input"])
        .collect();
    assert_eq!(
        inputs,
        [
            &json!({}),
            &json!({}),
            &json!({"_raw": "not json"}),
            &json!({"_raw": "[1]"})
        ]
    );
    let message = encode_response(&response(parts, None), &ChatRequest::default());
    assert_eq!(message["content"][0]["input"], json!({}));
    assert!(message["content"]
        .as_array()
        .expect("blocks")
        .iter()
        .all(|b| b["input"].is_object()));
    // A call with no argument pieces in a stream: a block with `input: {}` and no delta.
    let frames = encode_stream(&[start(), tool_start(0, "call_1")]);
    assert_eq!(
        streamed_tools(&frames),
        vec![("call_1".into(), String::new())]
    );
}

#[test]
fn parallel_tool_results_go_in_one_user_message() {
    let result = |id: &str| Message {
        role: Role::Tool,
        parts: vec![Part::ToolResult {
            call_id: id.into(),
            content: vec![Part::Text {
                text: format!("result {id}"),
                cache_control: None,
            }],
            is_error: false,
        }],
        name: None,
    };
    let req = request(vec![
        user("weather?"),
        assistant(vec![call("c1", "f", "{}"), call("c2", "f", "{}")]),
        result("c1"),
        result("c2"),
        user("thanks"),
    ]);
    let body = encode_request(&req, "c").expect("encodes");
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(
        messages.len(),
        3,
        "results and the following text share one turn"
    );
    let kinds: Vec<&str> = messages[2]["content"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| b["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["tool_result", "tool_result", "text"]);
    // Text that arrived before the results still goes after them (Anthropic's rule).
    let req = request(vec![
        user("weather?"),
        assistant(vec![call("c1", "f", "{}")]),
        user("note"),
        result("c1"),
    ]);
    let body = encode_request(&req, "c").expect("encodes");
    assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(body["messages"][2]["content"][1]["text"], "note");

    // And back: one Anthropic user turn of results → one canonical Tool message, in order.
    let client = json!({"model": "c", "max_tokens": 10, "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "extra"},
            {"type": "tool_result", "tool_use_id": "c1", "content": "a"},
            {"type": "tool_result", "tool_use_id": "c2", "content": "b"}]}]});
    let req = decode_request(client.to_string().as_bytes()).expect("decodes");
    assert_eq!(req.messages.len(), 2);
    assert_eq!(req.messages[0].role, Role::Tool);
    assert_eq!(req.messages[0].parts.len(), 2);
    assert_eq!(req.messages[1], user("extra"));
}

#[test]
fn thinking_replay_keeps_signed_blocks_even_empty_ones() {
    let reasoning = |text: &str, signature: Option<&str>, redacted: Option<&str>| Part::Reasoning {
        text: text.into(),
        signature: signature.map(str::to_string),
        redacted: redacted.map(str::to_string),
    };
    let turn = assistant(vec![
        reasoning("", Some("sig-omitted"), None),
        reasoning("", None, Some("opaque")),
        reasoning("visible", Some("sig-2"), None),
        reasoning("from deepseek", None, None),
        call("c1", "f", "{}"),
    ]);
    let body = encode_request(&request(vec![user("q"), turn]), "c").expect("encodes");
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "", "signature": "sig-omitted"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "thinking", "thinking": "visible", "signature": "sig-2"},
            {"type": "tool_use", "id": "c1", "name": "f", "input": {}}
        ])
    );
    // A signed block that a decoder placed after the text still leads the turn.
    let turn = assistant(vec![
        Part::Text {
            text: "hi".into(),
            cache_control: None,
        },
        reasoning("t", Some("s"), None),
    ]);
    let body = encode_request(&request(vec![user("q"), turn]), "c").expect("encodes");
    assert_eq!(body["messages"][1]["content"][0]["type"], "thinking");
    // Client → canonical keeps the empty signed block too.
    let client = json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "", "signature": "s"}]}]});
    let req = decode_request(client.to_string().as_bytes()).expect("decodes");
    assert_eq!(req.messages[1].parts, vec![reasoning("", Some("s"), None)]);
}

#[test]
fn reasoning_content_maps_to_thinking_both_ways() {
    // Unsigned reasoning (an OpenAI-style upstream) → a thinking block, never visible text.
    let parts = vec![
        Part::Reasoning {
            text: "think".into(),
            signature: None,
            redacted: None,
        },
        Part::Text {
            text: "answer".into(),
            cache_control: None,
        },
    ];
    let message = encode_response(
        &response(parts, Some(FinishReason::Stop)),
        &ChatRequest::default(),
    );
    assert_eq!(
        message["content"],
        json!([{"type": "thinking", "thinking": "think", "signature": ""},
               {"type": "text", "text": "answer"}])
    );
    let frames = encode_stream(&[
        start(),
        StreamEvent::ReasoningDelta {
            choice: 0,
            text: "think".into(),
        },
        StreamEvent::TextDelta {
            choice: 0,
            text: "answer".into(),
        },
    ]);
    let blocks: Vec<Value> = frames_json(&frames)
        .into_iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d["content_block"]["type"].clone())
        .collect();
    assert_eq!(blocks, [json!("thinking"), json!("text")]);
    // Anthropic thinking → canonical reasoning, with its signature.
    let body = json!({"id": "msg", "model": "c", "stop_reason": "end_turn",
        "content": [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "a"}]});
    let resp = decode_response(body.to_string().as_bytes()).expect("decodes");
    assert_eq!(
        resp.choices[0].parts[0],
        Part::Reasoning {
            text: "t".into(),
            signature: Some("s".into()),
            redacted: None
        }
    );
}

#[test]
fn message_ids_look_like_anthropic_ids() {
    use crate::protocol::anthropic::message_id;
    assert_eq!(message_id("chatcmpl-9x1"), "msg_9x1");
    assert_eq!(message_id("msg_01A"), "msg_01A");
    assert_eq!(
        message_id("7e3d5586-cb70-98ce-97bf-8a2ac0091c3f"),
        "msg_7e3d5586-cb70-98ce-97bf-8a2ac0091c3f"
    );
    assert_eq!(message_id(""), "msg_gateway");
}

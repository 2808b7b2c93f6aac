//! protocols.md §7, one test per row that touches Anthropic (tool calls, reasoning, streams and
//! usage here; content, images, stops and reasons in `content_rules.rs`).

use serde_json::{json, Value};

use super::*;
use crate::protocol::anthropic::{
    decode_request, decode_response, encode_request, encode_response,
};
use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, Message, Part, Role, StreamError, StreamEvent,
    Usage,
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

fn start() -> StreamEvent {
    StreamEvent::Start {
        id: "up".into(),
        model: "up-model".into(),
    }
}

fn tool_start(index: u32, id: &str) -> StreamEvent {
    StreamEvent::ToolCallStart {
        choice: 0,
        index,
        id: id.into(),
        name: "get_weather".into(),
    }
}

fn tool_delta(index: u32, arguments: &str) -> StreamEvent {
    StreamEvent::ToolCallDelta {
        choice: 0,
        index,
        arguments: arguments.into(),
    }
}

/// The tool_use blocks of an encoded stream: (id, the joined input JSON).
fn streamed_tools(frames: &[String]) -> Vec<(String, String)> {
    let mut tools: Vec<(u64, String, String)> = Vec::new();
    for (name, data) in frames_json(frames) {
        if name == "content_block_start" && data["content_block"]["type"] == "tool_use" {
            let id = data["content_block"]["id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            tools.push((data["index"].as_u64().expect("index"), id, String::new()));
        }
        if name == "content_block_delta" && data["delta"]["type"] == "input_json_delta" {
            let index = data["index"].as_u64();
            let tool = tools.iter_mut().find(|t| Some(t.0) == index).expect("open");
            tool.2
                .push_str(data["delta"]["partial_json"].as_str().expect("piece"));
        }
    }
    tools.into_iter().map(|(_, id, json)| (id, json)).collect()
}

fn message_delta(frames: &[String]) -> Value {
    frames_json(frames)
        .into_iter()
        .find(|(name, _)| name == "message_delta")
        .map(|(_, data)| data)
        .expect("a message_delta")
}

#[test]
fn stream_tool_index_counts_tool_blocks_only() {
    // Thinking at block 0 and text at block 1: the first call is still tool 0, not 2.
    let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"content\":[],\"usage\":{\"input_tokens\":5}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"f\",\"input\":{}}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_b\",\"name\":\"g\",\"input\":{}}}\n\n";
    let indexes: Vec<u32> = decode_stream(&[sse.as_bytes()])
        .into_iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallStart { index, .. } | StreamEvent::ToolCallDelta { index, .. } => {
                Some(index)
            }
            _ => None,
        })
        .collect();
    assert_eq!(indexes, vec![0, 0, 1]);
}

#[test]
fn one_block_per_call_never_reopens_tool_use() {
    let mut events = vec![start(), tool_start(0, "call_1")];
    for piece in ["{\"ci", "ty\":", "\"Par", "is\"}"] {
        events.push(tool_delta(0, piece));
    }
    events.push(tool_start(0, "call_1")); // a repeated start must not open a second block
    let frames = encode_stream(&events);
    let tools = streamed_tools(&frames);
    assert_eq!(
        tools,
        vec![("call_1".into(), "{\"city\":\"Paris\"}".into())]
    );
    let starts = frames_json(&frames)
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .count();
    assert_eq!(starts, 1);
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
fn dropped_tool_calls_every_call_converted_stream() {
    // Interleaved argument pieces (keyed by index) and three calls: all three arrive whole.
    let events = vec![
        start(),
        tool_start(0, "call_a"),
        tool_delta(0, "{\"city\":"),
        tool_start(1, "call_b"),
        tool_delta(1, "{\"city\":\"Rome\"}"),
        tool_delta(0, "\"Paris\"}"),
        tool_start(2, "call_c"),
        tool_delta(2, "{}"),
        StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::ToolCalls,
        },
    ];
    let frames = encode_stream(&events);
    assert_eq!(
        streamed_tools(&frames),
        vec![
            ("call_a".into(), "{\"city\":\"Paris\"}".into()),
            ("call_b".into(), "{\"city\":\"Rome\"}".into()),
            ("call_c".into(), "{}".into()),
        ]
    );
    assert_eq!(message_delta(&frames)["delta"]["stop_reason"], "tool_use");
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
fn stream_termination_always_message_delta_and_message_stop() {
    let cases: Vec<Vec<StreamEvent>> = vec![
        vec![],
        vec![start()],
        vec![
            start(),
            StreamEvent::TextDelta {
                choice: 0,
                text: "cut".into(),
            },
        ],
        vec![start(), tool_start(0, "call_1"), tool_delta(0, "{\"a\"")],
    ];
    for events in cases {
        let frames = encode_stream(&events);
        let names: Vec<String> = frames_json(&frames).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.first().map(String::as_str), Some("message_start"));
        assert_eq!(
            names[names.len() - 2..],
            ["message_delta", "message_stop"],
            "{events:?}"
        );
        let opened = names.iter().filter(|n| *n == "content_block_start").count();
        let closed = names.iter().filter(|n| *n == "content_block_stop").count();
        assert_eq!(opened, closed, "every block is closed: {events:?}");
        assert_eq!(message_delta(&frames)["usage"]["output_tokens"], 0);
    }
    // finish() twice closes once; after an error nothing more is sent.
    let mut encoder = AnthropicStreamEncoder::new("msg_1".into(), "m".into());
    encoder.feed(&start());
    assert_eq!(encoder.finish().len(), 2);
    assert!(encoder.finish().is_empty());
    let mut encoder = AnthropicStreamEncoder::new("msg_1".into(), "m".into());
    encoder.feed(&start());
    let error = encoder.feed(&StreamEvent::Error(StreamError {
        status: 503,
        message: "busy".into(),
    }));
    assert_eq!(frames_json(&error)[0].0, "error");
    assert_eq!(
        frames_json(&error)[0].1["error"]["type"],
        "overloaded_error"
    );
    assert!(encoder
        .feed(&StreamEvent::TextDelta {
            choice: 0,
            text: "x".into()
        })
        .is_empty());
    assert!(encoder.finish().is_empty());
}

#[test]
fn stream_usage_keeps_usage_only_events_and_never_overwrites_with_estimates() {
    let reported = Usage {
        input_total: Some(80),
        cache_read: Some(64),
        cache_write: Some(6),
        output_total: Some(40),
        ..Usage::default()
    };
    let estimate = Usage {
        input_total: Some(100),
        cache_read: Some(0),
        cache_write: Some(0),
        output_total: Some(50),
        reasoning: Some(3),
        estimated: true,
    };
    let frames = encode_stream(&[
        start(),
        StreamEvent::TextDelta {
            choice: 0,
            text: "hi".into(),
        },
        StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::Stop,
        },
        // Usage-only events after the finish still reach the client.
        StreamEvent::Usage(reported),
        StreamEvent::Usage(estimate),
    ]);
    assert_eq!(
        message_delta(&frames)["usage"],
        json!({"input_tokens": 10, "cache_read_input_tokens": 64,
               "cache_creation_input_tokens": 6, "output_tokens": 40})
    );
    // Decoder: a message_delta repeating only input_tokens keeps the cache in the total.
    let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":7,\"output_tokens\":9}}\n\n";
    let mut total = Usage::default();
    for event in decode_stream(&[sse.as_bytes()]) {
        if let StreamEvent::Usage(usage) = event {
            total.merge(&usage);
        }
    }
    assert_eq!(total.input_total, Some(107));
    assert_eq!(total.cache_read, Some(100));
    assert_eq!(
        total.output_total,
        Some(9),
        "output is cumulative: latest wins"
    );
}

//! protocols.md §7 rows about streams toward and from Anthropic: tool indexes, one block per
//! call, every call delivered, termination and usage.

use serde_json::{json, Value};

use super::*;
use crate::protocol::canonical::{FinishReason, StreamError, StreamEvent, Usage};

pub fn start() -> StreamEvent {
    StreamEvent::Start {
        id: "up".into(),
        model: "up-model".into(),
    }
}

pub fn tool_start(index: u32, id: &str) -> StreamEvent {
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
pub fn streamed_tools(frames: &[String]) -> Vec<(String, String)> {
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

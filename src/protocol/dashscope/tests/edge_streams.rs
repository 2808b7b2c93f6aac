//! The protocols.md §7 rows about DashScope streams: cumulative text, tool-call pieces, forced
//! tools, running usage, and reasoning kept out of visible text.

use serde_json::json;

use super::{
    decode_chunks, encode_stream, event, message, text, transcript, visible_text,
    MESSAGE_INCREMENTAL,
};
use crate::protocol::canonical::{ChatRequest, FinishReason, Role, StreamEvent, Usage};
use crate::protocol::dashscope::{decode_response, encode_request, DashScopeOptions};

#[test]
fn dashscope_cumulative_text_is_diffed_never_appended() {
    let sse = transcript(&[
        event("Hello", "null", None, 1),
        event("Hello wor", "null", None, 2),
        event("Hello world!", "null", None, 3),
        event("Hello world!", "stop", None, 3),
    ]);
    let (events, done) = decode_chunks(&[sse.as_bytes()]);
    assert_eq!(visible_text(&events), "Hello world!");
    assert!(done);
    // And the gateway asks the upstream for incremental output in the first place.
    let req = ChatRequest {
        stream: true,
        messages: vec![message(Role::User, vec![text("hi")])],
        ..ChatRequest::default()
    };
    let (body, _) = encode_request(&req, "qwen-max").expect("encodable");
    assert_eq!(body["parameters"]["incremental_output"], json!(true));
    assert_eq!(body["parameters"]["result_format"], json!("message"));
}

#[test]
fn dashscope_cumulative_cjk_split_across_events_cuts_on_char_boundaries() {
    let sse = transcript(&[
        event("杭", "null", None, 1),
        event("杭州", "null", None, 2),
        event("杭州是🌸", "null", None, 3),
        event("杭州是🌸。", "stop", None, 4),
    ]);
    let (events, _) = decode_chunks(&[sse.as_bytes()]);
    assert_eq!(visible_text(&events), "杭州是🌸。");
    // 世 (E4 B8 96) and 丝 (E4 B8 9D) share two bytes: a byte-wise prefix would cut inside
    // a character. A rewrite sends what follows the common prefix of whole characters.
    let sse = transcript(&[
        event("你好", "null", None, 1),
        event("你好世", "null", None, 2),
        event("你好丝绸", "stop", None, 3),
    ]);
    let (events, _) = decode_chunks(&[sse.as_bytes()]);
    assert_eq!(visible_text(&events), "你好世丝绸");
}

#[test]
fn dashscope_stream_tools_empty_id_continues_the_call() {
    let piece = |id: &str, name: Option<&str>, args: &str| {
        let mut function = json!({"arguments": args});
        if let Some(name) = name {
            function["name"] = json!(name);
        }
        json!([{"index": 0, "id": id, "type": "function", "function": function}])
    };
    let sse = transcript(&[
        event(
            "",
            "null",
            Some(piece("call_1", Some("lookup"), "{\"q\": ")),
            5,
        ),
        event("", "null", Some(piece("", None, "\"rust")), 6),
        event(
            "",
            "null",
            Some(json!([{"id": "", "function": {"arguments": "\"}"}}])),
            7,
        ),
        event("", "tool_calls", None, 7),
    ]);
    let (events, _) = decode_chunks(&[sse.as_bytes()]);
    let starts: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ToolCallStart { .. }))
        .collect();
    assert_eq!(
        starts,
        vec![&StreamEvent::ToolCallStart {
            choice: 0,
            index: 0,
            id: "call_1".into(),
            name: "lookup".into()
        }],
        "one call, never reopened per piece"
    );
    let arguments: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments,
                ..
            } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(arguments, "{\"q\": \"rust\"}");
}

#[test]
fn dashscope_forced_tool_stop_with_tool_calls_means_tool_calls() {
    let body = event(
        "",
        "stop",
        Some(json!([{"index": 0, "id": "call_f", "type": "function",
            "function": {"name": "lookup", "arguments": "{}"}}])),
        9,
    );
    let response = decode_response(body.to_string().as_bytes()).expect("decodable");
    assert_eq!(response.choices[0].finish, Some(FinishReason::ToolCalls));
    let (events, done) = decode_chunks(&[transcript(&[body]).as_bytes()]);
    assert!(done);
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::ToolCalls
        })
    );
    // Without tool calls, `stop` stays a plain stop.
    let plain = decode_response(event("ok", "stop", None, 1).to_string().as_bytes()).expect("ok");
    assert_eq!(plain.choices[0].finish, Some(FinishReason::Stop));
}

#[test]
fn stream_usage_latest_wins_never_summed() {
    let sse = transcript(&[
        event("a", "null", None, 1),
        event("b", "null", None, 2),
        event("c", "stop", None, 3),
    ]);
    let (events, _) = decode_chunks(&[sse.as_bytes()]);
    let mut usage = Usage::default();
    for event in &events {
        if let StreamEvent::Usage(report) = event {
            usage.merge(report);
        }
    }
    assert_eq!(usage.output_total, Some(3), "running totals, not 1+2+3");
    assert_eq!(usage.input_total, Some(100), "not 300");
    // The client stream's last event carries the last totals too.
    let frames = encode_stream(&events, MESSAGE_INCREMENTAL);
    let last = frames.last().expect("a final event");
    assert_eq!(last["usage"]["output_tokens"], json!(3));
    assert_eq!(last["usage"]["total_tokens"], json!(103));
}

#[test]
fn reasoning_never_shows_as_text_in_the_text_format() {
    let events = [
        StreamEvent::ReasoningDelta {
            choice: 0,
            text: "secret plan".into(),
        },
        StreamEvent::TextDelta {
            choice: 0,
            text: "Answer".into(),
        },
    ];
    let frames = encode_stream(&events, DashScopeOptions::default());
    assert!(frames.iter().all(|f| !f.to_string().contains("secret")));
    assert_eq!(
        frames.last().expect("final")["output"]["text"],
        json!("Answer")
    );
}

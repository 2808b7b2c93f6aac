//! The protocols.md §7 rows that touch DashScope requests and non-streaming responses, one
//! test each, named after the row, plus the DashScope request rules (input.prompt, result
//! formats, tools with the text format).

use serde_json::json;

use super::{
    call, decode_chunks, encode_stream, event, message, request, text, transcript,
    MESSAGE_INCREMENTAL,
};
use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, Part, Role, StreamEvent,
};
use crate::protocol::dashscope::{
    decode_response, encode_request, encode_response, DashScopeOptions, ResultFormat,
};

#[test]
fn cache_accounting_dashscope_input_includes_cached_tokens() {
    let body = json!({"output": {"text": "hi", "finish_reason": "stop"}, "request_id": "r",
        "usage": {"input_tokens": 211, "output_tokens": 30, "prompt_tokens_details": {"cached_tokens": 128}}});
    let response = decode_response(body.to_string().as_bytes()).expect("decodable");
    let usage = response.usage.expect("usage");
    assert_eq!(
        (usage.input_total, usage.cache_read),
        (Some(211), Some(128))
    );
    assert_eq!(
        usage.cache_write, None,
        "DashScope reports no cache writes: absent, not 0"
    );
    let options = DashScopeOptions::default();
    let out = encode_response(&response, &ChatRequest::default(), &options, "gw");
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 211, "output_tokens": 30, "total_tokens": 241,
               "prompt_tokens_details": {"cached_tokens": 128}}),
        "input_tokens keeps the cached part; total is computed"
    );
}

#[test]
fn empty_content_blocks_and_messages_are_dropped() {
    let (req, _) = request(json!({"model": "m", "input": {"messages": [
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"text": ""}, {"text": "hi"}]},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"}]}}))
    .expect("valid");
    assert_eq!(req.messages.len(), 3, "the empty user message is gone");
    assert_eq!(req.messages[0].parts, vec![text("hi")]);
    assert_eq!(req.messages[1].parts, vec![call("c1", "{}")]);
    let req = ChatRequest {
        messages: vec![
            message(Role::User, vec![text(""), text("question")]),
            message(Role::Assistant, vec![text("")]),
            message(Role::User, vec![text("")]),
        ],
        ..ChatRequest::default()
    };
    let (body, _) = encode_request(&req, "m").expect("encodable");
    assert_eq!(
        body["input"]["messages"],
        json!([{"role": "user", "content": "question"}])
    );
}

#[test]
fn stop_shape_one_string_stays_an_array() {
    let (req, _) = request(json!({"model": "m", "input": {"prompt": "p"},
        "parameters": {"stop": "Observation:"}}))
    .expect("valid");
    assert_eq!(req.stop, vec!["Observation:".to_string()]);
    let (body, _) = encode_request(&req, "m").expect("encodable");
    assert_eq!(body["parameters"]["stop"], json!(["Observation:"]));
    let no_stop = ChatRequest {
        stop: vec![],
        ..req
    };
    let (body, _) = encode_request(&no_stop, "m").expect("encodable");
    assert!(
        body["parameters"].get("stop").is_none(),
        "no empty stop list"
    );
    let err = request(json!({"model": "m", "input": {"prompt": "p"},
        "parameters": {"stop": [[37763, 367]]}}))
    .expect_err("token ids");
    assert!(
        err.contains("token-id") && err.contains("parameters.stop"),
        "{err}"
    );
}

#[test]
fn dropped_tool_calls_every_call_is_converted_both_ways() {
    let calls = json!([
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"a\":1}"}},
        {"index": 1, "id": "c2", "type": "function", "function": {"name": "lookup", "arguments": "{\"a\":2}"}},
        {"index": 2, "id": "c3", "type": "function", "function": {"name": "lookup", "arguments": "{\"a\":3}"}}]);
    let (req, _) = request(json!({"model": "m", "input": {"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": calls}]},
        "parameters": {"result_format": "message"}}))
    .expect("valid");
    assert_eq!(req.messages[1].parts.len(), 3);
    let (body, _) = encode_request(&req, "m").expect("encodable");
    assert_eq!(
        body["input"]["messages"][1]["tool_calls"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let response = decode_response(
        event("", "tool_calls", Some(calls.clone()), 9)
            .to_string()
            .as_bytes(),
    )
    .expect("decodable");
    assert_eq!(response.choices[0].parts.len(), 3);
    let options = DashScopeOptions {
        result_format: ResultFormat::Message,
        incremental_output: false,
    };
    let out = encode_response(&response, &req, &options, "gw");
    assert_eq!(
        out["output"]["choices"][0]["message"]["tool_calls"], calls,
        "non-stream"
    );
    let (events, _) =
        decode_chunks(&[transcript(&[event("", "tool_calls", Some(calls), 9)]).as_bytes()]);
    let starts = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ToolCallStart { .. }))
        .count();
    assert_eq!(starts, 3, "stream");
    let frames = encode_stream(&events, options);
    let last = frames.last().expect("final event");
    assert_eq!(
        last["output"]["choices"][0]["message"]["tool_calls"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "client stream (cumulative)"
    );
}

#[test]
fn parallel_tool_results_are_one_canonical_message_and_one_tool_message_each() {
    let (req, _) = request(json!({"model": "m", "input": {"messages": [
        {"role": "user", "content": "both"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
        {"role": "user", "content": "thanks"}]}}))
    .expect("valid");
    assert_eq!(req.messages.len(), 4);
    assert_eq!(req.messages[2].role, Role::Tool);
    assert_eq!(
        req.messages[2].parts.len(),
        2,
        "one message holds every result"
    );
    let (body, _) = encode_request(&req, "m").expect("encodable");
    let messages = &body["input"]["messages"];
    assert_eq!(
        (
            messages[2]["tool_call_id"].clone(),
            messages[2]["content"].clone()
        ),
        (json!("c1"), json!("one"))
    );
    assert_eq!(
        (
            messages[3]["tool_call_id"].clone(),
            messages[3]["content"].clone()
        ),
        (json!("c2"), json!("two"))
    );
    assert_eq!(messages[4], json!({"role": "user", "content": "thanks"}));
}

#[test]
fn reason_passthrough_every_reason_is_mapped() {
    let cases = [
        (FinishReason::Stop, "stop"),
        (FinishReason::StopSequence(Some("END".into())), "stop"),
        (FinishReason::Length, "length"),
        (FinishReason::ToolCalls, "tool_calls"),
        (FinishReason::ContentFilter, "stop"),
        (FinishReason::Pause, "stop"),
    ];
    for (reason, wire) in cases {
        let response = ChatResponse {
            id: "u".into(),
            model: "m".into(),
            choices: vec![Choice {
                index: 0,
                parts: vec![text("x")],
                finish: Some(reason.clone()),
            }],
            usage: None,
            created: 0,
        };
        for format in [ResultFormat::Text, ResultFormat::Message] {
            let options = DashScopeOptions {
                result_format: format,
                incremental_output: true,
            };
            let out = encode_response(&response, &ChatRequest::default(), &options, "gw");
            let got = match format {
                ResultFormat::Text => &out["output"]["finish_reason"],
                ResultFormat::Message => &out["output"]["choices"][0]["finish_reason"],
            };
            assert_eq!(got, &json!(wire), "{reason:?} {format:?}");
        }
        let events = [
            StreamEvent::TextDelta {
                choice: 0,
                text: "x".into(),
            },
            StreamEvent::Finish { choice: 0, reason },
        ];
        let frames = encode_stream(&events, MESSAGE_INCREMENTAL);
        assert_eq!(
            frames[0]["output"]["choices"][0]["finish_reason"],
            json!("null")
        );
        assert_eq!(
            frames[1]["output"]["choices"][0]["finish_reason"],
            json!(wire)
        );
    }
    // Upstream reasons: known ones map, `"null"` is no reason, unknown ones are never passed on.
    for (wire, expected) in [
        ("stop", Some(FinishReason::Stop)),
        ("length", Some(FinishReason::Length)),
        ("tool_calls", Some(FinishReason::ToolCalls)),
        ("null", None),
        ("something_new", Some(FinishReason::Stop)),
    ] {
        let response = decode_response(event("x", wire, None, 1).to_string().as_bytes());
        assert_eq!(response.expect("ok").choices[0].finish, expected, "{wire}");
    }
}

#[test]
fn input_prompt_becomes_one_user_message() {
    let (req, _) =
        request(json!({"model": "m", "input": {"prompt": "Tell me a joke."}})).expect("ok");
    assert_eq!(
        req.messages,
        vec![message(Role::User, vec![text("Tell me a joke.")])]
    );
    for input in [json!({}), json!({"messages": []}), json!({"prompt": ""})] {
        let err = request(json!({"model": "m", "input": input})).expect_err("no input");
        assert!(err.contains("[input.messages]"), "{err}");
    }
    let err = request(json!({"input": {"prompt": "x"}})).expect_err("no model");
    assert!(err.contains("[model]"), "{err}");
}

#[test]
fn result_format_text_vs_message() {
    let response =
        decode_response(event("Hi there", "stop", None, 2).to_string().as_bytes()).expect("ok");
    let (req, options) = request(json!({"model": "m", "input": {"prompt": "hi"}})).expect("ok");
    assert_eq!(options.result_format, ResultFormat::Text, "classic default");
    let out = encode_response(&response, &req, &options, "gw");
    assert_eq!(
        out["output"],
        json!({"text": "Hi there", "finish_reason": "stop"})
    );
    let (req, options) = request(json!({"model": "m", "input": {"prompt": "hi"},
        "parameters": {"result_format": "message"}}))
    .expect("ok");
    let out = encode_response(&response, &req, &options, "gw");
    assert_eq!(
        out["output"],
        json!({"choices": [{"finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hi there"}}]})
    );
    let err = request(json!({"model": "m", "input": {"prompt": "hi"},
        "parameters": {"result_format": "xml"}}))
    .expect_err("unknown format");
    assert!(err.contains("parameters.result_format"), "{err}");
}

#[test]
fn tools_with_text_format_are_refused_before_any_upstream() {
    let tools = json!([{"type": "function", "function": {"name": "lookup"}}]);
    for parameters in [
        json!({"tools": tools}),
        json!({"tools": tools, "result_format": "text"}),
    ] {
        let err =
            request(json!({"model": "m", "input": {"prompt": "x"}, "parameters": parameters}))
                .expect_err("tools need the message format");
        assert!(err.contains("[parameters.result_format]"), "{err}");
    }
    let ok = request(json!({"model": "m", "input": {"prompt": "x"},
        "parameters": {"tools": tools, "result_format": "message"}}));
    assert!(ok.is_ok());
}

#[test]
fn tools_without_schema_are_kept() {
    let (req, _) = request(
        json!({"model": "m", "input": {"prompt": "x"}, "parameters": {
        "result_format": "message",
        "tools": [{"type": "function", "function": {"name": "ping"}}]}}),
    )
    .expect("ok");
    assert_eq!(req.tools.len(), 1);
    assert_eq!(req.tools[0].parameters, None);
    let (body, _) = encode_request(&req, "m").expect("encodable");
    assert_eq!(
        body["parameters"]["tools"],
        json!([{"type": "function", "function": {"name": "ping"}}])
    );
}

#[test]
fn replayed_arguments_go_back_byte_for_byte() {
    let odd = "{ \"city\" :\"Paris\",\n\"n\":1.50 }";
    let req = ChatRequest {
        messages: vec![
            message(Role::User, vec![text("go")]),
            message(Role::Assistant, vec![call("c1", odd)]),
        ],
        ..ChatRequest::default()
    };
    let (body, _) = encode_request(&req, "m").expect("encodable");
    assert_eq!(
        body["input"]["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!(odd)
    );
}

#[test]
fn reasoning_content_maps_to_reasoning_and_back_without_signature() {
    let (req, _) = request(json!({"model": "m", "input": {"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "thought"}]}}))
    .expect("ok");
    assert_eq!(
        req.messages[1].parts[0],
        Part::Reasoning {
            text: "thought".into(),
            signature: None,
            redacted: None
        }
    );
    let signed = ChatRequest {
        messages: vec![
            message(Role::User, vec![text("q")]),
            message(
                Role::Assistant,
                vec![
                    Part::Reasoning {
                        text: "thought".into(),
                        signature: Some("sig".into()),
                        redacted: None,
                    },
                    call("c1", "{}"),
                ],
            ),
        ],
        ..ChatRequest::default()
    };
    let (body, _) = encode_request(&signed, "m").expect("encodable");
    let assistant = &body["input"]["messages"][1];
    assert_eq!(assistant["reasoning_content"], json!("thought"));
    assert_eq!(
        assistant["content"],
        json!(""),
        "reasoning never becomes text"
    );
    assert!(
        !body.to_string().contains("sig"),
        "no signature on DashScope"
    );
}

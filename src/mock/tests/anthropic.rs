//! Tests of the mock's Anthropic Messages API: message shape and usage, the §2 stream event
//! order, tool use, thinking with its signature, cache reads, errors, and both auth headers.

use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};

use super::{app, broken_stream, json_body, post};
use crate::mock::{router, MockConfig};

const MESSAGES: &str = "/v1/messages";
const HEADERS: [(&str, &str); 2] = [
    ("x-api-key", "sk-test"),
    ("anthropic-version", "2023-06-01"),
];

fn request(text: &str) -> Value {
    json!({
        "model": "claude-mock",
        "max_tokens": 100,
        "messages": [{ "role": "user", "content": text }],
    })
}

fn streaming(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

fn with_tools(mut body: Value) -> Value {
    body["tools"] = json!([
        { "name": "get_weather", "input_schema": { "type": "object" } },
        { "name": "other", "input_schema": { "type": "object" } },
    ]);
    body
}

async fn message(app: &Router, body: &Value) -> (StatusCode, Value) {
    let (status, _, bytes) = post(app, MESSAGES, &HEADERS, body).await;
    (status, json_body(&bytes))
}

/// The events of an Anthropic stream as (name, data), checking the exact framing.
async fn events(app: &Router, body: &Value) -> Vec<(String, Value)> {
    let (status, headers, bytes) = post(app, MESSAGES, &HEADERS, &streaming(body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(headers["request-id"].to_str().unwrap().starts_with("req_"));
    parse(std::str::from_utf8(&bytes).unwrap())
}

fn parse(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "unterminated frame in {text:?}");
    text.split_terminator("\n\n")
        .map(|frame| {
            let (event, data) = frame.split_once('\n').unwrap();
            let name = event.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], json!(name), "the data type names the event");
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// The concatenation of the deltas' `field` (`text`, `thinking`, `partial_json`).
fn joined(events: &[(String, Value)], field: &str) -> String {
    events
        .iter()
        .filter_map(|(_, data)| data.pointer(&format!("/delta/{field}"))?.as_str())
        .collect()
}

#[tokio::test]
async fn anthropic_message_echoes_last_text_with_usage() {
    let body = json!({
        "model": "claude-mock",
        "max_tokens": 100,
        "system": "Be terse.",
        "messages": [
            { "role": "user", "content": "an older question" },
            { "role": "assistant", "content": "ok" },
            { "role": "user", "content": [{ "type": "text", "text": "Hello " }, { "type": "text", "text": "there friend" }] },
        ],
    });
    let (status, headers, bytes) = post(&app(), MESSAGES, &HEADERS, &body).await;
    assert_eq!(status, StatusCode::OK);
    let reply = json_body(&bytes);
    assert!(reply["id"].as_str().unwrap().starts_with("msg_"));
    assert!(headers["request-id"].to_str().unwrap().starts_with("req_"));
    assert_eq!(
        (&reply["type"], &reply["role"], &reply["model"]),
        (
            &json!("message"),
            &json!("assistant"),
            &json!("claude-mock")
        )
    );
    assert_eq!(
        reply["content"],
        json!([{ "type": "text", "text": "Mock reply to: Hello there friend" }])
    );
    assert_eq!(
        (&reply["stop_reason"], &reply["stop_sequence"]),
        (&json!("end_turn"), &Value::Null)
    );
    // Input as the OpenAI mock counts it, the system prompt as a message: 5 + 6 + 4 + 6.
    let usage = json!({ "input_tokens": 21, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 6 });
    assert_eq!(reply["usage"], usage);
}

#[tokio::test]
async fn anthropic_tool_result_only_turn_keeps_the_earlier_user_text() {
    let body = json!({
        "model": "claude-mock",
        "max_tokens": 100,
        "messages": [
            { "role": "user", "content": "Weather in Paris?" },
            { "role": "assistant", "content": [{ "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": { "city": "Paris" } }] },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C" }] },
        ],
    });
    let (_, reply) = message(&app(), &body).await;
    assert_eq!(
        reply["content"][0]["text"],
        "Mock reply to: Weather in Paris?"
    );
    // (3+3) + (0+3) + the tool result's 2 words + 3.
    assert_eq!(reply["usage"]["input_tokens"], 14);
}

#[tokio::test]
async fn anthropic_stream_follows_the_event_order_with_cumulative_usage() {
    let events = events(&app(), &request("Hello there")).await;
    let mut expected = vec!["message_start", "ping", "content_block_start"];
    expected.extend(["content_block_delta"; 5]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&events), expected);
    let start = &events[0].1["message"];
    assert_eq!(
        (&start["content"], &start["stop_reason"]),
        (&json!([]), &Value::Null)
    );
    let usage = json!({ "input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1 });
    assert_eq!(start["usage"], usage);
    assert_eq!(
        events[2].1["content_block"],
        json!({ "type": "text", "text": "" })
    );
    assert!(events[3..8]
        .iter()
        .all(|(_, d)| d["index"] == 0 && d["delta"]["type"] == "text_delta"));
    assert_eq!(joined(&events, "text"), "Mock reply to: Hello there");
    assert_eq!(events[8].1["index"], 0);
    assert_eq!(
        events[9].1,
        json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null }, "usage": { "output_tokens": 5 } })
    );
}

#[tokio::test]
async fn anthropic_tool_use_in_message_and_stream() {
    let body = with_tools(request("Weather? [mock:tool_call]"));
    let (_, reply) = message(&app(), &body).await;
    let tool_use = json!({ "type": "tool_use", "id": "toolu_mock_1", "name": "get_weather", "input": { "city": "Paris" } });
    assert_eq!(reply["content"], json!([tool_use]));
    assert_eq!(reply["stop_reason"], "tool_use");
    assert_eq!(reply["usage"]["output_tokens"], 3);

    let events = events(&app(), &body).await;
    let start = &events[2].1["content_block"];
    assert_eq!(
        *start,
        json!({ "type": "tool_use", "id": "toolu_mock_1", "name": "get_weather", "input": {} })
    );
    let pieces: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d.pointer("/delta/partial_json")?.as_str())
        .collect();
    assert_eq!(pieces.len(), 2, "input_json_delta in two pieces");
    let input: Value = serde_json::from_str(&pieces.concat()).unwrap();
    assert_eq!(input, json!({ "city": "Paris" }));
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "tool_use"
    );
}

#[tokio::test]
async fn anthropic_thinking_block_comes_first_with_its_signature() {
    let body = request("Why? [mock:thinking]");
    let (_, reply) = message(&app(), &body).await;
    assert_eq!(
        reply["content"],
        json!([
            { "type": "thinking", "thinking": "Thinking about it.", "signature": "sig-mock-1" },
            { "type": "text", "text": "Mock reply to: Why?" },
        ])
    );
    assert_eq!(
        reply["usage"]["output_tokens"], 7,
        "4 reply words + 3 thinking"
    );

    let events = events(&app(), &body).await;
    let blocks: Vec<(&str, &Value)> = events[2..6].iter().map(|(n, d)| (n.as_str(), d)).collect();
    assert_eq!(
        blocks[0].1["content_block"],
        json!({ "type": "thinking", "thinking": "" })
    );
    assert_eq!(
        blocks[1].1["delta"],
        json!({ "type": "thinking_delta", "thinking": "Thinking about it." })
    );
    assert_eq!(
        blocks[2].1["delta"],
        json!({ "type": "signature_delta", "signature": "sig-mock-1" })
    );
    assert_eq!(
        blocks[3],
        (
            "content_block_stop",
            &json!({ "type": "content_block_stop", "index": 0 })
        )
    );
    assert_eq!(events[6].1["index"], 1, "the text block follows as block 1");
    assert_eq!(joined(&events, "text"), "Mock reply to: Why?");
    assert_eq!(events[events.len() - 2].1["usage"]["output_tokens"], 7);
}

#[tokio::test]
async fn anthropic_cache_read_is_taken_out_of_input_tokens() {
    let body = request("one two three four five [mock:cache_read=6]");
    let (_, reply) = message(&app(), &body).await;
    let usage = json!({ "input_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 6, "output_tokens": 8 });
    assert_eq!(
        reply["usage"], usage,
        "6 words (the directive is one) + 3 = 9 input tokens, 6 of them cached"
    );
    let events = events(&app(), &body).await;
    assert_eq!(
        events[0].1["message"]["usage"]["cache_read_input_tokens"],
        6
    );
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 3);
}

#[tokio::test]
async fn anthropic_max_tokens_is_required_and_caps_the_reply() {
    let mut body = request("one two three");
    body.as_object_mut().unwrap().remove("max_tokens");
    let (status, headers, bytes) = post(&app(), MESSAGES, &HEADERS, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = json_body(&bytes);
    assert_eq!(error["type"], "error");
    assert_eq!(
        error["error"],
        json!({ "type": "invalid_request_error", "message": "max_tokens: Field required" })
    );
    assert_eq!(error["request_id"], headers["request-id"].to_str().unwrap());

    body["max_tokens"] = json!(2);
    let (_, reply) = message(&app(), &body).await;
    assert_eq!(reply["content"][0]["text"], "Mock reply");
    assert_eq!(reply["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn anthropic_faults_use_the_error_envelope_of_the_status_table() {
    for (code, kind) in [
        (529, "overloaded_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (404, "not_found_error"),
    ] {
        let (status, reply) = message(&app(), &request(&format!("hi [mock:status={code}]"))).await;
        assert_eq!(status.as_u16(), code);
        assert_eq!(reply["error"]["type"], kind);
        assert!(reply["request_id"].as_str().unwrap().starts_with("req_"));
    }
    let app = app();
    let body = request("again [mock:fail_first=1]");
    assert_eq!(message(&app, &body).await.1["error"]["type"], "api_error");
    assert_eq!(message(&app, &body).await.0, StatusCode::OK);
}

#[tokio::test]
async fn anthropic_stream_error_event_follows_the_first_text_delta() {
    let events = events(&app(), &request("a b [mock:stream_error]")).await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        events[4].1,
        json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } })
    );

    let cut = streaming(request("a b c [mock:cut_after=1]"));
    let text = broken_stream(&app(), MESSAGES, &HEADERS, &cut).await;
    let events = parse(&text);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta"
        ]
    );
}

#[tokio::test]
async fn anthropic_accepts_x_api_key_or_bearer() {
    let keyed = router(MockConfig {
        api_key: Some("sk-test".into()),
    });
    let body = request("hi");
    for (headers, expected) in [
        (vec![("x-api-key", "sk-test")], StatusCode::OK),
        (vec![("authorization", "Bearer sk-test")], StatusCode::OK),
        (
            vec![
                ("x-api-key", "sk-test"),
                ("anthropic-version", "1999-01-01"),
            ],
            StatusCode::OK,
        ),
        (vec![], StatusCode::UNAUTHORIZED),
        (vec![("x-api-key", "wrong")], StatusCode::UNAUTHORIZED),
        (
            vec![("authorization", "Bearer wrong")],
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (status, _, bytes) = post(&keyed, MESSAGES, &headers, &body).await;
        assert_eq!(status, expected, "{headers:?}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(json_body(&bytes)["error"]["type"], "authentication_error");
        }
    }
    let (_, _, bytes) = super::send(
        &keyed,
        axum::http::Request::get("/_mock/requests")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    let log = json_body(&bytes);
    assert_eq!(log[0]["path"], MESSAGES);
    assert_eq!(log[0]["x-api-key"], "sk-test");
    assert_eq!(log[1]["authorization"], "Bearer sk-test");
    assert_eq!(
        log[2]["headers"],
        json!({ "anthropic-version": "1999-01-01" })
    );
}

#[tokio::test]
async fn anthropic_count_tokens_needs_no_max_tokens() {
    let body = json!({
        "model": "claude-mock",
        "system": [{ "type": "text", "text": "Be terse." }],
        "messages": [{ "role": "user", "content": "count these words" }],
    });
    let (status, _, bytes) = post(&app(), "/v1/messages/count_tokens", &HEADERS, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&bytes), json!({ "input_tokens": 11 }));
}

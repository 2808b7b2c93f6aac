//! Tests of the mock's DashScope native API: text and message formats, prompt input, the exact
//! §3/§6.4 stream framing, incremental vs cumulative output, streamed tool calls with `"id":""`,
//! the forced-tool `stop`, the multimodal endpoint, and error envelopes in and out of streams.

use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use serde_json::{json, Value};

use super::{app, broken_stream, json_body, post};

const TEXT: &str = "/api/v1/services/aigc/text-generation/generation";
const MULTIMODAL: &str = "/api/v1/services/aigc/multimodal-generation/generation";
const AUTH: [(&str, &str); 1] = [("authorization", "Bearer sk-test")];
const SSE: [(&str, &str); 3] = [
    ("authorization", "Bearer sk-test"),
    ("x-dashscope-sse", "enable"),
    ("accept", "text/event-stream"),
];

fn request(text: &str, parameters: Value) -> Value {
    json!({
        "model": "qwen-mock",
        "input": { "messages": [{ "role": "user", "content": text }] },
        "parameters": parameters,
    })
}

fn tools(mut parameters: Value) -> Value {
    parameters["tools"] = json!([{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object" } } }]);
    parameters
}

/// One DashScope event.
#[derive(Debug)]
struct Event {
    id: u64,
    name: String,
    status: u16,
    data: Value,
}

/// Parses a DashScope stream, checking each frame is exactly `id:N`, `event:…`,
/// `:HTTP_STATUS/NNN`, `data:{…}` with no space after the colons.
fn parse(text: &str) -> Vec<Event> {
    assert!(text.ends_with("\n\n"), "unterminated frame in {text:?}");
    assert!(!text.contains("[DONE]"));
    text.split_terminator("\n\n")
        .map(|frame| {
            let lines: Vec<&str> = frame.split('\n').collect();
            let [id, name, status, data] = lines[..] else {
                panic!("not four lines: {frame:?}")
            };
            let data = data.strip_prefix("data:").unwrap();
            assert!(data.starts_with('{'), "no space after data: in {frame:?}");
            Event {
                id: id.strip_prefix("id:").unwrap().parse().unwrap(),
                name: name.strip_prefix("event:").unwrap().to_owned(),
                status: status
                    .strip_prefix(":HTTP_STATUS/")
                    .unwrap()
                    .parse()
                    .unwrap(),
                data: serde_json::from_str(data).unwrap(),
            }
        })
        .collect()
}

async fn stream(app: &Router, path: &str, body: &Value) -> (HeaderMap, Vec<Event>) {
    let (status, headers, bytes) = post(app, path, &SSE, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    (headers, parse(std::str::from_utf8(&bytes).unwrap()))
}

fn choice(event: &Value) -> &Value {
    &event["output"]["choices"][0]
}

fn contents(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .map(|e| choice(&e.data)["message"]["content"].clone())
        .collect()
}

#[tokio::test]
async fn dashscope_message_format_reply_usage_and_request_id_header() {
    let body = request("Hello there", json!({ "result_format": "message" }));
    let (status, headers, bytes) = post(&app(), TEXT, &AUTH, &body).await;
    assert_eq!(status, StatusCode::OK);
    let reply = json_body(&bytes);
    assert_eq!(
        reply["output"],
        json!({ "choices": [{ "message": { "role": "assistant", "content": "Mock reply to: Hello there" }, "index": 0, "finish_reason": "stop" }] })
    );
    assert_eq!(
        reply["usage"],
        json!({ "input_tokens": 5, "output_tokens": 5, "total_tokens": 10 })
    );
    let request_id = reply["request_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok());
    assert_eq!(headers["x-request-id"], request_id);
}

#[tokio::test]
async fn dashscope_text_format_is_the_default_and_prompt_input_works() {
    let body = json!({ "model": "qwen-mock", "input": { "prompt": "Hi there" } });
    let (status, _, bytes) = post(&app(), TEXT, &AUTH, &body).await;
    assert_eq!(status, StatusCode::OK);
    let reply = json_body(&bytes);
    assert_eq!(
        reply["output"],
        json!({ "text": "Mock reply to: Hi there", "finish_reason": "stop" })
    );
    assert_eq!(reply["usage"]["input_tokens"], 5);

    let capped = request(
        "one two",
        json!({ "result_format": "text", "max_tokens": 2 }),
    );
    let reply = json_body(&post(&app(), TEXT, &AUTH, &capped).await.2);
    assert_eq!(
        reply["output"],
        json!({ "text": "Mock reply", "finish_reason": "length" })
    );
}

#[tokio::test]
async fn dashscope_incremental_stream_framing_and_running_usage() {
    let body = request(
        "Hello there",
        json!({ "result_format": "message", "incremental_output": true }),
    );
    let (headers, events) = stream(&app(), TEXT, &body).await;
    assert_eq!(
        events.len(),
        6,
        "5 words and an empty closing event: {events:?}"
    );
    let request_id = headers["x-request-id"].to_str().unwrap();
    for (n, event) in events.iter().enumerate() {
        assert_eq!(
            (event.id, event.name.as_str(), event.status),
            (n as u64 + 1, "result", 200)
        );
        assert_eq!(event.data["request_id"], request_id);
        let output = if n < 5 { n as u64 + 1 } else { 5 };
        let usage =
            json!({ "input_tokens": 5, "output_tokens": output, "total_tokens": 5 + output });
        assert_eq!(event.data["usage"], usage, "running usage in event {n}");
        let finish = if n < 5 { "null" } else { "stop" };
        assert_eq!(choice(&event.data)["finish_reason"], finish);
    }
    let expected = ["Mock ", "reply ", "to: ", "Hello ", "there", ""];
    assert_eq!(contents(&events), expected.map(|s| json!(s)));
}

#[tokio::test]
async fn dashscope_cumulative_stream_resends_the_text_so_far() {
    let cumulative = [
        "Mock",
        "Mock reply",
        "Mock reply to:",
        "Mock reply to: Hi",
        "Mock reply to: Hi",
    ];
    let asked = request("Hi", json!({ "result_format": "message" }));
    let ignored = request(
        "Hi [mock:cumulative]",
        json!({ "result_format": "message", "incremental_output": true }),
    );
    for body in [asked, ignored] {
        let (_, events) = stream(&app(), TEXT, &body).await;
        assert_eq!(contents(&events), cumulative.map(|s| json!(s)), "{body}");
    }
    let text = json!({ "model": "qwen-mock", "input": { "prompt": "Hi" } });
    let (_, events) = stream(&app(), TEXT, &text).await;
    let texts: Vec<&Value> = events.iter().map(|e| &e.data["output"]["text"]).collect();
    assert_eq!(
        texts,
        cumulative.map(|s| json!(s)).iter().collect::<Vec<_>>()
    );
    assert_eq!(events[4].data["output"]["finish_reason"], "stop");
}

#[tokio::test]
async fn dashscope_streamed_tool_call_continues_with_an_empty_id() {
    let parameters = tools(json!({ "result_format": "message", "incremental_output": true }));
    let body = request("Weather? [mock:tool_call]", parameters);
    let (_, events) = stream(&app(), TEXT, &body).await;
    assert_eq!(events.len(), 2);
    let first = &choice(&events[0].data)["message"];
    assert_eq!(
        first["tool_calls"],
        json!([{ "index": 0, "id": "call_mock_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":" } }])
    );
    assert_eq!(
        (&first["content"], &choice(&events[0].data)["finish_reason"]),
        (&json!(""), &json!("null"))
    );
    let second = choice(&events[1].data);
    assert_eq!(
        second["message"]["tool_calls"],
        json!([{ "index": 0, "id": "", "type": "function", "function": { "arguments": "\"Paris\"}" } }])
    );
    assert_eq!(second["finish_reason"], "tool_calls");
    assert_eq!(events[1].data["usage"]["output_tokens"], 3);

    let (_, _, bytes) = post(&app(), TEXT, &AUTH, &body).await;
    let reply = json_body(&bytes);
    let message = &choice(&reply)["message"];
    let call = json!({ "index": 0, "id": "call_mock_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } });
    assert_eq!(message["tool_calls"], json!([call]));
}

#[tokio::test]
async fn dashscope_forced_tool_stop_ends_with_stop_and_tool_calls() {
    let parameters = tools(json!({ "result_format": "message", "incremental_output": true }));
    let body = request("[mock:tool_call] [mock:forced_tool_stop]", parameters);
    let reply = json_body(&post(&app(), TEXT, &AUTH, &body).await.2);
    assert_eq!(choice(&reply)["finish_reason"], "stop");
    assert_eq!(
        choice(&reply)["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let (_, events) = stream(&app(), TEXT, &body).await;
    assert_eq!(choice(&events[1].data)["finish_reason"], "stop");
    assert!(choice(&events[1].data)["message"]["tool_calls"].is_array());
}

#[tokio::test]
async fn dashscope_multimodal_endpoint_speaks_content_arrays() {
    let content = json!([{ "image": "https://example.com/a.png" }, { "text": "Describe " }, { "text": "this" }]);
    let body = json!({
        "model": "qwen-vl-mock",
        "input": { "messages": [{ "role": "user", "content": content }] },
        "parameters": { "incremental_output": true },
    });
    let reply = json_body(&post(&app(), MULTIMODAL, &AUTH, &body).await.2);
    let message = &choice(&reply)["message"];
    assert_eq!(
        message["content"],
        json!([{ "text": "Mock reply to: Describe this" }])
    );
    assert_eq!(reply["usage"]["input_tokens"], 5);
    let (_, events) = stream(&app(), MULTIMODAL, &body).await;
    assert_eq!(contents(&events)[0], json!([{ "text": "Mock " }]));
    assert_eq!(contents(&events).last().unwrap(), &json!([]));
}

#[tokio::test]
async fn dashscope_errors_carry_code_message_and_request_id() {
    let body = request("hi", json!({}));
    let (status, headers, bytes) = post(&app(), TEXT, &[], &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let error = json_body(&bytes);
    assert_eq!(error["code"], "InvalidApiKey");
    assert_eq!(
        error["request_id"],
        headers["x-request-id"].to_str().unwrap()
    );
    assert!(error["message"].is_string());
    let cases = [
        (
            request("hi [mock:status=429]", json!({})),
            429,
            "Throttling.RateQuota",
        ),
        (
            request("hi [mock:status=500]", json!({})),
            500,
            "InternalError",
        ),
        (
            json!({ "model": "qwen-mock", "input": {} }),
            400,
            "InvalidParameter",
        ),
        (
            request("hi", tools(json!({ "result_format": "text" }))),
            400,
            "InvalidParameter",
        ),
    ];
    for (body, code, name) in cases {
        let (status, _, bytes) = post(&app(), TEXT, &AUTH, &body).await;
        assert_eq!(
            (status.as_u16(), json_body(&bytes)["code"].clone()),
            (code, json!(name))
        );
    }
}

#[tokio::test]
async fn dashscope_stream_errors_are_in_band_events() {
    let body = request(
        "a b [mock:stream_error]",
        json!({ "incremental_output": true }),
    );
    let (headers, events) = stream(&app(), TEXT, &body).await;
    assert_eq!(events.len(), 2);
    assert_eq!((events[0].name.as_str(), events[0].status), ("result", 200));
    let error = &events[1];
    assert_eq!(
        (error.id, error.name.as_str(), error.status),
        (2, "error", 500)
    );
    assert_eq!(error.data["code"], "InternalError");
    assert_eq!(
        error.data["request_id"],
        headers["x-request-id"].to_str().unwrap()
    );

    let (_, events) = stream(&app(), TEXT, &request("a [mock:status=429]", json!({}))).await;
    assert_eq!(
        events.len(),
        1,
        "a failed streaming request is one error event in HTTP 200"
    );
    assert_eq!(
        (events[0].id, events[0].name.as_str(), events[0].status),
        (1, "error", 429)
    );
    assert_eq!(events[0].data["code"], "Throttling.RateQuota");

    let cut = request(
        "a b c [mock:cut_after=2]",
        json!({ "incremental_output": true }),
    );
    let text = broken_stream(&app(), TEXT, &SSE, &cut).await;
    assert_eq!(parse(&text).len(), 2);
}

#[tokio::test]
async fn dashscope_cached_tokens_and_thinking_usage_details() {
    let body = request(
        "hi [mock:cached=3] [mock:thinking]",
        json!({ "result_format": "message", "incremental_output": true }),
    );
    let reply = json_body(&post(&app(), TEXT, &AUTH, &body).await.2);
    assert_eq!(
        choice(&reply)["message"]["reasoning_content"],
        "Thinking about it."
    );
    let usage = json!({
        "input_tokens": 6, "output_tokens": 7, "total_tokens": 13,
        "prompt_tokens_details": { "cached_tokens": 3 },
        "output_tokens_details": { "reasoning_tokens": 3 },
    });
    assert_eq!(
        reply["usage"], usage,
        "input includes the cached tokens; output the reasoning"
    );
    let (_, events) = stream(&app(), TEXT, &body).await;
    let first = &choice(&events[0].data)["message"];
    assert_eq!(
        (&first["reasoning_content"], &first["content"]),
        (&json!("Thinking about it."), &json!(""))
    );
    assert_eq!(events[0].data["usage"]["output_tokens"], 3);
    assert_eq!(events.last().unwrap().data["usage"], usage);
}

//! Tests of the mock upstream, driven through `router(...)` with `tower::ServiceExt::oneshot`:
//! OpenAI replies, usage, faults, auth and the request log here, OpenAI streaming in
//! `tests/streaming.rs`, the other protocols in `tests/<protocol>.rs`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failure with a backtrace

mod anthropic;
mod dashscope;
mod minimax;
mod streaming;
mod support;

use axum::body::{to_bytes, Body, Bytes};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::faults::Directives;
use super::{router, MockConfig};
use support::{broken_stream, json_body, post};

const KEY: &str = "Bearer sk-test";

fn app() -> Router {
    router(MockConfig::default())
}

fn chat_request(auth: Option<&str>, body: &Value) -> Request<Body> {
    let mut builder =
        Request::post("/v1/chat/completions").header(header::CONTENT_TYPE, "application/json");
    if let Some(auth) = auth {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

fn user(text: &str) -> Value {
    json!({ "model": "gpt-mock", "messages": [{ "role": "user", "content": text }] })
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Option<String>, Bytes) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        content_type,
        to_bytes(response.into_body(), usize::MAX).await.unwrap(),
    )
}

async fn chat(app: &Router, body: Value) -> (StatusCode, Value) {
    let (status, _, bytes) = send(app, chat_request(Some(KEY), &body)).await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The SSE frames of a streaming reply: JSON chunks, and `[DONE]` as a string.
async fn stream(app: &Router, body: Value) -> Vec<Value> {
    let (status, content_type, bytes) = send(app, chat_request(Some(KEY), &body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    parse_frames(std::str::from_utf8(&bytes).unwrap())
}

fn parse_frames(text: &str) -> Vec<Value> {
    assert!(text.ends_with("\n\n"), "unterminated frame in {text:?}");
    text.split_terminator("\n\n")
        .map(|frame| {
            let data = frame.strip_prefix("data: ").unwrap();
            serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
        })
        .collect()
}

fn streaming(mut body: Value, include_usage: bool) -> Value {
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

/// The concatenated `delta.content` of the chunks.
fn streamed_text(frames: &[Value]) -> String {
    frames
        .iter()
        .filter_map(|f| f.pointer("/choices/0/delta/content")?.as_str())
        .collect()
}

#[tokio::test]
async fn non_streaming_reply_echoes_last_user_text_with_word_usage() {
    let body = json!({
        "model": "gpt-mock",
        "messages": [
            { "role": "system", "content": "Be terse." },
            { "role": "user", "content": "an older question" },
            { "role": "assistant", "content": "ok" },
            { "role": "user", "content": [{ "type": "text", "text": "Hello " }, { "type": "text", "text": "there friend" }] },
        ],
    });
    let (status, reply) = chat(&app(), body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(reply["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "gpt-mock");
    assert!(reply["created"].as_i64().unwrap() > 1_600_000_000);
    let choice = &reply["choices"][0];
    assert_eq!(
        choice["message"],
        json!({ "role": "assistant", "content": "Mock reply to: Hello there friend" })
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    // prompt: (2+3) + (3+3) + (1+3) + (3+3) = 21; completion: 6 words.
    let usage = json!({ "prompt_tokens": 21, "completion_tokens": 6, "total_tokens": 27, "prompt_tokens_details": { "cached_tokens": 0 } });
    assert_eq!(reply["usage"], usage);
}

#[tokio::test]
async fn directives_are_stripped_from_the_echo_and_words_replaces_it() {
    let (_, reply) = chat(&app(), user("Say [mock:delay_ms=1] hi [mock:unknown]")).await;
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Mock reply to: Say hi"
    );
    let (_, reply) = chat(&app(), user("x [mock:words=5]")).await;
    assert_eq!(reply["choices"][0]["message"]["content"], "w1 w2 w3 w4 w5");
    assert_eq!(reply["usage"]["completion_tokens"], 5);
}

#[test]
fn directives_parse_and_combine() {
    let (d, text) = Directives::parse("a [mock:status=429][mock:fail_first=2] b [mock:cut_after=3] [mock:no_usage] [mock:chunk_delay_ms=7] [mock:tool_call] [mock:status=200 c");
    assert_eq!(d.status, Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(
        (d.fail_first, d.cut_after, d.chunk_delay_ms),
        (Some(2), Some(3), 7)
    );
    assert!(d.no_usage && d.tool_call);
    assert_eq!(
        text, "a b [mock:status=200 c",
        "an unclosed directive stays text"
    );
    assert_eq!(
        Directives::parse("[mock:status=200]").0.status,
        None,
        "only 4xx/5xx"
    );
    let (d, text) = Directives::parse("q [mock:thinking] [mock:cache_read=7] [mock:stream_error] [mock:cumulative] [mock:forced_tool_stop] [mock:base_resp=2013]");
    assert_eq!(text, "q");
    assert!(d.thinking && d.stream_error && d.cumulative && d.forced_tool_stop);
    assert_eq!((d.cache_read, d.base_resp), (Some(7), Some(2013)));
    let (d, _) = Directives::parse("[mock:cached=4] [mock:base_resp=0]");
    assert_eq!(
        (d.cache_read, d.base_resp),
        (Some(4), None),
        "cached is an alias; base_resp 0 is success"
    );
}

#[tokio::test]
async fn max_tokens_caps_words_with_finish_reason_length() {
    let mut body = user("one two three");
    body["max_tokens"] = json!(2);
    let (_, reply) = chat(&app(), body.clone()).await;
    assert_eq!(reply["choices"][0]["message"]["content"], "Mock reply");
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
    assert_eq!(reply["usage"]["completion_tokens"], 2);

    body["max_completion_tokens"] = json!(3); // wins over max_tokens
    let frames = stream(&app(), streaming(body.clone(), true)).await;
    assert_eq!(streamed_text(&frames), "Mock reply to:");
    assert_eq!(frames[4]["choices"][0]["finish_reason"], "length");
    assert_eq!(frames[5]["usage"]["completion_tokens"], 3);

    body["max_completion_tokens"] = json!(99);
    let (_, reply) = chat(&app(), body).await;
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
}

fn tool_request() -> Value {
    let mut body = user("Weather? [mock:tool_call]");
    body["tools"] = json!([
        { "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object" } } },
        { "type": "function", "function": { "name": "other" } },
    ]);
    body
}

#[tokio::test]
async fn tool_call_directive_calls_the_first_tool() {
    let (status, reply) = chat(&app(), tool_request()).await;
    assert_eq!(status, StatusCode::OK);
    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = json!([{ "id": "call_mock_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }]);
    assert_eq!(choice["message"]["tool_calls"], call);
    // Without tools the directive is just stripped.
    let (_, reply) = chat(&app(), user("Weather? [mock:tool_call]")).await;
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Mock reply to: Weather?"
    );
}

#[tokio::test]
async fn status_fault_answers_with_the_openai_error_envelope() {
    for (code, kind) in [
        (429, "rate_limit_exceeded"),
        (503, "server_error"),
        (404, "invalid_request_error"),
    ] {
        let (status, body) = chat(&app(), user(&format!("hi [mock:status={code}]"))).await;
        assert_eq!(status.as_u16(), code);
        let error = json!({ "message": format!("mock fault {code}"), "type": kind, "param": null, "code": kind });
        assert_eq!(body, json!({ "error": error }));
    }
}

#[tokio::test]
async fn fail_first_fails_n_times_per_distinct_text_then_succeeds() {
    let app = app();
    let statuses = |text: &'static str| {
        let app = app.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..3 {
                out.push(chat(&app, user(text)).await.0.as_u16());
            }
            out
        }
    };
    assert_eq!(statuses("a [mock:fail_first=2]").await, [500, 500, 200]);
    assert_eq!(statuses("b [mock:fail_first=1]").await, [500, 200, 200]);
    let (_, body) = chat(&app, user("c [mock:fail_first=1]")).await;
    assert_eq!(body["error"]["type"], "server_error");
}

#[tokio::test]
async fn no_usage_omits_usage_everywhere() {
    let (_, reply) = chat(&app(), user("hi [mock:no_usage]")).await;
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Mock reply to: hi"
    );
    assert!(reply.get("usage").is_none());
    let frames = stream(&app(), streaming(user("hi [mock:no_usage]"), true)).await;
    assert_eq!(frames.len(), 7, "role, 4 words, finish, [DONE]: {frames:?}");
    assert!(frames
        .iter()
        .all(|f| f.get("usage").is_none_or(Value::is_null)));
    assert_eq!(frames[6], "[DONE]");
}

#[tokio::test]
async fn missing_or_wrong_bearer_is_401() {
    let keyed = router(MockConfig {
        api_key: Some("sk-test".into()),
    });
    let open = app();
    for (app, auth) in [
        (&open, None),
        (&open, Some("Basic abc")),
        (&keyed, None),
        (&keyed, Some("Bearer wrong")),
    ] {
        let (status, _, bytes) = send(app, chat_request(auth, &user("hi"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    assert_eq!(chat(&keyed, user("hi")).await.0, StatusCode::OK);
    assert_eq!(
        chat(&open, user("hi")).await.0,
        StatusCode::OK,
        "any bearer without api_key"
    );
    let models = |auth: &'static str| {
        Request::get("/v1/models")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(&keyed, models("Bearer wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, bytes) = send(&keyed, models(KEY)).await;
    assert_eq!(status, StatusCode::OK);
    let list: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        list,
        json!({ "object": "list", "data": [{ "id": "mock-model", "object": "model", "created": 0, "owned_by": "mock" }] })
    );
}

#[tokio::test]
async fn missing_model_or_messages_is_400_naming_the_param() {
    for (body, param) in [
        (json!({ "messages": [] }), "model"),
        (json!({ "model": "m" }), "messages"),
        (json!({ "model": "m", "messages": [] }), "messages"),
    ] {
        let (status, reply) = chat(&app(), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(reply["error"]["type"], "invalid_request_error");
        assert_eq!(reply["error"]["param"], param);
    }
}

#[tokio::test]
async fn request_log_records_authorization_and_body_and_is_bounded() {
    let app = app();
    let log = |method: Method| {
        Request::builder()
            .method(method)
            .uri("/_mock/requests")
            .body(Body::empty())
            .unwrap()
    };
    chat(&app, user("first")).await;
    send(&app, chat_request(None, &user("second"))).await;
    let (status, _, bytes) = send(&app, log(Method::GET)).await;
    assert_eq!(status, StatusCode::OK);
    let entries: Value = serde_json::from_slice(&bytes).unwrap();
    let entry = |authorization: Value, body: Value| json!({ "path": "/v1/chat/completions", "authorization": authorization, "x-api-key": null, "headers": {}, "body": body });
    assert_eq!(
        entries,
        json!([
            entry(json!(KEY), user("first")),
            entry(Value::Null, user("second"))
        ])
    );

    assert_eq!(
        send(&app, log(Method::DELETE)).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, _, bytes) = send(&app, log(Method::GET)).await;
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), json!([]));

    for i in 0..105 {
        chat(&app, user(&format!("n{i}"))).await;
    }
    let (_, _, bytes) = send(&app, log(Method::GET)).await;
    let entries: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(entries.len(), 100);
    assert_eq!(
        entries[0]["body"],
        user("n5"),
        "oldest first, oldest dropped"
    );
    assert_eq!(entries[99]["body"], user("n104"));
}

//! Tests of the mock's MiniMax native API: `base_resp` on success and as the error channel in
//! HTTP 200, MiniMax usage, reasoning as `<think>` tags or `reasoning_details`, and the stream
//! quirks (`"role":""`, `"delta":null`, the usage-only chunk, the repeated whole message).

use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};

use super::{app, json_body, post};
use crate::mock::{router, MockConfig};

const CHAT: &str = "/v1/text/chatcompletion_v2";
const AUTH: [(&str, &str); 1] = [("authorization", "Bearer sk-test")];

fn request(text: &str) -> Value {
    json!({ "model": "MiniMax-M2", "messages": [{ "role": "user", "content": text }] })
}

fn streaming(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

async fn chat(app: &Router, body: &Value) -> (StatusCode, Value) {
    let (status, _, bytes) = post(app, CHAT, &AUTH, body).await;
    (status, json_body(&bytes))
}

/// The `data: ` payloads of a stream: JSON chunks, and `[DONE]` as a string.
async fn frames(body: &Value) -> Vec<Value> {
    let (status, headers, bytes) = post(&app(), CHAT, &AUTH, &streaming(body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    let text = std::str::from_utf8(&bytes).unwrap();
    text.split_terminator("\n\n")
        .map(|frame| {
            let data = frame.strip_prefix("data: ").unwrap();
            serde_json::from_str(data).unwrap_or_else(|_| json!(data))
        })
        .collect()
}

fn base_resp(code: u64, message: &str) -> Value {
    json!({ "base_resp": { "status_code": code, "status_msg": message } })
}

#[tokio::test]
async fn minimax_reply_has_base_resp_and_minimax_usage() {
    let (status, reply) = chat(&app(), &request("Hello there")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        reply["base_resp"],
        json!({ "status_code": 0, "status_msg": "success" })
    );
    assert_eq!(reply["object"], "chat.completion");
    let choice = &reply["choices"][0];
    assert_eq!(
        choice["message"],
        json!({ "role": "assistant", "content": "Mock reply to: Hello there" })
    );
    assert_eq!(choice["finish_reason"], "stop");
    let usage = json!({
        "total_tokens": 10, "total_characters": 0, "prompt_tokens": 5, "completion_tokens": 5,
        "completion_tokens_details": { "reasoning_tokens": 0 },
    });
    assert_eq!(reply["usage"], usage);
    assert_eq!(
        (&reply["input_sensitive"], &reply["output_sensitive"]),
        (&json!(false), &json!(false))
    );
}

#[tokio::test]
async fn minimax_stream_has_the_minimax_quirks_and_repeats_the_whole_message() {
    let frames = frames(&request("Hello there")).await;
    // role, 5 words, finish, usage, whole message, [DONE]
    assert_eq!(frames.len(), 10, "{frames:?}");
    assert_eq!(
        frames[0]["choices"][0]["delta"],
        json!({ "role": "assistant", "content": "" })
    );
    let words: Vec<&str> = frames[1..6]
        .iter()
        .map(|f| {
            assert_eq!(
                f["choices"][0]["delta"]["role"], "",
                "later deltas carry an empty role"
            );
            f["choices"][0]["delta"]["content"].as_str().unwrap()
        })
        .collect();
    assert_eq!(words.concat(), "Mock reply to: Hello there");
    let finish = &frames[6]["choices"][0];
    assert_eq!(
        (&finish["delta"], &finish["finish_reason"]),
        (&Value::Null, &json!("stop"))
    );
    assert_eq!(frames[7]["choices"], json!([]));
    assert_eq!(
        frames[7]["usage"]["total_tokens"], 10,
        "usage-only chunk, unasked"
    );
    let whole = &frames[8];
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(
        whole["choices"][0]["message"]["content"],
        "Mock reply to: Hello there"
    );
    assert_eq!(whole["base_resp"]["status_code"], 0);
    assert_eq!(frames[9], "[DONE]");
    assert!(frames[..8]
        .iter()
        .all(|f| f["object"] == "chat.completion.chunk" && f["id"] == frames[0]["id"]));
}

#[tokio::test]
async fn minimax_tool_call_in_message_and_stream() {
    let mut body = request("Weather? [mock:tool_call]");
    body["tools"] = json!([{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object" } } }]);
    let (_, reply) = chat(&app(), &body).await;
    let call = json!({ "id": "call_mock_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } });
    assert_eq!(reply["choices"][0]["message"]["tool_calls"], json!([call]));
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");

    let frames = frames(&body).await;
    assert_eq!(
        frames[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let arguments: String = frames[1..3]
        .iter()
        .map(|f| {
            f["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert_eq!(frames[3]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        frames[5]["choices"][0]["message"]["tool_calls"],
        json!([call])
    );
}

#[tokio::test]
async fn minimax_temperature_outside_zero_to_one_and_n_are_rejected_in_http_200() {
    for (field, value) in [
        ("temperature", json!(0)),
        ("temperature", json!(1.5)),
        ("n", json!(2)),
    ] {
        let mut body = request("hi");
        body[field] = value;
        let (status, reply) = chat(&app(), &body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            reply,
            base_resp(2013, &format!("invalid params, {field}")),
            "no choices"
        );
    }
    let mut body = request("hi");
    body["temperature"] = json!(1.0);
    assert_eq!(chat(&app(), &body).await.1["base_resp"]["status_code"], 0);
}

#[tokio::test]
async fn minimax_base_resp_directive_and_status_faults() {
    let (status, reply) = chat(&app(), &request("hi [mock:base_resp=1002]")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, base_resp(1002, "rate limit exceeded"));
    let (status, reply) = chat(&app(), &streaming(request("hi [mock:base_resp=1027]"))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a streaming request gets the same JSON error"
    );
    assert_eq!(reply["base_resp"]["status_code"], 1027);
    let (status, reply) = chat(&app(), &request("hi [mock:status=429]")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply["base_resp"]["status_code"], 1002);
}

#[tokio::test]
async fn minimax_thinking_as_think_tags_or_reasoning_details() {
    let (_, reply) = chat(&app(), &request("Why? [mock:thinking]")).await;
    let message = &reply["choices"][0]["message"];
    assert_eq!(
        message["content"],
        "<think>Thinking about it.</think>\n\nMock reply to: Why?"
    );
    assert!(message.get("reasoning_details").is_none());
    assert_eq!(
        reply["usage"]["completion_tokens_details"]["reasoning_tokens"],
        3
    );
    assert_eq!(reply["usage"]["completion_tokens"], 7);

    let mut split = request("Why? [mock:thinking]");
    split["reasoning_split"] = json!(true);
    let (_, reply) = chat(&app(), &split).await;
    let message = &reply["choices"][0]["message"];
    assert_eq!(message["content"], "Mock reply to: Why?");
    assert_eq!(
        message["reasoning_details"],
        json!([{ "text": "Thinking about it." }])
    );
    let frames = frames(&split).await;
    assert_eq!(
        frames[1]["choices"][0]["delta"]["reasoning_details"],
        json!([{ "text": "Thinking about it." }])
    );
}

#[tokio::test]
async fn minimax_auth_errors_are_base_resp_codes() {
    let keyed = router(MockConfig {
        api_key: Some("sk-test".into()),
    });
    let (status, _, bytes) = post(&keyed, CHAT, &[], &request("hi")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&bytes)["base_resp"]["status_code"], 1004);
    let wrong = [("authorization", "Bearer nope")];
    let (_, _, bytes) = post(&keyed, CHAT, &wrong, &request("hi")).await;
    assert_eq!(json_body(&bytes), base_resp(2049, "invalid api key"));
    assert_eq!(
        chat(&keyed, &request("hi")).await.1["base_resp"]["status_code"],
        0
    );
}

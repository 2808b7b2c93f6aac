//! Tests of the mock upstream's streaming: SSE frame sequences, tool-call deltas, the
//! `cut_after` break, real delays, and `serve` on a real socket.

use std::time::{Duration, Instant};

use axum::body::to_bytes;
use axum::http::StatusCode;
use futures::StreamExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{
    app, chat, chat_request, parse_frames, stream, streamed_text, streaming, tool_request, user,
    KEY,
};
use crate::mock::{serve, MockConfig};

#[tokio::test]
async fn streaming_without_include_usage_sends_role_words_finish_done() {
    let frames = stream(&app(), streaming(user("Hello there"), false)).await;
    // role, 5 words ("Mock reply to: Hello there"), finish, [DONE]
    assert_eq!(frames.len(), 8, "{frames:?}");
    assert_eq!(
        frames[0]["choices"][0]["delta"],
        json!({ "role": "assistant", "content": "" })
    );
    let words: Vec<&str> = frames[1..6]
        .iter()
        .map(|f| f["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["Mock ", "reply ", "to: ", "Hello ", "there"]);
    assert_eq!(frames[6]["choices"][0]["delta"], json!({}));
    assert_eq!(frames[6]["choices"][0]["finish_reason"], "stop");
    assert_eq!(frames[7], "[DONE]");
    let id = &frames[0]["id"];
    assert!(id.as_str().unwrap().starts_with("chatcmpl-mock-"));
    for chunk in &frames[..7] {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(
            (&chunk["id"], &chunk["created"], &chunk["model"]),
            (id, &frames[0]["created"], &json!("gpt-mock"))
        );
        assert_eq!(chunk.get("usage"), Some(&Value::Null));
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn streaming_with_include_usage_adds_a_usage_chunk_before_done() {
    let frames = stream(&app(), streaming(user("Hello there"), true)).await;
    assert_eq!(frames.len(), 9);
    assert_eq!(streamed_text(&frames), "Mock reply to: Hello there");
    assert_eq!(frames[6]["choices"][0]["finish_reason"], "stop");
    assert_eq!(frames[6]["usage"], Value::Null);
    assert_eq!(frames[7]["choices"], json!([]));
    assert_eq!(frames[7]["id"], frames[0]["id"]);
    assert_eq!(
        frames[7]["usage"],
        json!({ "prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10, "prompt_tokens_details": { "cached_tokens": 0 } })
    );
    assert_eq!(frames[8], "[DONE]");
}

#[tokio::test]
async fn tool_call_streams_name_then_two_argument_fragments() {
    let frames = stream(&app(), streaming(tool_request(), false)).await;
    assert_eq!(frames.len(), 5, "{frames:?}");
    let first = &frames[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        *first,
        json!({ "index": 0, "id": "call_mock_1", "type": "function", "function": { "name": "get_weather", "arguments": "" } })
    );
    let arguments: String = frames[1..3]
        .iter()
        .map(|f| {
            let call = &f["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(call["index"], 0);
            call["function"]["arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert_eq!(frames[3]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(frames[4], "[DONE]");
}

#[tokio::test]
async fn cut_after_breaks_the_body_before_finish_and_done() {
    let body = streaming(user("one two three four [mock:cut_after=2]"), true);
    let response = app().oneshot(chat_request(Some(KEY), &body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let items: Vec<_> = response.into_body().into_data_stream().collect().await;
    let (last, frames) = items.split_last().unwrap();
    assert!(last.is_err(), "the body must end with an error");
    let text: String = frames
        .iter()
        .map(|f| String::from_utf8(f.as_ref().unwrap().to_vec()).unwrap())
        .collect();
    let frames = parse_frames(&text);
    assert_eq!(frames.len(), 3, "role + 2 words: {frames:?}");
    assert_eq!(streamed_text(&frames), "Mock reply ");
    assert!(
        !text.contains("[DONE]")
            && !text.contains("finish_reason\":\"")
            && !text.contains("prompt_tokens")
    );
    // Through to_bytes, the whole body is an error.
    let response = app().oneshot(chat_request(Some(KEY), &body)).await.unwrap();
    assert!(to_bytes(response.into_body(), usize::MAX).await.is_err());
}

#[tokio::test]
async fn delays_are_real() {
    let start = Instant::now();
    let (status, _) = chat(&app(), user("hi [mock:delay_ms=60]")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(60));
    let start = Instant::now();
    let frames = stream(
        &app(),
        streaming(user("[mock:words=2] [mock:chunk_delay_ms=20]"), false),
    )
    .await;
    assert_eq!(frames.len(), 5);
    assert!(
        start.elapsed() >= Duration::from_millis(80),
        "4 gaps of 20 ms"
    );
}

#[tokio::test]
async fn serve_answers_on_a_socket_until_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, MockConfig::default(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "ok");
    let body = streaming(user("a b c [mock:cut_after=1]"), false);
    let cut = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("authorization", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cut.status(),
        StatusCode::OK,
        "the cut comes after the headers"
    );
    assert!(
        cut.text().await.is_err(),
        "a cut stream is a broken body for a real client"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn openai_thinking_cache_read_and_stream_error() {
    let (_, reply) = chat(&app(), user("Why? [mock:thinking] [mock:cache_read=2]")).await;
    let message = &reply["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], "Thinking about it.");
    assert_eq!(message["content"], "Mock reply to: Why?");
    let usage = json!({
        "prompt_tokens": 6, "completion_tokens": 7, "total_tokens": 13,
        "prompt_tokens_details": { "cached_tokens": 2 },
        "completion_tokens_details": { "reasoning_tokens": 3 },
    });
    assert_eq!(reply["usage"], usage);

    let frames = stream(&app(), streaming(user("Why? [mock:thinking]"), false)).await;
    assert_eq!(
        frames[1]["choices"][0]["delta"],
        json!({ "reasoning_content": "Thinking about it." })
    );
    assert_eq!(streamed_text(&frames), "Mock reply to: Why?");

    let frames = stream(&app(), streaming(user("a b [mock:stream_error]"), true)).await;
    assert_eq!(frames.len(), 3, "role, one word, the error: {frames:?}");
    assert_eq!(frames[1]["choices"][0]["delta"]["content"], "Mock ");
    assert_eq!(frames[2]["error"]["type"], "server_error");
}

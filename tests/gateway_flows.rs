//! Whole flows through a spawned gateway and the mock upstream, against every configured store.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use modelrouter_projections::sql::{balances, usage};
use serde_json::{json, Value};

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].clone())
}

#[tokio::test]
async fn auth_failures_come_back_as_401_in_the_openai_envelope() {
    for store in stores().await {
        let env = env(store).await;
        let no_key = env
            .http
            .post(env.url("/v1/chat/completions"))
            .json(&json!({"model": "test-gpt", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(no_key).await;
        assert_eq!(status, 401);
        assert_eq!(error["code"], "invalid_api_key");
        assert!(error["message"]
            .as_str()
            .unwrap()
            .contains("Missing API key"));

        let response = env
            .chat(
                "sk-mr-not-a-real-key-00000000000",
                json!({"model": "test-gpt", "messages": user("hi")}),
            )
            .await;
        assert_eq!(response.headers()["x-should-retry"], "false");
        let (status, error) = error_of(response).await;
        assert_eq!(status, 401);
        assert_eq!(error["type"], "invalid_request_error");

        let models = env.http.get(env.url("/v1/models")).send().await.unwrap();
        assert_eq!(models.status(), 401);
        // Nothing reached the upstream.
        assert!(env.mock.requests().await.is_empty());
        env.finish().await;
    }
}

#[tokio::test]
async fn key_scope_limits_models_and_the_model_list() {
    for store in stores().await {
        let env = env(store).await;
        let list = |key: &'static str| {
            let http = env.http.clone();
            let url = env.url("/v1/models");
            async move {
                let body: Value = http
                    .get(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let mut ids: Vec<(String, String)> = body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        (
                            m["id"].as_str().unwrap().to_string(),
                            m["display_name"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                ids.sort();
                ids
            }
        };
        // Auto sees every routed model (the unrouted one is not offered).
        assert_eq!(
            list(KEY_AUTO).await,
            vec![
                ("test-gpt".into(), "Test GPT".into()),
                ("test-mini".into(), "Test Mini".into())
            ]
        );
        assert_eq!(
            list(KEY_FIXED).await,
            vec![("test-mini".into(), "Test Mini".into())]
        );
        assert_eq!(
            list(KEY_SET).await,
            vec![("test-gpt".into(), "Test GPT".into())]
        );

        let (status, error) = error_of(
            env.chat(
                KEY_FIXED,
                json!({"model": "test-gpt", "messages": user("hi")}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 403);
        assert_eq!(error["param"], "model");
        let ok = env
            .chat(
                KEY_FIXED,
                json!({"model": "test-mini", "messages": user("hi")}),
            )
            .await;
        assert_eq!(ok.status(), 200);
        let (status, _) = error_of(
            env.chat(
                KEY_SET,
                json!({"model": "test-mini", "messages": user("hi")}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 403);
        env.finish().await;
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_400_404_or_413() {
    for store in stores().await {
        let env = env_with(store, 0, |s| s.max_body_bytes = 4096).await;
        let (status, error) = error_of(
            env.chat(
                KEY_AUTO,
                json!({"model": "gpt-nope", "messages": user("hi")}),
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, error["code"].as_str()),
            (404, Some("model_not_found"))
        );
        let (status, error) = error_of(
            env.chat(
                KEY_AUTO,
                json!({"model": "test-unrouted", "messages": user("hi")}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 404, "{error}");

        let (status, error) =
            error_of(env.chat(KEY_AUTO, json!({"messages": user("hi")})).await).await;
        assert_eq!((status, error["param"].as_str()), (400, Some("model")));
        let (status, error) =
            error_of(env.chat(KEY_AUTO, json!({"model": "test-gpt"})).await).await;
        assert_eq!((status, error["param"].as_str()), (400, Some("messages")));

        let malformed = env
            .http
            .post(env.url("/v1/chat/completions"))
            .bearer_auth(KEY_AUTO)
            .body("{\"model\": \"test-gpt\", \"messages\": [")
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(malformed).await;
        assert_eq!(status, 400);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("not valid JSON"),
            "{error}"
        );

        let huge = "x".repeat(10_000);
        let (status, error) = error_of(
            env.chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user(&huge)}),
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, error["code"].as_str()),
            (413, Some("request_too_large"))
        );

        let unknown_path = env.http.get(env.url("/v1/nothing")).send().await.unwrap();
        assert_eq!(unknown_path.status(), 404);
        env.finish().await;
    }
}

#[tokio::test]
async fn a_call_is_relayed_metered_and_charged_from_the_catalog_price() {
    for store in stores().await {
        let env = env(store).await;
        let response = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("Hello there"), "seed": 7}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let overhead: u64 = response.headers()["x-modelrouter-overhead-us"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(overhead > 0);
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["model"], "test-gpt");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Mock reply to: Hello there"
        );

        // The upstream saw the provider credential and the upstream model name — never the
        // customer's key — and unknown fields passed through.
        let seen = env.mock.requests().await;
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0]["authorization"],
            format!("Bearer {UPSTREAM_CREDENTIAL}")
        );
        assert_eq!(seen[0]["body"]["model"], "upstream-gpt");
        assert_eq!(seen[0]["body"]["seed"], 7);

        let (store, db) = env.finish().await;
        let tenant = tenant_id(&db, "acme@example.com").await;
        let calls = usage::calls(&db, Some(&tenant), 10).await.unwrap();
        assert_eq!(calls.len(), 1, "{}", store.name);
        let call = &calls[0];
        assert_eq!(call.request_id, request_id);
        // prompt: 2 words + 3 = 5 tokens; reply: 5 words. 5×2 + 5×8 = 50 micro-units.
        assert_eq!((call.input_tokens, call.output_tokens), (Some(5), Some(5)));
        assert_eq!(call.cached_tokens, Some(0));
        assert_eq!(call.reasoning_tokens, None, "absent stays absent");
        assert_eq!(call.cost, 50);
        assert_eq!(call.attempts, 1);
        assert_eq!(call.provider.as_deref(), Some("mock-openai"));
        assert!(!call.estimated);
        // The event carries who and where: the system actor, the request id, the client address.
        let events = db.read_events(Default::default(), 10_000).await.unwrap();
        let event = events
            .iter()
            .find(|e| e.aggregate_type == "InferenceCall")
            .unwrap();
        assert_eq!(event.aggregate_id, request_id);
        assert_eq!(event.metadata["request_id"], request_id);
        assert_eq!(event.metadata["client_ip"], "127.0.0.1");
        assert_eq!(event.metadata["actor"], "system");
        let balance = balances::balance_of(&db, &tenant).await.unwrap().unwrap();
        assert_eq!(balance.balance, 100_000_000 - 50);
        assert_eq!(balance.outstanding, 0, "leases are released at shutdown");
    }
}

fn frames(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn streams_are_relayed_chunk_by_chunk_with_usage_only_when_asked() {
    for store in stores().await {
        let env = env(store).await;
        let plain = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "stream": true, "messages": user("one two three")}),
            )
            .await;
        assert_eq!(plain.status(), 200);
        assert_eq!(plain.headers()["content-type"], "text/event-stream");
        let frames_plain = frames(&plain.text().await.unwrap());
        assert_eq!(frames_plain.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = frames_plain[..frames_plain.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Mock reply to: one two three");
        assert!(
            chunks.iter().all(|c| c.get("usage").is_none()),
            "no usage unless asked"
        );
        assert!(chunks.iter().all(|c| c["model"] == "test-gpt"));
        assert_eq!(
            chunks.len(),
            1 + 6 + 1,
            "role chunk, one per word, finish chunk"
        );

        let asked = env
            .chat(KEY_AUTO, json!({"model": "test-gpt", "stream": true, "stream_options": {"include_usage": true}, "messages": user("one two three")}))
            .await;
        let frames_asked = frames(&asked.text().await.unwrap());
        let usage_chunk: Value =
            serde_json::from_str(&frames_asked[frames_asked.len() - 2]).unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["usage"]["prompt_tokens"], 6);
        assert_eq!(usage_chunk["usage"]["completion_tokens"], 6);

        // Both asked the upstream for usage, so both are metered exactly.
        let seen = env.mock.requests().await;
        assert!(seen
            .iter()
            .all(|r| r["body"]["stream_options"]["include_usage"] == true));
        let (_store, db) = env.finish().await;
        let calls = usage::calls(&db, None, 10).await.unwrap();
        assert_eq!(calls.len(), 2);
        for call in calls {
            assert!(call.stream);
            assert_eq!(
                (call.input_tokens, call.output_tokens, call.cost),
                (Some(6), Some(6), 60)
            );
            assert!(call.ttft_ms.is_some());
        }
    }
}

#[tokio::test]
async fn no_balance_is_402_and_nothing_reaches_the_upstream() {
    for store in stores().await {
        let env = env(store).await;
        let (status, error) = error_of(
            env.chat(
                KEY_BROKE,
                json!({"model": "test-gpt", "messages": user("hi")}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 402);
        assert_eq!(error["type"], "insufficient_quota");
        assert!(env.mock.requests().await.is_empty());
        env.finish().await;
    }
}

#[tokio::test]
async fn upstream_failures_map_to_429_502_504_and_retries_happen_before_the_first_byte() {
    for store in stores().await {
        let env = env_with(store, 0, |s| {
            s.upstream_first_byte_timeout = std::time::Duration::from_millis(300)
        })
        .await;
        let (status, error) = error_of(
            env.chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("hi [mock:status=400]")}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 400, "{error}");
        let rate_limited = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("hi [mock:status=429]")}),
            )
            .await;
        assert_eq!(rate_limited.headers()["x-should-retry"], "true");
        assert_eq!(error_of(rate_limited).await.0, 429);
        let (status, error) = error_of(
            env.chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("hi [mock:status=500]")}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 502);
        assert!(
            !error["message"].as_str().unwrap().contains("mock fault"),
            "upstream bodies are never forwarded"
        );
        let (status, _) = error_of(
            env.chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("hi [mock:delay_ms=2000]")}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 504);
        // One failure, then success on the second attempt (the route allows two).
        let retried = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("retry me [mock:fail_first=1]")}),
            )
            .await;
        assert_eq!(retried.status(), 200);

        let (_store, db) = env.finish().await;
        let calls = usage::calls(&db, None, 10).await.unwrap();
        let by_status = |s: i64| calls.iter().filter(|c| c.status == s).count();
        assert_eq!(
            (
                by_status(400),
                by_status(429),
                by_status(502),
                by_status(504),
                by_status(200)
            ),
            (1, 1, 1, 1, 1)
        );
        assert!(
            calls
                .iter()
                .filter(|c| c.status != 200)
                .all(|c| c.cost == 0),
            "failed calls cost nothing"
        );
        let ok = calls.iter().find(|c| c.status == 200).unwrap();
        assert_eq!(ok.attempts, 2);
        // 429 and 5xx are retried (two attempts each), 400 is not.
        assert_eq!(calls.iter().find(|c| c.status == 400).unwrap().attempts, 1);
        assert_eq!(calls.iter().find(|c| c.status == 502).unwrap().attempts, 2);
    }
}

#[tokio::test]
async fn a_stream_cut_upstream_ends_with_an_in_band_error_and_an_estimated_charge() {
    for store in stores().await {
        let env = env(store).await;
        let response = env
            .chat(KEY_AUTO, json!({"model": "test-gpt", "stream": true, "messages": user("[mock:words=50] [mock:cut_after=3]")}))
            .await;
        assert_eq!(response.status(), 200);
        let frames = frames(&response.text().await.unwrap());
        let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
        assert!(last["error"]["message"].is_string(), "{last}");
        assert!(!frames.iter().any(|f| f == "[DONE]"));
        let (_store, db) = env.finish().await;
        let call = usage::calls(&db, None, 1).await.unwrap().remove(0);
        assert_eq!(call.status, 502);
        assert!(
            call.estimated,
            "usage never came, output was delivered: estimated"
        );
        assert!(call.cost > 0);
    }
}

#[tokio::test]
async fn no_input_makes_the_gateway_fail_with_a_5xx() {
    for store in stores().await {
        let env = env(store).await;
        let bodies: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            b"\"text\"".to_vec(),
            vec![0xff, 0xfe, 0x00, 0x7b],
            br#"{"model": 5, "messages": []}"#.to_vec(),
            br#"{"model": "test-gpt", "messages": "hi"}"#.to_vec(),
            br#"{"model": "test-gpt", "messages": [null]}"#.to_vec(),
            br#"{"model": "test-gpt", "messages": [{"role": "wizard"}]}"#.to_vec(),
            br#"{"model": "test-gpt", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}"#.to_vec(),
            br#"{"model": "test-gpt", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}"#.to_vec(),
            br#"{"model": "test-gpt", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}"#.to_vec(),
            br#"{"model": "test-gpt", "messages": [{"role": "user", "content": "x"}], "n": 100000}"#.to_vec(),
            "{\"model\": \"test-gpt\", \"messages\": [{\"role\": \"user\", \"content\": \"\u{1F600}\u{0}\"}], \"stream_options\": 3}".as_bytes().to_vec(),
            format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ];
        for body in bodies {
            let response = env
                .http
                .post(env.url("/v1/chat/completions"))
                .bearer_auth(KEY_AUTO)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap_or(Value::Null);
            assert!(
                status == 200 || (400..500).contains(&status),
                "{}: {status} for {:?}",
                env.store.name,
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(80)
                    .collect::<String>()
            );
            if status != 200 {
                assert!(
                    json["error"]["message"].is_string(),
                    "envelope for {status}: {json}"
                );
            }
        }
        // Still serving.
        let ok = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("still here")}),
            )
            .await;
        assert_eq!(ok.status(), 200);
        env.finish().await;
    }
}

/// Responses never wait for metering: with the store unable to take writes and the metering
/// queue full, calls (streams included) still complete, and every call is recorded once the
/// store accepts writes again.
#[tokio::test]
async fn a_stalled_store_never_holds_responses_and_loses_no_metering() {
    let store = stores().await.remove(0); // SQLite: the write lock is this process's to hold.
    let env = env_with(store, 0, |s| s.metering_batch = 1).await; // a queue of 64 records
    assert_eq!(
        env.chat(
            KEY_AUTO,
            json!({"model": "test-gpt", "messages": user("warm up")})
        )
        .await
        .status(),
        200
    );
    let db = env.store.core().await.db;
    let stalled = db.write_lock().await.expect("SQLite has a write lock");
    let calls = async {
        for i in 0..80 {
            let r = env
                .chat(
                    KEY_AUTO,
                    json!({"model": "test-gpt", "messages": user(&format!("call {i}"))}),
                )
                .await;
            assert_eq!(r.status(), 200);
        }
        let stream = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "stream": true, "messages": user("stream")}),
            )
            .await;
        assert!(stream.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), calls)
        .await
        .expect("responses waited for the stalled store");
    drop(stalled);
    let (_store, db) = env.finish().await;
    assert_eq!(usage::calls(&db, None, 1000).await.unwrap().len(), 82);
}

/// Sends a whole `count_tokens` request of `spaces` spaces on its own connection and returns
/// the connection, to read the answer from later.
async fn send_count_tokens(addr: std::net::SocketAddr, spaces: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let body = format!(
        r#"{{"model":"test-gpt","messages":[{{"role":"user","content":"{}"}}]}}"#,
        " ".repeat(spaces)
    );
    let head = format!(
        "POST /v1/messages/count_tokens HTTP/1.1\r\nhost: gateway\r\nx-api-key: {KEY_AUTO}\r\n\
         anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body.as_bytes()).await.unwrap();
    socket
}

/// One runtime worker only: if any request's work held it, nothing else could be answered.
/// Liveness probes run back to back while two callers count megabytes of tokens; the longest
/// wait for a probe must be a small part of the whole count (a ratio, so a slow machine does
/// not change the verdict). Work held on the worker would stall every probe for the length of
/// one whole count.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn counting_megabytes_of_tokens_never_stalls_other_requests() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;
    use tokio::io::AsyncReadExt;

    let store = stores().await.remove(0);
    let env = env(store).await;
    let mut counting = Vec::new();
    // Two callers, each with ~7 MB of spaces: the worst case for a byte-pair encoder.
    for _ in 0..2 {
        counting.push(send_count_tokens(env.server.addr, 7 * 1024 * 1024).await);
    }
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let (http, url, done) = (env.http.clone(), env.url("/health/live"), done.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let live = http.get(&url).send().await.unwrap();
                assert_eq!(live.status(), 200);
                answers.push(Instant::now());
            }
            answers
        })
    };
    for mut socket in counting {
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response:.300}");
        let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["estimated"], true, "{body}");
        assert!(body["input_tokens"].as_u64().unwrap() > 0, "{body}");
    }
    let finished = Instant::now();
    done.store(true, Ordering::SeqCst);
    let answers = prober.await.unwrap();
    let mut marks = vec![started];
    marks.extend(answers.iter().copied().filter(|at| *at < finished));
    marks.push(finished);
    let longest_wait = marks.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    let whole = finished - started;
    assert!(
        longest_wait * 5 < whole,
        "a probe waited {longest_wait:?} of the counts' {whole:?} ({} probes answered)",
        answers.len()
    );
    env.finish().await;
}

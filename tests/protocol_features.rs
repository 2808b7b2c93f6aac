//! Translation features across protocols through a spawned gateway and the mock upstream:
//! reasoning, cached tokens, limits, same-protocol relay, images, model lists, DashScope output
//! modes, Anthropic auth and count_tokens.
#![allow(clippy::unwrap_used)]

mod common;
mod matrix;

use common::*;
use matrix::*;
use serde_json::json;

#[tokio::test]
async fn the_model_list_answers_in_the_anthropic_shape_when_asked() {
    let env = matrix_env().await;
    let anthropic: serde_json::Value = env
        .http
        .get(env.url("/v1/models"))
        .header("x-api-key", KEY_AUTO)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = anthropic["data"].as_array().unwrap();
    assert!(
        data.iter()
            .all(|m| m["type"] == "model" && m["created_at"].is_string()),
        "{anthropic}"
    );
    let claude = data.iter().find(|m| m["id"] == "via-anthropic").unwrap();
    assert_eq!(claude["display_name"], "via-anthropic");
    assert_eq!(anthropic["has_more"], false);
    assert_eq!(anthropic["first_id"], data[0]["id"]);

    let openai: serde_json::Value = env
        .http
        .get(env.url("/v1/models"))
        .bearer_auth(KEY_AUTO)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openai["object"], "list");

    let denied = env
        .http
        .get(env.url("/v1/models"))
        .header("x-api-key", "sk-mr-wrong-key-000000000000000")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let body: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    env.finish().await;
}

#[tokio::test]
async fn dashscope_clients_get_cumulative_streams_and_the_text_format_from_any_upstream() {
    let env = matrix_env().await;
    let mut failures = Vec::new();
    for model in UPSTREAMS {
        let body = json!({"model": model, "input": {"messages": [{"role": "user", "content": "one two three"}]},
            "parameters": {"result_format": "message", "incremental_output": false}});
        let response = env
            .http
            .post(env.url("/api/v1/services/aigc/text-generation/generation"))
            .bearer_auth(KEY_AUTO)
            .header("X-DashScope-SSE", "enable")
            .json(&body)
            .send()
            .await
            .unwrap();
        check(
            &mut failures,
            response.headers().contains_key("x-request-id"),
            format!("{model}: X-Request-ID"),
        );
        let texts: Vec<String> = frames(&response.text().await.unwrap())
            .into_iter()
            .filter_map(|(_, data)| serde_json::from_str::<serde_json::Value>(&data).ok())
            .filter_map(|v| {
                v["output"]["choices"][0]["message"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .filter(|t| !t.is_empty())
            .collect();
        let growing = texts.windows(2).all(|w| w[1].starts_with(&w[0]));
        check(
            &mut failures,
            growing && texts.last().map(String::as_str) == Some("Mock reply to: one two three"),
            format!("{model}: cumulative texts {texts:?}"),
        );

        let body = json!({"model": model, "input": {"prompt": "Hello there"}, "parameters": {"result_format": "text"}});
        let whole: serde_json::Value = env
            .http
            .post(env.url("/api/v1/services/aigc/text-generation/generation"))
            .bearer_auth(KEY_AUTO)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        check(
            &mut failures,
            whole["output"]["text"] == "Mock reply to: Hello there"
                && whole["output"]["finish_reason"] == "stop",
            format!("{model}: text format {whole}"),
        );
        check(
            &mut failures,
            whole["usage"]["total_tokens"] == 10,
            format!("{model}: total tokens {whole}"),
        );
    }
    env.finish().await;
    assert_no_failures(&failures);
}

#[tokio::test]
async fn anthropic_clients_may_use_bearer_and_count_tokens_anywhere() {
    let env = matrix_env().await;
    let body = json!({"model": "via-openai", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello there"}]});
    let bearer: serde_json::Value = env
        .http
        .post(env.url("/v1/messages"))
        .bearer_auth(KEY_AUTO)
        .header("anthropic-version", "2099-01-01")
        .header("anthropic-beta", "anything-2099")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        bearer["content"][0]["text"], "Mock reply to: Hello there",
        "{bearer}"
    );

    let missing = env
        .http
        .post(env.url("/v1/messages"))
        .header("x-api-key", KEY_AUTO)
        .json(&json!({"model": "via-openai", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let error: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{error}"
    );

    for (model, exact) in [
        ("via-anthropic", true),
        ("via-openai", false),
        ("via-dashscope", false),
    ] {
        let count: serde_json::Value = env
            .http
            .post(env.url("/v1/messages/count_tokens"))
            .header("x-api-key", KEY_AUTO)
            .json(
                &json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}]}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tokens = count["input_tokens"].as_u64().unwrap_or(0);
        assert!(tokens > 0, "{model}: {count}");
        if exact {
            // The mock counts words + 3 per message.
            assert_eq!(
                (tokens, count.get("estimated")),
                (5, None),
                "{model}: {count}"
            );
        } else {
            assert_eq!(count["estimated"], true, "{model}: {count}");
        }
    }
    env.finish().await;
}

#[tokio::test]
async fn reasoning_lands_in_each_protocols_reasoning_field_never_in_the_text() {
    let env = matrix_env().await;
    let mut failures = Vec::new();
    for model in UPSTREAMS {
        let openai = post_json(&env, Client::OpenAi, model, "Hi [mock:thinking]").await;
        let message = &openai["choices"][0]["message"];
        check(
            &mut failures,
            message["content"] == "Mock reply to: Hi",
            format!("openai ← {model}: text {openai}"),
        );
        check(
            &mut failures,
            message["reasoning_content"] == "Thinking about it.",
            format!("openai ← {model}: reasoning {openai}"),
        );
        if model == "via-anthropic" {
            let signed = message["thinking_blocks"][0]["signature"] == "sig-mock-1";
            check(
                &mut failures,
                signed,
                format!("openai ← {model}: signature kept {openai}"),
            );
        }

        let anthropic = post_json(&env, Client::Anthropic, model, "Hi [mock:thinking]").await;
        let blocks = anthropic["content"].as_array().cloned().unwrap_or_default();
        check(
            &mut failures,
            blocks
                .first()
                .map(|b| b["type"] == "thinking" && b["thinking"] == "Thinking about it.")
                == Some(true),
            format!("anthropic ← {model}: thinking first {anthropic}"),
        );
        let text: String = blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect();
        check(
            &mut failures,
            text == "Mock reply to: Hi",
            format!("anthropic ← {model}: text {anthropic}"),
        );
        if model == "via-anthropic" {
            check(
                &mut failures,
                blocks[0]["signature"] == "sig-mock-1",
                format!("anthropic ← {model}: signature {anthropic}"),
            );
        }

        let dashscope = post_json(&env, Client::DashScope, model, "Hi [mock:thinking]").await;
        let message = &dashscope["output"]["choices"][0]["message"];
        check(
            &mut failures,
            message["content"] == "Mock reply to: Hi",
            format!("dashscope ← {model}: text {dashscope}"),
        );
        check(
            &mut failures,
            message["reasoning_content"] == "Thinking about it.",
            format!("dashscope ← {model}: reasoning {dashscope}"),
        );
    }
    env.finish().await;
    assert_no_failures(&failures);
}

#[tokio::test]
async fn cached_tokens_are_neither_double_counted_nor_free() {
    let env = matrix_env().await;
    let mut failures = Vec::new();
    // "Hello there [mock:cache_read=3]": 3 words + 3 = 6 input tokens, 3 of them cached.
    let text = "Hello there [mock:cache_read=3]";
    for model in ["via-openai", "via-anthropic", "via-dashscope"] {
        let openai = post_json(&env, Client::OpenAi, model, text).await;
        let usage = &openai["usage"];
        check(
            &mut failures,
            usage["prompt_tokens"] == 6 && usage["prompt_tokens_details"]["cached_tokens"] == 3,
            format!("openai ← {model}: {usage}"),
        );
        let anthropic = post_json(&env, Client::Anthropic, model, text).await;
        let usage = &anthropic["usage"];
        check(
            &mut failures,
            usage["input_tokens"] == 3 && usage["cache_read_input_tokens"] == 3,
            format!("anthropic ← {model}: {usage}"),
        );
    }
    let (_store, db) = env.finish().await;
    let calls = modelrouter_projections::sql::usage::calls(&db, None, 1000)
        .await
        .unwrap();
    for call in calls.iter().filter(|c| c.model.starts_with("via-")) {
        // 3 uncached × 1 + 3 cached × 0.5 + 5 output × 2 = 3 + 1.5 + 10 → 15 (rounded up).
        let ok = call.input_tokens == Some(6) && call.cached_tokens == Some(3) && call.cost == 15;
        check(
            &mut failures,
            ok,
            format!(
                "metered {} via {}: {:?}",
                call.inbound_protocol, call.model, call
            ),
        );
    }
    assert_no_failures(&failures);
}

#[tokio::test]
async fn n_above_one_is_a_clear_400_where_unsupported_and_minimax_temperature_is_clamped() {
    let env = matrix_env().await;
    for model in ["via-anthropic", "via-minimax"] {
        let response = env
            .http
            .post(env.url("/v1/chat/completions"))
            .bearer_auth(KEY_AUTO)
            .json(&json!({"model": model, "n": 2, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{model}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["param"], "n", "{model}: {body}");
    }
    let clamped = env.http.post(env.url("/v1/chat/completions")).bearer_auth(KEY_AUTO)
        .json(&json!({"model": "via-minimax", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}))
        .send().await.unwrap();
    assert_eq!(
        clamped.status(),
        200,
        "MiniMax rejects temperature 0; the gateway clamps it"
    );
    let seen = env.mock.requests().await;
    let sent = seen
        .iter()
        .rev()
        .find(|r| r["path"] == "/v1/text/chatcompletion_v2")
        .unwrap();
    let temperature = sent["body"]["temperature"].as_f64().unwrap();
    assert!(temperature > 0.0 && temperature <= 1.0, "{sent}");
    env.finish().await;
}

#[tokio::test]
async fn same_protocol_bodies_are_forwarded_as_is_with_unknown_fields() {
    let env = matrix_env().await;
    let anthropic = json!({"model": "via-anthropic", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
        "future_field": {"kept": true}, "service_tier": "auto"});
    let ok = env
        .http
        .post(env.url("/v1/messages"))
        .header("x-api-key", KEY_AUTO)
        .json(&anthropic)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let dashscope = json!({"model": "via-dashscope", "input": {"messages": [{"role": "user", "content": "hi"}]},
        "parameters": {"result_format": "message", "enable_search": true, "vendor_knob": 7}});
    let ok = env
        .http
        .post(env.url("/api/v1/services/aigc/text-generation/generation"))
        .bearer_auth(KEY_AUTO)
        .json(&dashscope)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let seen = env.mock.requests().await;
    let to_anthropic = seen.iter().find(|r| r["path"] == "/v1/messages").unwrap();
    assert_eq!(to_anthropic["body"]["future_field"]["kept"], true);
    assert_eq!(to_anthropic["body"]["service_tier"], "auto");
    assert_eq!(to_anthropic["body"]["model"], "up-via-anthropic");
    assert_eq!(
        to_anthropic["x-api-key"], UPSTREAM_CREDENTIAL,
        "the provider credential, not the customer's key"
    );
    let to_dashscope = seen
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("text-generation"))
        })
        .unwrap();
    assert_eq!(to_dashscope["body"]["parameters"]["vendor_knob"], 7);
    assert_eq!(to_dashscope["body"]["parameters"]["enable_search"], true);
    env.finish().await;
}

#[tokio::test]
async fn untranslatable_requests_are_relayed_to_their_own_protocol_and_refused_elsewhere() {
    let env = matrix_env().await;
    let body = |model: &str| {
        json!({"model": model, "max_tokens": 64,
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
            "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A note."}},
                {"type": "text", "text": "Summarize"}]}]})
    };
    let relayed = env
        .http
        .post(env.url("/v1/messages"))
        .header("x-api-key", KEY_AUTO)
        .json(&body("via-anthropic"))
        .send()
        .await
        .unwrap();
    assert_eq!(relayed.status(), 200);
    let answer: serde_json::Value = relayed.json().await.unwrap();
    assert_eq!(answer["content"][0]["text"], "Mock reply to: Summarize");
    let seen = env.mock.requests().await;
    let sent = seen.iter().find(|r| r["path"] == "/v1/messages").unwrap();
    assert_eq!(
        sent["body"]["tools"][0]["type"], "web_search_20250305",
        "server tools go through untouched"
    );

    let refused = env
        .http
        .post(env.url("/v1/messages"))
        .header("x-api-key", KEY_AUTO)
        .json(&body("via-openai"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let error: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert_eq!(
        env.mock.requests().await.len(),
        seen.len(),
        "the other upstream was never called"
    );
    env.finish().await;
}

#[tokio::test]
async fn images_by_url_and_base64_reach_every_upstream_in_its_own_form() {
    let env = matrix_env().await;
    // A real PNG signature, declared as JPEG: the Anthropic encoder must trust the bytes.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    for model in UPSTREAMS {
        let body = json!({"model": model, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe these"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{png}")}}]}]});
        let response = env
            .http
            .post(env.url("/v1/chat/completions"))
            .bearer_auth(KEY_AUTO)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{model}");
    }
    let seen = env.mock.requests().await;
    let sent = |path_part: &str| {
        seen.iter()
            .find(|r| r["path"].as_str().is_some_and(|p| p.contains(path_part)))
            .cloned()
            .unwrap()
    };

    let anthropic = sent("/v1/messages");
    let blocks = anthropic["body"]["messages"][0]["content"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        blocks[1]["source"],
        json!({"type": "url", "url": "https://example.com/cat.png"})
    );
    assert_eq!(blocks[2]["source"]["type"], "base64");
    assert_eq!(
        blocks[2]["source"]["media_type"], "image/png",
        "sniffed from the bytes"
    );
    assert_eq!(blocks[2]["source"]["data"], png);

    let dashscope = sent("multimodal-generation");
    let content = dashscope["body"]["input"]["messages"][0]["content"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        content
            .iter()
            .any(|p| p["image"] == "https://example.com/cat.png"),
        "{dashscope}"
    );
    assert!(
        content.iter().any(|p| p["text"] == "Describe these"),
        "{dashscope}"
    );

    for path in ["/v1/chat/completions", "/v1/text/chatcompletion_v2"] {
        let openai_style = sent(path);
        let parts = openai_style["body"]["messages"][0]["content"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(
            parts[1]["image_url"]["url"], "https://example.com/cat.png",
            "{path}"
        );
        assert!(
            parts[2]["image_url"]["url"]
                .as_str()
                .unwrap()
                .ends_with(png),
            "{path}"
        );
    }
    env.finish().await;
}

#[tokio::test]
async fn the_max_tokens_anthropic_requires_is_the_models_own_default() {
    let env = matrix_env().await;
    let ok = env
        .http
        .post(env.url("/v1/chat/completions"))
        .bearer_auth(KEY_AUTO)
        .json(&json!({"model": "via-anthropic", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let seen = env.mock.requests().await;
    let sent = seen.iter().find(|r| r["path"] == "/v1/messages").unwrap();
    assert_eq!(sent["body"]["max_tokens"], 777, "{sent}");
    env.finish().await;
}

/// Anthropic clients of a translated stream get keep-alive pings while the upstream is silent
/// (protocols.md §6.1), and the content is unchanged around them.
#[tokio::test]
async fn silent_upstreams_send_anthropic_clients_keep_alive_pings() {
    let env =
        matrix_env_with(|s| s.stream_ping_every = std::time::Duration::from_millis(100)).await;
    let body = json!({"model": "via-openai", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "[mock:words=3] [mock:chunk_delay_ms=300]"}]});
    let response = env
        .http
        .post(env.url("/v1/messages"))
        .header("x-api-key", KEY_AUTO)
        .json(&body)
        .send()
        .await
        .unwrap();
    let frames = frames(&response.text().await.unwrap());
    let names: Vec<&str> = frames.iter().filter_map(|(e, _)| e.as_deref()).collect();
    let first_delta = names
        .iter()
        .position(|n| *n == "content_block_delta")
        .unwrap();
    let pings_between = names[first_delta..]
        .iter()
        .filter(|n| **n == "ping")
        .count();
    assert!(
        pings_between >= 2,
        "pings while the upstream waited 300 ms between chunks: {names:?}"
    );
    assert_eq!(names.last(), Some(&"message_stop"));
    let text: String = frames
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("content_block_delta"))
        .filter_map(|(_, d)| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "w1 w2 w3");
    env.finish().await;
}

/// A DashScope request as its client posts it.
async fn dashscope_call(env: &Env, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = env
        .http
        .post(env.url("/api/v1/services/aigc/text-generation/generation"))
        .bearer_auth(KEY_AUTO)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn dashscope_requests_are_checked_the_same_whichever_upstream_serves_them() {
    let env = matrix_env().await;
    let input = json!({"messages": [{"role": "user", "content": "hi"}]});
    // Token-id stop sequences are valid DashScope that cannot be translated: such a request is
    // relayed only to a DashScope upstream, after the same checks as any other.
    let token_stop = json!([[37763, 367]]);
    for model in UPSTREAMS {
        for stop in [None, Some(&token_stop)] {
            for (name, value) in [
                ("max_tokens", json!(-5)),
                ("max_tokens", json!(0)),
                ("n", json!(9)),
            ] {
                let mut parameters = json!({"result_format": "message"});
                parameters[name] = value.clone();
                if let Some(stop) = stop {
                    parameters["stop"] = stop.clone();
                }
                let before = env.mock.requests().await.len();
                let (status, body) = dashscope_call(
                    &env,
                    json!({"model": model, "input": input, "parameters": parameters}),
                )
                .await;
                let what = format!("{model} {name}={value} stop={stop:?}: {body}");
                assert_eq!(status, 400, "{what}");
                assert_eq!(body["code"], "InvalidParameter", "{what}");
                assert_eq!(
                    env.mock.requests().await.len(),
                    before,
                    "no upstream call: {what}"
                );
            }
        }
    }
    // The balance hold counts every choice asked for on the relay path too: 4 choices of 20M
    // output tokens (2 µ each) are more than the tenant's 100 units; one choice is not.
    for (n, refused) in [(1, false), (4, true)] {
        let (status, body) = dashscope_call(
            &env,
            json!({"model": "via-dashscope", "input": input, "parameters":
                {"result_format": "message", "stop": token_stop, "n": n, "max_tokens": 20_000_000}}),
        )
        .await;
        if refused {
            // DashScope's own envelope for a balance that does not cover the call.
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some("Arrearage")),
                "{body}"
            );
        } else {
            assert_eq!(status, 200, "n={n}: {body}");
        }
    }
    env.finish().await;
}

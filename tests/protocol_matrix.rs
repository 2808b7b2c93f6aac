//! Every customer protocol × every upstream protocol through a spawned gateway and the mock
//! upstream: text, streaming, tool calls, upstream errors, auth — read the way each protocol's
//! client reads them. Each test collects every failing combination before asserting.
#![allow(clippy::unwrap_used)]

mod common;
mod matrix;

use common::*;
use matrix::*;
use serde_json::json;

async fn matrix_env() -> Env {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let core = env.store.core().await;
    import_text(&core, &matrix_catalog(env.mock.addr)).await;
    // The serving replica picks the import up from the log.
    let core_position = core.db.head().await.unwrap();
    drop(core);
    let http = env.http.clone();
    let url = env.url("/v1/models");
    assert!(
        eventually(std::time::Duration::from_secs(5), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let body: serde_json::Value = http
                    .get(url)
                    .bearer_auth(KEY_AUTO)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["id"] == "via-minimax")
            }
        })
        .await,
        "matrix catalog reached the replica (head {core_position:?})"
    );
    env
}

fn check(failures: &mut Vec<String>, ok: bool, what: String) {
    if !ok {
        failures.push(what);
    }
}

#[tokio::test]
async fn plain_text_whole_and_streamed_with_usage_in_every_combination() {
    let env = matrix_env().await;
    let mut failures = Vec::new();
    for client in CLIENTS {
        for model in UPSTREAMS {
            for stream in [false, true] {
                let r = call(&env, client, KEY_AUTO, model, "Hello there", stream, false).await;
                let what = format!("{client:?} → {model} stream={stream}: {r:?}");
                check(&mut failures, r.status == 200, format!("status {what}"));
                check(
                    &mut failures,
                    r.text == "Mock reply to: Hello there",
                    format!("text {what}"),
                );
                check(
                    &mut failures,
                    r.input_tokens == Some(5),
                    format!("input usage {what}"),
                );
                check(
                    &mut failures,
                    r.output_tokens == Some(5),
                    format!("output usage {what}"),
                );
                let natural_end = matches!(r.finish.as_deref(), Some("stop" | "end_turn"));
                check(&mut failures, natural_end, format!("finish {what}"));
            }
        }
    }
    let (_store, db) = env.finish().await;
    let calls = modelrouter_projections::sql::usage::calls(&db, None, 1000)
        .await
        .unwrap();
    for client in ["openai", "anthropic", "dashscope"] {
        let metered: Vec<_> = calls
            .iter()
            .filter(|c| c.inbound_protocol == client && c.model.starts_with("via-"))
            .collect();
        check(
            &mut failures,
            metered.len() == 8,
            format!("{client}: {} calls metered, 8 expected", metered.len()),
        );
        for c in metered {
            // 5 input × 1 + 5 output × 2 = 15 micro-units.
            check(
                &mut failures,
                c.cost == 15 && !c.estimated,
                format!(
                    "{client} {} cost {} estimated {}",
                    c.model, c.cost, c.estimated
                ),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn tool_calls_whole_and_streamed_in_every_combination() {
    let env = matrix_env().await;
    let mut failures = Vec::new();
    for client in CLIENTS {
        for model in UPSTREAMS {
            for stream in [false, true] {
                let r = call(
                    &env,
                    client,
                    KEY_AUTO,
                    model,
                    "Weather please [mock:tool_call]",
                    stream,
                    true,
                )
                .await;
                let what = format!("{client:?} → {model} stream={stream}: {r:?}");
                check(&mut failures, r.status == 200, format!("status {what}"));
                check(
                    &mut failures,
                    r.tool_name.as_deref() == Some("get_weather"),
                    format!("tool name {what}"),
                );
                check(
                    &mut failures,
                    r.tool_arguments == Some(json!({"city": "Paris"})),
                    format!("tool arguments {what}"),
                );
                let tool_end = matches!(r.finish.as_deref(), Some("tool_calls" | "tool_use"));
                check(&mut failures, tool_end, format!("finish {what}"));
            }
        }
    }
    env.finish().await;
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn errors_come_back_in_the_callers_envelope_in_every_combination() {
    let env = matrix_env().await;
    let mut failures = Vec::new();
    // (directive, expected status per client: OpenAI, Anthropic, DashScope)
    let cases = [
        ("[mock:status=429]", [429, 429, 429]),
        ("[mock:status=500]", [502, 502, 500]),
    ];
    for (i, client) in CLIENTS.into_iter().enumerate() {
        for model in UPSTREAMS {
            for (directive, statuses) in cases {
                let r = call(
                    &env,
                    client,
                    KEY_AUTO,
                    model,
                    &format!("hi {directive}"),
                    false,
                    false,
                )
                .await;
                let what = format!("{client:?} → {model} {directive}: {r:?}");
                check(
                    &mut failures,
                    r.status == statuses[i],
                    format!("status {what}"),
                );
                check(
                    &mut failures,
                    r.error_kind.is_some() && r.error_message.is_some(),
                    format!("envelope {what}"),
                );
                let leaked = r
                    .error_message
                    .as_deref()
                    .is_some_and(|m| m.contains("mock fault"));
                check(
                    &mut failures,
                    !leaked,
                    format!("upstream body leaked {what}"),
                );
            }
        }
        let r = call(
            &env,
            client,
            "sk-mr-wrong-key-000000000000000",
            "via-openai",
            "hi",
            false,
            false,
        )
        .await;
        check(
            &mut failures,
            r.status == 401 && r.error_kind.is_some(),
            format!("{client:?} invalid key: {r:?}"),
        );
        let expected = match client {
            Client::OpenAi => "invalid_request_error",
            Client::Anthropic => "authentication_error",
            Client::DashScope => "InvalidApiKey",
        };
        check(
            &mut failures,
            r.error_kind.as_deref() == Some(expected),
            format!("{client:?} 401 kind: {r:?}"),
        );
    }
    env.finish().await;
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

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

/// A failure after the first byte goes out in-band, in the caller's own stream framing, and the
/// call is metered with the error status.
#[tokio::test]
async fn mid_stream_failures_arrive_in_band_in_every_combination() {
    let env = matrix_env().await;
    let mut failures = Vec::new();
    for client in CLIENTS {
        for model in UPSTREAMS {
            for directive in ["[mock:stream_error]", "[mock:words=20] [mock:cut_after=2]"] {
                let r = call(
                    &env,
                    client,
                    KEY_AUTO,
                    model,
                    &format!("Hello {directive}"),
                    true,
                    false,
                )
                .await;
                let what = format!("{client:?} → {model} {directive}: {r:?}");
                check(&mut failures, r.status == 200, format!("status {what}"));
                check(
                    &mut failures,
                    !r.text.is_empty(),
                    format!("some text first {what}"),
                );
                check(
                    &mut failures,
                    r.error_kind.is_some(),
                    format!("in-band error {what}"),
                );
                check(
                    &mut failures,
                    r.finish.is_none() || client == Client::Anthropic,
                    format!("no normal finish {what}"),
                );
            }
        }
    }
    let (_store, db) = env.finish().await;
    let calls = modelrouter_projections::sql::usage::calls(&db, None, 1000)
        .await
        .unwrap();
    let broken = calls
        .iter()
        .filter(|c| c.model.starts_with("via-") && c.status >= 500)
        .count();
    check(
        &mut failures,
        broken == 24,
        format!("{broken} broken streams metered as failures, 24 expected"),
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// DashScope clients choose cumulative output and the text format; both hold whatever the
/// upstream protocol.
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
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The official Anthropic SDK sends Bearer; count_tokens answers from an Anthropic upstream and
/// estimates (saying so) in front of the others.
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

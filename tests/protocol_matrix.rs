//! Every customer protocol × every upstream protocol through a spawned gateway and the mock
//! upstream: text, streaming, tool calls, upstream errors, auth, mid-stream failures — read the
//! way each protocol's client reads them. Each test collects every failing combination before
//! asserting.
#![allow(clippy::unwrap_used)]

mod common;
mod matrix;

use common::*;
use matrix::*;
use serde_json::json;

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
    assert_no_failures(&failures);
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
    assert_no_failures(&failures);
}

#[tokio::test]
async fn errors_come_back_in_the_callers_envelope_in_every_combination() {
    let env = matrix_env().await;
    let mut failures = Vec::new();
    // (directive, expected status per client: OpenAI, Anthropic, DashScope)
    let cases = [
        ("[mock:status=429]", [429, 429, 429]),
        ("[mock:status=500]", [502, 502, 500]),
        // A provider that refuses the platform (its credential, the configured model or URL)
        // is the platform's failure, never the customer's mistake.
        ("[mock:status=401]", [502, 502, 500]),
        ("[mock:status=403]", [502, 502, 500]),
        ("[mock:status=404]", [502, 502, 500]),
    ];
    for (i, client) in CLIENTS.into_iter().enumerate() {
        for model in UPSTREAMS {
            // Streams too: a stream that fails before any output is an ordinary failure with a
            // real HTTP status — even from DashScope, which reports it inside an HTTP 200 stream.
            let variants = cases.into_iter().flat_map(|c| [(c, false), (c, true)]);
            for ((directive, statuses), stream) in variants {
                let text = format!("hi {directive}");
                let r = call(&env, client, KEY_AUTO, model, &text, stream, false).await;
                let what = format!("{client:?} → {model} {directive} stream={stream}: {r:?}");
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
                    .is_some_and(|m| m.contains("mock fault") || m.contains("refused"));
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
    assert_no_failures(&failures);
}

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
    assert_no_failures(&failures);
}

#[tokio::test]
async fn streams_read_the_same_however_the_upstream_cuts_its_bytes_in_every_combination() {
    // A buffering proxy, a short reply in one TCP segment or `Content-Length` deliver a stream
    // in one piece; networks cut it anywhere. The client must read the same, to the end.
    let env = matrix_env().await;
    let mut failures = Vec::new();
    for client in CLIENTS {
        for model in UPSTREAMS {
            for tools in [false, true] {
                let text = if tools {
                    "Weather? [mock:thinking] [mock:tool_call]"
                } else {
                    "Hello there [mock:thinking] [mock:words=30]"
                };
                let mut by_frame = call(&env, client, KEY_AUTO, model, text, true, tools).await;
                // The mock counts the directives as input words.
                by_frame.input_tokens = None;
                let what = format!("{client:?} → {model} tools={tools}");
                check(
                    &mut failures,
                    by_frame.status == 200
                        && by_frame.finish.is_some()
                        && (by_frame.tool_name.is_some() || !tools),
                    format!("frame by frame {what}: {by_frame:?}"),
                );
                check(
                    &mut failures,
                    by_frame.output_tokens.is_some(),
                    format!("usage frame by frame {what}: {by_frame:?}"),
                );
                for cut in [
                    "[mock:one_piece]",
                    "[mock:random_cuts=1]",
                    "[mock:random_cuts=42]",
                ] {
                    let text = format!("{text} {cut}");
                    let mut r = call(&env, client, KEY_AUTO, model, &text, true, tools).await;
                    r.input_tokens = None;
                    check(
                        &mut failures,
                        r == by_frame,
                        format!("{cut} {what}: {r:?}\n  frame by frame: {by_frame:?}"),
                    );
                }
            }
        }
    }
    env.finish().await;
    assert_no_failures(&failures);
}

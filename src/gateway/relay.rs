//! Relaying an OpenAI-style SSE stream chunk by chunk: each upstream event is rewritten (public
//! model name, usage chunk dropped unless the client asked for it) and flushed at once; nothing
//! is buffered whole. A failure after the first byte goes out in-band as `data: {"error":…}`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::metering::{Meter, Outcome};
use super::ApiError;
use crate::protocol::openai::usage_from;
use crate::upstream::UpstreamError;

pub struct RelayOptions {
    pub public_model: String,
    pub include_usage: bool,
    pub idle_timeout: Duration,
}

/// Starts relaying `upstream` and returns the response body. Metering happens when the stream
/// ends, whether it completed, broke, or the client went away.
pub fn relay(upstream: reqwest::Response, options: RelayOptions, meter: Meter) -> Body {
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    tokio::spawn(pump(upstream, options, meter, sender));
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|frame| (Ok::<Bytes, Infallible>(frame), receiver))
    });
    Body::from_stream(stream)
}

fn frame(payload: &Value) -> Bytes {
    Bytes::from(format!("data: {payload}\n\n"))
}

/// Characters of visible output in a chunk (content, reasoning, tool arguments).
fn output_chars(chunk: &Value) -> u64 {
    let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
        return 0;
    };
    let mut chars = 0;
    for delta in choices.iter().filter_map(|c| c.get("delta")) {
        for field in ["content", "reasoning_content", "refusal"] {
            if let Some(text) = delta.get(field).and_then(Value::as_str) {
                chars += text.chars().count() as u64;
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    chars += args.chars().count() as u64;
                }
            }
        }
    }
    chars
}

async fn pump(
    upstream: reqwest::Response,
    options: RelayOptions,
    meter: Meter,
    sender: mpsc::Sender<Bytes>,
) {
    let started = meter.started;
    let mut events = upstream.bytes_stream().eventsource();
    let mut outcome = Outcome {
        status: 200,
        usage: None,
        delivered_chars: 0,
        ttft_ms: None,
    };
    loop {
        let next = tokio::time::timeout(options.idle_timeout, events.next()).await;
        let failure = match next {
            Err(_) => Some(ApiError::Upstream(UpstreamError::Timeout)),
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "upstream stream broke");
                Some(ApiError::Upstream(UpstreamError::Transport(
                    "stream interrupted".into(),
                )))
            }
            Ok(Some(Ok(event))) => {
                if event.data.trim() == "[DONE]" {
                    if sender
                        .send(Bytes::from_static(b"data: [DONE]\n\n"))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
                let Ok(mut chunk) = serde_json::from_str::<Value>(&event.data) else {
                    continue;
                };
                if chunk.get("error").is_some() {
                    Some(ApiError::Upstream(UpstreamError::Status {
                        status: 502,
                        message: None,
                    }))
                } else {
                    if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
                        outcome.usage = usage_from(usage);
                    }
                    let chars = output_chars(&chunk);
                    if chars > 0 && outcome.ttft_ms.is_none() {
                        outcome.ttft_ms = Some(started.elapsed().as_millis() as u64);
                    }
                    let usage_only = chunk
                        .get("choices")
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty);
                    if usage_only && !options.include_usage {
                        continue;
                    }
                    if let Value::Object(map) = &mut chunk {
                        map.insert("model".into(), Value::String(options.public_model.clone()));
                        if !options.include_usage {
                            map.remove("usage");
                        }
                    }
                    if sender.send(frame(&chunk)).await.is_err() {
                        // The client went away: stop reading, which closes the upstream call.
                        break;
                    }
                    outcome.delivered_chars += chars;
                    None
                }
            }
        };
        if let Some(error) = failure {
            outcome.status = error.status().as_u16();
            let _ = sender.send(frame(&error.to_json())).await;
            break;
        }
    }
    // End the client's body first: metering must never hold a finished stream open.
    drop(sender);
    meter.finish(outcome).await;
}

//! Streaming a response to the client chunk by chunk, never buffering it whole. The upstream's
//! SSE events go through its dialect's decoder (which always taps usage, first output and
//! errors); then either through the client dialect's encoder (translation) or, when both sides
//! speak the same dialect, out as they came with only the model name rewritten (relay). A failure
//! after the first byte goes out in-band, in the client's framing.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures::stream::{BoxStream, Fuse};
use futures::StreamExt;
use modelrouter_domain::provider::UpstreamProtocol;
use serde_json::Value;
use tokio::sync::mpsc;

use super::inbound::Inbound;
use super::metering::{Meter, Outcome};
use super::ApiError;
use crate::protocol::canonical::{StreamError, StreamEvent};
use crate::protocol::sse::{frame, SseEvent, SseParser};
use crate::protocol::{StreamDecoder, StreamEncoder};
use crate::upstream::{classify, UpstreamError};

/// An upstream stream that has been checked to start well: the events read while checking, and
/// the rest still to read.
pub struct UpstreamStream {
    bytes: Fuse<BoxStream<'static, Result<Bytes, reqwest::Error>>>,
    parser: SseParser,
    first: Vec<SseEvent>,
}

/// Reads the upstream stream up to its first output (or its end) before anything is sent to the
/// client. An upstream that fails before any output — DashScope does so inside an HTTP 200 — is
/// then an ordinary failed attempt: it may be retried or fall back, and the client gets the
/// error as a real HTTP status in its own envelope rather than in-band.
pub async fn open(
    response: reqwest::Response,
    protocol: UpstreamProtocol,
    choices: u32,
    idle_timeout: Duration,
) -> Result<UpstreamStream, UpstreamError> {
    let mut bytes = response.bytes_stream().boxed().fuse();
    let mut parser = SseParser::new();
    let mut probe = super::outbound::stream_decoder(protocol, choices);
    let mut first = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(idle_timeout, bytes.next()).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(error))) => return Err(classify(error)),
            Ok(Some(Ok(chunk))) => chunk,
        };
        for event in parser.feed(&chunk) {
            let decoded = probe.feed(&event);
            first.push(event);
            for canonical in &decoded {
                match canonical {
                    StreamEvent::Error(error) => {
                        return Err(UpstreamError::Status {
                            status: error.status,
                            message: None,
                        })
                    }
                    StreamEvent::Start { .. } | StreamEvent::Usage(_) => {}
                    _ => {
                        return Ok(UpstreamStream {
                            bytes,
                            parser,
                            first,
                        })
                    }
                }
            }
            if probe.done() {
                return Ok(UpstreamStream {
                    bytes,
                    parser,
                    first,
                });
            }
        }
    }
    Ok(UpstreamStream {
        bytes,
        parser,
        first,
    })
}

pub struct StreamPlan {
    /// The upstream dialect's decoder.
    pub decoder: Box<dyn StreamDecoder>,
    /// The client dialect's encoder; `None` relays the upstream's frames as they are.
    pub encoder: Option<Box<dyn StreamEncoder>>,
    pub inbound: Inbound,
    pub request_id: String,
    pub public_model: String,
    /// Whether an OpenAI client asked for the usage chunk (relay mode drops it otherwise).
    pub include_usage: bool,
    pub idle_timeout: Duration,
    /// Send a keep-alive ping this often while the upstream is silent (Anthropic clients of a
    /// translated stream; an Anthropic upstream sends its own).
    pub ping_every: Option<Duration>,
}

const ANTHROPIC_PING: &str = "event: ping\ndata: {\"type\":\"ping\"}\n\n";

/// What waiting for the next upstream chunk produced.
enum Next {
    Chunk(Option<Result<Bytes, reqwest::Error>>),
    IdleTimeout,
    ClientGone,
}

/// Waits for the next upstream chunk, pinging the client meanwhile when the plan says so.
async fn next_chunk(
    bytes: &mut Fuse<BoxStream<'static, Result<Bytes, reqwest::Error>>>,
    idle_timeout: Duration,
    ping_every: Option<Duration>,
    sender: &mpsc::Sender<Bytes>,
) -> Next {
    let deadline = tokio::time::Instant::now() + idle_timeout;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Next::IdleTimeout;
        }
        let wait = ping_every.map_or(deadline - now, |every| every.min(deadline - now));
        // `next()` is cancel-safe: a timed-out wait loses no data.
        match tokio::time::timeout(wait, bytes.next()).await {
            Ok(item) => return Next::Chunk(item),
            Err(_) if ping_every.is_some() && tokio::time::Instant::now() < deadline => {
                if sender
                    .send(Bytes::from_static(ANTHROPIC_PING.as_bytes()))
                    .await
                    .is_err()
                {
                    return Next::ClientGone;
                }
            }
            Err(_) => return Next::IdleTimeout,
        }
    }
}

/// Starts streaming `upstream` and returns the response body. Metering happens when the stream
/// ends — completed, broken, or abandoned by the client — after the body is closed.
pub fn relay(upstream: UpstreamStream, plan: StreamPlan, meter: Meter) -> Body {
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    tokio::spawn(pump(upstream, plan, meter, sender));
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|frame| (Ok::<Bytes, Infallible>(frame), receiver))
    });
    Body::from_stream(stream)
}

/// What the stream has told about the call so far.
struct Tally {
    outcome: Outcome,
    started: std::time::Instant,
}

impl Tally {
    fn note(&mut self, events: &[StreamEvent]) {
        for event in events {
            let output = match event {
                StreamEvent::TextDelta { text, .. } | StreamEvent::ReasoningDelta { text, .. } => {
                    text.as_str()
                }
                StreamEvent::ToolCallDelta { arguments, .. } => arguments.as_str(),
                StreamEvent::ToolCallStart { name, .. } => name.as_str(),
                StreamEvent::Usage(usage) => {
                    self.outcome
                        .usage
                        .get_or_insert_with(Default::default)
                        .merge(usage);
                    ""
                }
                StreamEvent::Error(error) => {
                    self.outcome.status = error.status;
                    ""
                }
                _ => "",
            };
            if !output.is_empty() {
                self.outcome.delivered.push(output);
                if self.outcome.ttft_ms.is_none() {
                    self.outcome.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
                }
            }
        }
    }
}

async fn pump(
    upstream: UpstreamStream,
    mut plan: StreamPlan,
    meter: Meter,
    sender: mpsc::Sender<Bytes>,
) {
    let mut tally = Tally {
        outcome: Outcome {
            status: 200,
            usage: None,
            delivered: Default::default(),
            ttft_ms: None,
        },
        started: meter.started,
    };
    let UpstreamStream {
        mut bytes,
        mut parser,
        first,
    } = upstream;
    let mut client_gone = false;
    let mut failure: Option<ApiError> = None;
    let mut pending = first;
    'read: loop {
        // Events read while the stream was checked come first.
        for event in std::mem::take(&mut pending) {
            for frame in handle_event(&mut plan, &mut tally, &event) {
                if sender.send(Bytes::from(frame)).await.is_err() {
                    client_gone = true;
                    break 'read;
                }
            }
            if tally.outcome.status != 200 || plan.decoder.done() {
                break 'read;
            }
        }
        let chunk = match next_chunk(&mut bytes, plan.idle_timeout, plan.ping_every, &sender).await
        {
            Next::ClientGone => {
                client_gone = true;
                break;
            }
            Next::IdleTimeout => {
                failure = Some(ApiError::Upstream(UpstreamError::Timeout));
                break;
            }
            Next::Chunk(None) => break,
            Next::Chunk(Some(Err(error))) => {
                tracing::warn!(%error, "upstream stream broke");
                failure = Some(ApiError::Upstream(UpstreamError::Transport(
                    "stream interrupted".into(),
                )));
                break;
            }
            Next::Chunk(Some(Ok(chunk))) => chunk,
        };
        for event in parser.feed(&chunk) {
            let frames = handle_event(&mut plan, &mut tally, &event);
            for frame in frames {
                if sender.send(Bytes::from(frame)).await.is_err() {
                    client_gone = true;
                    break 'read;
                }
            }
            if tally.outcome.status != 200 || plan.decoder.done() {
                break 'read;
            }
        }
    }
    if !client_gone {
        let mut frames = Vec::new();
        if let Some(event) = parser.finish().filter(|_| failure.is_none()) {
            frames.extend(handle_event(&mut plan, &mut tally, &event));
        }
        if let Some(error) = &failure {
            tally.outcome.status = error.status().as_u16();
            frames.extend(error_frames(&mut plan, error));
        } else if tally.outcome.status == 200 {
            let trailing = plan.decoder.finish();
            tally.note(&trailing);
            if let Some(encoder) = plan.encoder.as_mut() {
                frames.extend(trailing.iter().flat_map(|e| encoder.feed(e)));
                frames.extend(encoder.finish());
            }
        }
        for frame in frames {
            if sender.send(Bytes::from(frame)).await.is_err() {
                break;
            }
        }
    }
    // End the client's body first: metering must never hold a finished stream open.
    drop(sender);
    meter.finish(tally.outcome).await;
}

/// Decodes one upstream event and returns the frames to send for it.
fn handle_event(plan: &mut StreamPlan, tally: &mut Tally, event: &SseEvent) -> Vec<String> {
    let events: Vec<StreamEvent> = plan
        .decoder
        .feed(event)
        .into_iter()
        .map(own_error_message)
        .collect();
    tally.note(&events);
    if let Some(encoder) = plan.encoder.as_mut() {
        return events.iter().flat_map(|e| encoder.feed(e)).collect();
    }
    // Relay: an upstream error is rebuilt in the client's envelope, never forwarded raw.
    if let Some(StreamEvent::Error(error)) =
        events.iter().find(|e| matches!(e, StreamEvent::Error(_)))
    {
        let api = ApiError::Upstream(UpstreamError::Status {
            status: error.status,
            message: None,
        });
        return vec![plan.inbound.stream_error_frame(&api, &plan.request_id)];
    }
    relay_frame(plan, event).into_iter().collect()
}

/// An upstream's in-band error, restated in the gateway's words and status: the upstream's own
/// message (which may name the vendor) never reaches the client.
fn own_error_message(event: StreamEvent) -> StreamEvent {
    match event {
        StreamEvent::Error(error) => {
            let api = ApiError::Upstream(UpstreamError::Status {
                status: error.status,
                message: None,
            });
            StreamEvent::Error(StreamError {
                status: api.status().as_u16(),
                message: api.to_string(),
            })
        }
        other => other,
    }
}

fn error_frames(plan: &mut StreamPlan, error: &ApiError) -> Vec<String> {
    match plan.encoder.as_mut() {
        Some(encoder) => encoder.feed(&StreamEvent::Error(StreamError {
            status: error.status().as_u16(),
            message: error.to_string(),
        })),
        None => vec![plan.inbound.stream_error_frame(error, &plan.request_id)],
    }
}

/// A same-dialect frame as the client should see it: the public model name, and (OpenAI) the
/// usage chunk only when the client asked for it.
fn relay_frame(plan: &StreamPlan, event: &SseEvent) -> Option<String> {
    match plan.inbound {
        Inbound::OpenAi => {
            if event.data.trim() == "[DONE]" {
                return Some("data: [DONE]\n\n".into());
            }
            let mut chunk: Value = serde_json::from_str(&event.data).ok()?;
            let usage_only = chunk
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
            if usage_only && !plan.include_usage {
                return None;
            }
            if let Value::Object(map) = &mut chunk {
                map.insert("model".into(), Value::String(plan.public_model.clone()));
                if !plan.include_usage {
                    map.remove("usage");
                }
            }
            Some(format!("data: {chunk}\n\n"))
        }
        Inbound::Anthropic => {
            let mut event = event.clone();
            if event.event.as_deref() == Some("message_start") {
                if let Ok(mut data) = serde_json::from_str::<Value>(&event.data) {
                    if let Some(message) = data.get_mut("message").and_then(Value::as_object_mut) {
                        message.insert("model".into(), Value::String(plan.public_model.clone()));
                    }
                    event.data = data.to_string();
                }
            }
            Some(frame(&event, true))
        }
        Inbound::DashScope(_) => Some(frame(event, false)),
    }
}

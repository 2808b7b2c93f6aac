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

/// An upstream's body as it arrives: chunks of bytes cut wherever the network cut them.
pub type Chunks = BoxStream<'static, Result<Bytes, UpstreamError>>;

/// An upstream stream that has been checked to start well: the events read while checking, and
/// the rest still to read.
pub struct UpstreamStream {
    bytes: Fuse<Chunks>,
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
    let chunks = response.bytes_stream().map(|chunk| chunk.map_err(classify));
    open_chunks(chunks.boxed(), protocol, choices, idle_timeout).await
}

/// [`open`] over any source of chunks.
async fn open_chunks(
    chunks: Chunks,
    protocol: UpstreamProtocol,
    choices: u32,
    idle_timeout: Duration,
) -> Result<UpstreamStream, UpstreamError> {
    let mut bytes = chunks.fuse();
    let mut parser = SseParser::new();
    let mut probe = super::outbound::stream_decoder(protocol, choices);
    let mut first = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(idle_timeout, bytes.next()).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(error))) => return Err(error),
            Ok(Some(Ok(chunk))) => chunk,
        };
        // One read may carry many events, even the whole stream: every event of it is kept, in
        // order, for the relay; only the probe stops looking once the stream has started well.
        let mut started = false;
        for event in parser.feed(&chunk) {
            if !started {
                match probe_event(&mut probe, &event) {
                    Probe::Failed(error) => return Err(error),
                    Probe::Started => started = true,
                    Probe::Undecided => {}
                }
            }
            first.push(event);
        }
        if started {
            break;
        }
    }
    Ok(UpstreamStream {
        bytes,
        parser,
        first,
    })
}

/// What one event tells about how a stream starts.
enum Probe {
    /// An error before any output: the attempt failed.
    Failed(UpstreamError),
    /// Output came, or the stream ended well: the stream goes to the client.
    Started,
    /// Nothing yet (a start, usage, a keep-alive).
    Undecided,
}

fn probe_event(probe: &mut Box<dyn StreamDecoder>, event: &SseEvent) -> Probe {
    for canonical in probe.feed(event) {
        match canonical {
            StreamEvent::Error(error) => {
                return Probe::Failed(UpstreamError::Status {
                    status: error.status,
                    message: None,
                })
            }
            StreamEvent::Start { .. } | StreamEvent::Usage(_) => {}
            _ => return Probe::Started,
        }
    }
    if probe.done() {
        Probe::Started
    } else {
        Probe::Undecided
    }
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
    Chunk(Option<Result<Bytes, UpstreamError>>),
    IdleTimeout,
    ClientGone,
}

/// Waits for the next upstream chunk, pinging the client meanwhile when the plan says so.
async fn next_chunk(
    bytes: &mut Fuse<Chunks>,
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

/// Records a stream's outcome before its last frames go out; false when it could not be
/// recorded (the answer is then ended with an error instead).
type Record = Box<dyn FnOnce(Outcome) -> futures::future::BoxFuture<'static, bool> + Send>;

/// Starts streaming `upstream` and returns the response body. The call is metered when the
/// stream ends — completed, broken, or abandoned by the client — and its record is durable
/// before the terminal event (the end of the body) reaches the client.
pub fn relay(upstream: UpstreamStream, plan: StreamPlan, meter: Meter) -> Body {
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    let started = meter.started;
    let record: Record =
        Box::new(move |outcome| Box::pin(async move { meter.finish(outcome).await.is_ok() }));
    tokio::spawn(pump(upstream, plan, started, sender, record));
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

/// Sends the stream's frames to the client. The frames that end the stream — the upstream's
/// own end (`[DONE]`, `message_stop`, DashScope's last event), the encoder's closing frames, an
/// error — are held back until `record` has made the call's record durable; if it cannot, the
/// stream ends with an error instead, and the call is not charged.
async fn pump(
    upstream: UpstreamStream,
    mut plan: StreamPlan,
    started: std::time::Instant,
    sender: mpsc::Sender<Bytes>,
    record: Record,
) {
    let mut tally = Tally {
        outcome: Outcome {
            status: 200,
            usage: None,
            delivered: Default::default(),
            ttft_ms: None,
        },
        started,
    };
    let UpstreamStream {
        mut bytes,
        mut parser,
        first,
    } = upstream;
    let mut client_gone = false;
    let mut failure: Option<ApiError> = None;
    let mut pending = first;
    // The frames of the event that ended the stream, held until the call is recorded.
    let mut last_frames = Vec::new();
    'read: loop {
        // Events read while the stream was checked come first.
        for event in std::mem::take(&mut pending) {
            let frames = handle_event(&mut plan, &mut tally, &event);
            if tally.outcome.status != 200 || plan.decoder.done() {
                last_frames = frames;
                break 'read;
            }
            for frame in frames {
                if sender.send(Bytes::from(frame)).await.is_err() {
                    client_gone = true;
                    break 'read;
                }
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
            if tally.outcome.status != 200 || plan.decoder.done() {
                last_frames = frames;
                break 'read;
            }
            for frame in frames {
                if sender.send(Bytes::from(frame)).await.is_err() {
                    client_gone = true;
                    break 'read;
                }
            }
        }
    }
    let mut frames = last_frames;
    if !client_gone {
        // An unterminated last event counts only when the stream simply ended: not after a
        // failure, an in-band error or the upstream's own end of stream.
        let open = failure.is_none() && tally.outcome.status == 200 && !plan.decoder.done();
        if let Some(event) = parser.finish().filter(|_| open) {
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
    }
    let completed = tally.outcome.status == 200;
    if !record(tally.outcome).await && completed {
        frames = error_frames(&mut plan, &ApiError::Unrecorded);
    }
    if !client_gone {
        for frame in frames {
            if sender.send(Bytes::from(frame)).await.is_err() {
                break;
            }
        }
    }
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

/// The whole relay path for one upstream stream that arrives in `chunks`, cut as they are given:
/// the start check, the upstream dialect's decoder, then the client dialect's encoder — or, when
/// both speak the same dialect, the frames as they came with the public model name — with
/// nothing around it (no network, no metering). Returns the bytes a `client` would receive, or
/// the failed attempt. Every clock and id is fixed, so the same stream always gives the same
/// bytes: a stream must reach the client the same however the network cut it (the relay tests
/// and the `relay_path` fuzz target check that).
pub async fn replay(
    chunks: Vec<Bytes>,
    upstream: UpstreamProtocol,
    client: crate::protocol::canonical::Dialect,
) -> Result<Vec<u8>, UpstreamError> {
    use crate::protocol::canonical::Dialect;
    use crate::protocol::dashscope::{DashScopeOptions, ResultFormat};
    use crate::protocol::{anthropic, dashscope, openai};

    const PUBLIC_MODEL: &str = "public-model";
    let options = DashScopeOptions {
        result_format: ResultFormat::Message,
        incremental_output: true,
    };
    let (inbound, relayed) = match client {
        Dialect::Anthropic => (Inbound::Anthropic, upstream == UpstreamProtocol::Anthropic),
        Dialect::Dashscope => (
            Inbound::DashScope(options),
            upstream == UpstreamProtocol::Dashscope,
        ),
        Dialect::Openai | Dialect::Minimax => {
            (Inbound::OpenAi, upstream == UpstreamProtocol::Openai)
        }
    };
    let encoder: Option<Box<dyn StreamEncoder>> = match &inbound {
        _ if relayed => None,
        Inbound::OpenAi => Some(Box::new(openai::OpenAiStreamEncoder::new(
            "chatcmpl-replay".into(),
            PUBLIC_MODEL.into(),
            0,
            true,
        ))),
        Inbound::Anthropic => Some(Box::new(anthropic::AnthropicStreamEncoder::new(
            "msg_replay".into(),
            PUBLIC_MODEL.into(),
        ))),
        Inbound::DashScope(options) => Some(Box::new(dashscope::DashScopeStreamEncoder::new(
            "req_replay".into(),
            *options,
        ))),
    };
    let idle_timeout = Duration::from_secs(60);
    let source = futures::stream::iter(chunks.into_iter().map(Ok)).boxed();
    let stream = open_chunks(source, upstream, 1, idle_timeout).await?;
    let plan = StreamPlan {
        decoder: super::outbound::stream_decoder(upstream, 1),
        encoder,
        inbound,
        request_id: "req_replay".into(),
        public_model: PUBLIC_MODEL.into(),
        include_usage: true,
        idle_timeout,
        ping_every: None,
    };
    let (sender, mut receiver) = mpsc::channel::<Bytes>(16);
    let collect = async move {
        let mut received = Vec::new();
        while let Some(frame) = receiver.recv().await {
            received.extend_from_slice(&frame);
        }
        received
    };
    let record: Record = Box::new(|_| Box::pin(async { true }));
    let (_, received) = tokio::join!(
        pump(stream, plan, std::time::Instant::now(), sender, record),
        collect
    );
    Ok(received)
}

//! The whole relay path (start check → upstream decoder → client encoder, or same-dialect
//! relay) fed every recorded upstream transcript cut three ways: frame by frame, all at once (a
//! buffering proxy, one TCP segment, `Content-Length` set) and at random places. Whatever the
//! cuts, a client must receive the same bytes, and everything the transcript carried.

use axum::body::Bytes;
use modelrouter_domain::provider::UpstreamProtocol;

use super::relay::replay;
use crate::protocol::canonical::{Dialect, StreamEvent};
use crate::protocol::sse::SseParser;
use crate::protocol::{anthropic, dashscope, openai, StreamDecoder};

/// Every recorded upstream stream, by the protocol that produced it.
const TRANSCRIPTS: &[(UpstreamProtocol, &str)] = &[
    (UpstreamProtocol::Openai, "openai/stream_tool_calls.sse"),
    (
        UpstreamProtocol::Openai,
        "openai/stream_reasoning_error.sse",
    ),
    (UpstreamProtocol::Anthropic, "anthropic/stream_tool_use.sse"),
    (
        UpstreamProtocol::Dashscope,
        "dashscope/stream_cumulative_cjk.sse",
    ),
    (UpstreamProtocol::Dashscope, "dashscope/stream_error.sse"),
    (
        UpstreamProtocol::Dashscope,
        "dashscope/stream_incremental_tools.sse",
    ),
    (
        UpstreamProtocol::Dashscope,
        "dashscope/stream_reasoning.sse",
    ),
    (
        UpstreamProtocol::Minimax,
        "minimax/stream_cumulative_think.sse",
    ),
    (UpstreamProtocol::Minimax, "minimax/stream_error.sse"),
    (UpstreamProtocol::Minimax, "minimax/stream_m2.sse"),
];

const CLIENTS: [Dialect; 3] = [Dialect::Openai, Dialect::Anthropic, Dialect::Dashscope];

fn transcript(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// One chunk per server-sent event, as a well-behaved upstream flushes them.
fn frame_by_frame(bytes: &[u8]) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut start = 0;
    for at in 0..bytes.len() {
        if bytes[at..].starts_with(b"\n\n") {
            chunks.push(Bytes::copy_from_slice(&bytes[start..at + 2]));
            start = at + 2;
        }
    }
    if start < bytes.len() {
        chunks.push(Bytes::copy_from_slice(&bytes[start..]));
    }
    chunks
}

/// Cuts at places drawn from `seed` (a small linear congruential generator: the same seed
/// always cuts the same way, so a failure can be replayed).
fn random_cuts(bytes: &[u8], seed: u64) -> Vec<Bytes> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 1 + (state >> 33) as usize % 97;
        let end = (start + len).min(bytes.len());
        chunks.push(Bytes::copy_from_slice(&bytes[start..end]));
        start = end;
    }
    chunks
}

/// What a stream said, in canonical terms: text, reasoning, tool calls, finishes and errors
/// (usage is compared separately: relays and encoders place it differently).
#[derive(Debug, Default, PartialEq)]
struct Said {
    text: String,
    reasoning: String,
    /// Each tool call's name and arguments, by (choice, index).
    tools: std::collections::BTreeMap<(u32, u32), String>,
    finished: bool,
    failed: bool,
    usage: bool,
}

fn said(bytes: &[u8], decoder: &mut dyn StreamDecoder) -> Said {
    let mut parser = SseParser::new();
    let mut events = parser.feed(bytes);
    events.extend(parser.finish());
    let mut canonical: Vec<StreamEvent> = events.iter().flat_map(|e| decoder.feed(e)).collect();
    canonical.extend(decoder.finish());
    let mut said = Said::default();
    for event in canonical {
        match event {
            StreamEvent::TextDelta { text, .. } => said.text.push_str(&text),
            StreamEvent::ReasoningDelta { text, .. } => said.reasoning.push_str(&text),
            StreamEvent::ToolCallStart {
                choice,
                index,
                name,
                ..
            } => said
                .tools
                .entry((choice, index))
                .or_default()
                .push_str(&name),
            StreamEvent::ToolCallDelta {
                choice,
                index,
                arguments,
            } => said
                .tools
                .entry((choice, index))
                .or_default()
                .push_str(&arguments),
            StreamEvent::Finish { .. } => said.finished = true,
            StreamEvent::Error(_) => said.failed = true,
            StreamEvent::Usage(_) => said.usage = true,
            _ => {}
        }
    }
    said
}

fn client_decoder(client: Dialect) -> Box<dyn StreamDecoder> {
    match client {
        Dialect::Anthropic => Box::new(anthropic::AnthropicStreamDecoder::new()),
        Dialect::Dashscope => Box::new(dashscope::DashScopeStreamDecoder::new()),
        Dialect::Openai | Dialect::Minimax => Box::new(openai::OpenAiStreamDecoder::new()),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn a_stream_reaches_the_client_the_same_however_the_upstream_cut_its_bytes() {
    let runtime = runtime();
    for (upstream, path) in TRANSCRIPTS {
        let bytes = transcript(path);
        let sent = said(
            &bytes,
            crate::gateway::outbound::stream_decoder(*upstream, 1).as_mut(),
        );
        for client in CLIENTS {
            let replay = |chunks: Vec<Bytes>| {
                runtime
                    .block_on(replay(chunks, *upstream, client))
                    .unwrap_or_else(|e| panic!("{path} to {client:?}: {e}"))
            };
            let by_frame = replay(frame_by_frame(&bytes));
            let received = said(&by_frame, client_decoder(client).as_mut());
            // Everything the upstream said reaches the client, and the stream is closed
            // properly: finished, or failed in-band.
            assert_eq!(received.text, sent.text, "{path} to {client:?}");
            assert_eq!(received.reasoning, sent.reasoning, "{path} to {client:?}");
            assert_eq!(received.tools, sent.tools, "{path} to {client:?}");
            assert!(received.finished || received.failed, "{path} to {client:?}");
            assert_eq!(received.failed, sent.failed, "{path} to {client:?}");
            if sent.usage && !sent.failed {
                assert!(received.usage, "{path} to {client:?}: usage lost");
            }
            if client == Dialect::Openai && !sent.failed {
                assert!(
                    by_frame.ends_with(b"data: [DONE]\n\n"),
                    "{path} to {client:?}"
                );
            }
            let whole = replay(vec![Bytes::from(bytes.clone())]);
            assert_eq!(
                String::from_utf8_lossy(&whole),
                String::from_utf8_lossy(&by_frame),
                "{path} to {client:?}, all at once"
            );
            for seed in 0..8 {
                let cut = replay(random_cuts(&bytes, seed));
                assert_eq!(
                    String::from_utf8_lossy(&cut),
                    String::from_utf8_lossy(&by_frame),
                    "{path} to {client:?}, cut with seed {seed}"
                );
            }
        }
    }
}

#[test]
fn a_stream_cut_into_single_bytes_still_arrives_whole() {
    let runtime = runtime();
    let bytes = transcript("openai/stream_tool_calls.sse");
    let singles: Vec<Bytes> = bytes
        .iter()
        .map(|b| Bytes::copy_from_slice(&[*b]))
        .collect();
    for client in CLIENTS {
        let whole = runtime
            .block_on(replay(
                vec![Bytes::from(bytes.clone())],
                UpstreamProtocol::Openai,
                client,
            ))
            .expect("the stream starts well");
        let single = runtime
            .block_on(replay(singles.clone(), UpstreamProtocol::Openai, client))
            .expect("the stream starts well");
        assert_eq!(single, whole, "{client:?}");
    }
}

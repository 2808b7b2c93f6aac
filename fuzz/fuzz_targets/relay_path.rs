//! Upstream bytes in arbitrary splits through the whole relay path (the start check, the
//! upstream's stream decoder, the client's encoder or the same-dialect relay), for every upstream
//! and client protocol: nothing may panic, and the client must receive exactly the same bytes
//! however the upstream's bytes were cut.
//!
//! Input: the first byte picks the upstream protocol, the next bytes the cut lengths (each
//! 1..=64, 255 for "the rest"; none: one chunk), up to a zero byte; the rest is the
//! upstream's body.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use modelrouter::gateway::replay_stream;
use modelrouter::protocol::canonical::Dialect;
use modelrouter_domain::provider::UpstreamProtocol;

const UPSTREAMS: [UpstreamProtocol; 4] = [
    UpstreamProtocol::Openai,
    UpstreamProtocol::Anthropic,
    UpstreamProtocol::Dashscope,
    UpstreamProtocol::Minimax,
];
const CLIENTS: [Dialect; 3] = [Dialect::Openai, Dialect::Anthropic, Dialect::Dashscope];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let upstream = UPSTREAMS[usize::from(pick) % UPSTREAMS.len()];
    let cuts_end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (cuts, body) = (
        &rest[..cuts_end],
        rest.get(cuts_end + 1..).unwrap_or_default(),
    );
    let mut chunks = Vec::new();
    let mut start = 0;
    // No cut lengths: the body in one chunk.
    let whole_body = [u8::MAX];
    let cuts = if cuts.is_empty() {
        &whole_body[..]
    } else {
        cuts
    };
    let lengths = cuts.iter().cycle().map(|&b| match b {
        u8::MAX => usize::MAX,
        b => usize::from(b % 64) + 1,
    });
    for len in lengths {
        if start >= body.len() {
            break;
        }
        let end = start.saturating_add(len).min(body.len());
        chunks.push(Bytes::copy_from_slice(&body[start..end]));
        start = end;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for client in CLIENTS {
        let whole = runtime.block_on(replay_stream(
            vec![Bytes::copy_from_slice(body)],
            upstream,
            client,
        ));
        let cut = runtime.block_on(replay_stream(chunks.clone(), upstream, client));
        match (whole, cut) {
            (Ok(whole), Ok(cut)) => assert_eq!(whole, cut, "{upstream:?} to {client:?}"),
            (Err(_), Err(_)) => {}
            (whole, cut) => panic!("{upstream:?} to {client:?}: whole {whole:?}, cut {cut:?}"),
        }
    }
});

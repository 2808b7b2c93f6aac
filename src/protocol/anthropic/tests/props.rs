//! Properties: decode(encode(x)) keeps everything Anthropic can carry, for requests, responses
//! and streams (split at random boundaries); decoders never panic on any input.

use proptest::prelude::*;

use super::strategies::{requests, responses, stream_events};
use super::*;
use crate::protocol::anthropic::{
    decode_count_tokens_request, decode_request, decode_response, encode_request, encode_response,
};
use crate::protocol::canonical::{ChatRequest, FinishReason, StreamEvent};

/// What a client reconstructs from a stream: reasoning, signature, text, calls, finish, usage.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    reasoning: String,
    signatures: Vec<String>,
    text: String,
    calls: Vec<(u32, String, String, String)>,
    finish: Option<FinishReason>,
    output: Option<u64>,
}

fn summarize(events: &[StreamEvent]) -> Summary {
    let mut s = Summary::default();
    for event in events {
        match event {
            StreamEvent::ReasoningDelta { text, .. } => s.reasoning.push_str(text),
            StreamEvent::ReasoningSignature { signature, .. } => {
                s.signatures.push(signature.clone())
            }
            StreamEvent::TextDelta { text, .. } => s.text.push_str(text),
            StreamEvent::ToolCallStart {
                index, id, name, ..
            } => s
                .calls
                .push((*index, id.clone(), name.clone(), String::new())),
            StreamEvent::ToolCallDelta {
                index, arguments, ..
            } => {
                if let Some(call) = s.calls.iter_mut().find(|c| c.0 == *index) {
                    call.3.push_str(arguments);
                }
            }
            StreamEvent::Finish { reason, .. } => s.finish = Some(reason.clone()),
            StreamEvent::Usage(u) if u.output_total.is_some() => s.output = u.output_total,
            _ => {}
        }
    }
    s
}

proptest! {
    #[test]
    fn request_survives_encode_then_decode(req in requests()) {
        let body = encode_request(&req, &req.model).expect("encodable");
        let decoded = decode_request(body.to_string().as_bytes()).expect("decodable");
        prop_assert_eq!(decoded, req);
    }

    #[test]
    fn response_survives_encode_then_decode(resp in responses()) {
        let message = encode_response(&resp, &ChatRequest::default());
        let mut decoded = decode_response(message.to_string().as_bytes()).expect("decodable");
        decoded.created = 0;
        prop_assert_eq!(decoded, resp);
    }

    #[test]
    fn stream_survives_encode_then_decode_at_any_split(events in stream_events(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let sse = encode_stream(&events).concat();
        let bytes = sse.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for point in points {
            pieces.push(&bytes[from..point]);
            from = point;
        }
        pieces.push(&bytes[from..]);
        prop_assert_eq!(summarize(&decode_stream(&pieces)), summarize(&events));
    }

    #[test]
    fn decoders_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_request(&bytes);
        let _ = decode_response(&bytes);
        let _ = decode_stream(&[&bytes]);
    }

    #[test]
    fn decoders_never_panic_on_damaged_fixtures(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        for name in ["request_full.json", "response_tool_use.json", "stream_tool_use.sse"] {
            let mut bytes = fixture(name).into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode_request(&bytes);
            let _ = decode_count_tokens_request(&bytes);
            let _ = decode_response(&bytes);
            let _ = decode_stream(&[&bytes]);
        }
    }
}

//! Stream codecs: transcripts split at every byte boundary give the same events, and the odd
//! inputs an upstream can send do not break the decoder.

use super::*;
use crate::protocol::canonical::{FinishReason, StreamError, StreamEvent};

#[test]
fn transcript_split_at_every_byte_gives_the_same_events() {
    let text = fixture("stream_tool_use.sse");
    // CRLF line ends must not change anything either.
    let crlf = text.replace('\n', "\r\n");
    let whole = decode_stream(&[text.as_bytes()]);
    assert!(whole.len() > 10);
    for bytes in [text.as_bytes(), crlf.as_bytes()] {
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_stream(&[&bytes[..cut], &bytes[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
    }
    // One byte at a time.
    let singles: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
    assert_eq!(decode_stream(&singles), whole);
}

#[test]
fn decoder_marks_the_end_and_ignores_what_follows() {
    let mut decoder = AnthropicStreamDecoder::new();
    let events = parse_sse(fixture("stream_tool_use.sse").as_bytes());
    for event in &events {
        assert!(!decoder.done());
        decoder.feed(event);
    }
    assert!(decoder.done(), "message_stop ends the stream");
    assert!(decoder.feed(&events[0]).is_empty());
}

#[test]
fn error_event_becomes_a_stream_error_with_its_status() {
    let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\n\
        event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let mut parser = crate::protocol::sse::SseParser::new();
    let mut decoder = AnthropicStreamDecoder::new();
    let events: Vec<StreamEvent> = parser
        .feed(sse.as_bytes())
        .iter()
        .flat_map(|e| decoder.feed(e))
        .collect();
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Error(StreamError {
            status: 529,
            message: "Overloaded".into()
        }))
    );
    assert!(decoder.done());
}

#[test]
fn odd_upstream_input_is_survived() {
    let sse = "data: not json\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":7,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\",\"citation\":{}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"repeated by MiniMax\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"repeated by MiniMax\"}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{\"whole\":true}}}\n\n\
        event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
        event: future_event\ndata: {\"type\":\"future_event\"}\n\n";
    assert_eq!(
        decode_stream(&[sse.as_bytes()]),
        vec![
            StreamEvent::TextDelta {
                choice: 0,
                text: "repeated by MiniMax".into()
            },
            StreamEvent::ToolCallStart {
                choice: 0,
                index: 0,
                id: "t".into(),
                name: "f".into()
            },
            StreamEvent::ToolCallDelta {
                choice: 0,
                index: 0,
                arguments: "{\"whole\":true}".into()
            },
        ]
    );
}

#[test]
fn signature_and_redacted_thinking_stream_to_the_client() {
    let frames = encode_stream(&[
        StreamEvent::Start {
            id: "x".into(),
            model: "y".into(),
        },
        StreamEvent::ReasoningDelta {
            choice: 0,
            text: "hmm".into(),
        },
        StreamEvent::ReasoningSignature {
            choice: 0,
            signature: "sig".into(),
        },
        StreamEvent::RedactedReasoning {
            choice: 0,
            data: "opaque".into(),
        },
        StreamEvent::TextDelta {
            choice: 1,
            text: "second choice is not sent".into(),
        },
        StreamEvent::TextDelta {
            choice: 0,
            text: "done".into(),
        },
        StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::Length,
        },
    ]);
    let frames = frames_json(&frames);
    let summary: Vec<String> = frames
        .iter()
        .map(|(name, data)| {
            let detail = data["content_block"]["type"]
                .as_str()
                .or(data["delta"]["type"].as_str())
                .or(data["delta"]["stop_reason"].as_str())
                .unwrap_or("");
            format!("{name}:{}:{detail}", data["index"])
        })
        .collect();
    assert_eq!(
        summary,
        [
            "message_start:null:",
            "content_block_start:0:thinking",
            "content_block_delta:0:thinking_delta",
            "content_block_delta:0:signature_delta",
            "content_block_stop:0:",
            "content_block_start:1:redacted_thinking",
            "content_block_stop:1:",
            "content_block_start:2:text",
            "content_block_delta:2:text_delta",
            "content_block_stop:2:",
            "message_delta:null:max_tokens",
            "message_stop:null:",
        ]
    );
    assert_eq!(frames[0].1["message"]["id"], "msg_test");
    assert_eq!(frames[0].1["message"]["model"], "public-model");
    assert_eq!(frames[3].1["delta"]["signature"], "sig");
    assert_eq!(frames[5].1["content_block"]["data"], "opaque");
}

#[test]
fn frames_have_event_names_and_a_space_after_the_colon() {
    let frames = encode_stream(&[StreamEvent::TextDelta {
        choice: 0,
        text: "a".into(),
    }]);
    for frame in &frames {
        assert!(frame.starts_with("event: "), "{frame}");
        assert!(frame.contains("\ndata: {"), "{frame}");
        assert!(frame.ends_with("\n\n"), "{frame}");
    }
}

//! Stream mechanics: transcripts split at every byte (and with CRLF line ends) give the same
//! events; the decoder's end, error and `n > 1` handling; the encoder always closes the stream.

use serde_json::json;

use super::{decode_chunks, encode_stream, event, fixture, result_frame, transcript};
use crate::protocol::canonical::{FinishReason, StreamError, StreamEvent};
use crate::protocol::dashscope::{
    DashScopeOptions, DashScopeStreamDecoder, DashScopeStreamEncoder, ResultFormat,
};
use crate::protocol::sse::SseEvent;
use crate::protocol::{StreamDecoder, StreamEncoder};

const TRANSCRIPTS: [&str; 4] = [
    "stream_incremental_tools.sse",
    "stream_cumulative_cjk.sse",
    "stream_reasoning.sse",
    "stream_error.sse",
];

#[test]
fn transcripts_split_at_every_byte_give_the_same_events() {
    for name in TRANSCRIPTS {
        let text = fixture(name);
        let bytes = text.as_bytes();
        let (whole, done) = decode_chunks(&[bytes]);
        assert!(done && whole.len() > 3, "{name}");
        for cut in 0..=bytes.len() {
            let (split, _) = decode_chunks(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(split, whole, "{name} cut at {cut}");
        }
        // Three pieces, the cuts walking through the text (CJK cut inside characters too).
        for first in (0..bytes.len()).step_by(7) {
            let second = (first + 13).min(bytes.len());
            let (split, _) =
                decode_chunks(&[&bytes[..first], &bytes[first..second], &bytes[second..]]);
            assert_eq!(split, whole, "{name} cut at {first} and {second}");
        }
    }
}

#[test]
fn transcripts_with_crlf_line_ends_give_the_same_events() {
    for name in TRANSCRIPTS {
        let text = fixture(name);
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(
            decode_chunks(&[crlf.as_bytes()]),
            decode_chunks(&[text.as_bytes()]),
            "{name}"
        );
    }
}

#[test]
fn the_stream_is_done_at_the_first_final_event_and_ignores_the_rest() {
    let mut decoder = DashScopeStreamDecoder::new();
    let parse =
        |body: serde_json::Value| super::parse_sse(&[result_frame(1, &body).as_bytes()]).remove(0);
    assert!(!decoder.feed(&parse(event("a", "null", None, 1))).is_empty());
    assert!(!decoder.done());
    let last = decoder.feed(&parse(event("b", "length", None, 2)));
    assert_eq!(
        last.last(),
        Some(&StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::Length
        }),
        "the final event's content comes before its Finish"
    );
    assert!(last.contains(&StreamEvent::TextDelta {
        choice: 0,
        text: "b".into()
    }));
    assert!(decoder.done());
    assert!(decoder
        .feed(&parse(event("late", "stop", None, 3)))
        .is_empty());
}

#[test]
fn several_choices_end_when_each_has_finished() {
    let body = |index: u32, content: &str, reason: &str| {
        json!({"output": {"choices": [{"message": {"role": "assistant", "content": content},
            "index": index, "finish_reason": reason}]}, "request_id": "r"})
    };
    let mut decoder = DashScopeStreamDecoder::new().with_choices(2);
    let frames = [
        body(0, "zero", "null"),
        body(1, "one", "null"),
        body(0, "", "stop"),
        body(1, "!", "stop"),
    ];
    let mut events = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let sse = super::parse_sse(&[result_frame(i as u32 + 1, frame).as_bytes()]);
        events.extend(decoder.feed(&sse[0]));
        assert_eq!(decoder.done(), i == 3, "after frame {i}");
    }
    assert!(events.contains(&StreamEvent::TextDelta {
        choice: 1,
        text: "!".into()
    }));
}

#[test]
fn an_error_event_ends_the_stream_with_its_status() {
    let error = |status: Option<u16>, data: &str| SseEvent {
        event: Some("error".into()),
        data: data.into(),
        id: Some("1".into()),
        status,
    };
    let mut decoder = DashScopeStreamDecoder::new();
    let events = decoder.feed(&error(
        None,
        r#"{"code":"Throttling.RateQuota","message":"Requests rate limit exceeded","request_id":"r"}"#,
    ));
    assert_eq!(
        events,
        vec![StreamEvent::Error(StreamError {
            status: 429,
            message: "Throttling.RateQuota: Requests rate limit exceeded".into()
        })],
        "no Start before an error: nothing was sent yet, so the gateway may still fall back"
    );
    assert!(decoder.done());
    let mut decoder = DashScopeStreamDecoder::new();
    let events = decoder.feed(&error(Some(500), "not json"));
    assert!(matches!(
        &events[..],
        [StreamEvent::Error(StreamError { status: 500, .. })]
    ));
    let mut decoder = DashScopeStreamDecoder::new();
    let garbage = SseEvent {
        data: "{\"output\":".into(),
        ..SseEvent::default()
    };
    let events = decoder.feed(&garbage);
    assert!(matches!(
        &events[..],
        [StreamEvent::Error(StreamError { status: 502, .. })]
    ));
    assert!(decoder.done());
}

#[test]
fn stream_termination_the_final_event_is_always_sent() {
    let message = DashScopeOptions {
        result_format: ResultFormat::Message,
        incremental_output: true,
    };
    // No Finish arrived (the upstream stream broke off): the client still gets a final event.
    let frames = encode_stream(
        &[StreamEvent::TextDelta {
            choice: 0,
            text: "partial".into(),
        }],
        message,
    );
    assert_eq!(frames.len(), 2);
    assert_eq!(
        frames[1]["output"]["choices"][0]["finish_reason"],
        json!("stop")
    );
    let frames = encode_stream(
        &[StreamEvent::ToolCallStart {
            choice: 0,
            index: 0,
            id: "c".into(),
            name: "f".into(),
        }],
        message,
    );
    assert_eq!(
        frames[1]["output"]["choices"][0]["finish_reason"],
        json!("tool_calls")
    );
    // Nothing at all: one final, empty event.
    let frames = encode_stream(&[], DashScopeOptions::default());
    assert_eq!(
        frames,
        vec![json!({"output": {"text": "", "finish_reason": "stop"}, "request_id": "gw-1"})]
    );
}

#[test]
fn after_an_error_the_encoder_sends_nothing_more() {
    let mut encoder = DashScopeStreamEncoder::new("gw".into(), DashScopeOptions::default());
    let frames = encoder.feed(&StreamEvent::Error(StreamError {
        status: 504,
        message: "upstream timed out".into(),
    }));
    assert_eq!(
        frames,
        vec![
            "id:1\nevent:error\n:HTTP_STATUS/408\nstatus:408\ndata:{\"code\":\"RequestTimeOut\",\"message\":\"upstream timed out\",\"request_id\":\"gw\"}\n\n"
        ]
    );
    let more = encoder.feed(&StreamEvent::TextDelta {
        choice: 0,
        text: "x".into(),
    });
    assert!(more.is_empty());
    assert!(encoder.finish().is_empty());
}

#[test]
fn cumulative_client_streams_resend_everything_so_far() {
    let options = DashScopeOptions::default();
    let events: Vec<StreamEvent> = ["杭", "州", "很美"]
        .iter()
        .map(|piece| StreamEvent::TextDelta {
            choice: 0,
            text: (*piece).into(),
        })
        .collect();
    let texts: Vec<_> = encode_stream(&events, options)
        .iter()
        .map(|frame| frame["output"]["text"].clone())
        .collect();
    assert_eq!(
        texts,
        vec![
            json!("杭"),
            json!("杭州"),
            json!("杭州很美"),
            json!("杭州很美")
        ]
    );
    // And a cumulative transcript decodes back to the pieces, not to repeated text.
    let bodies: Vec<_> = ["杭", "杭州", "杭州很美"]
        .iter()
        .map(|t| event(t, "null", None, 1))
        .collect();
    let (decoded, _) = decode_chunks(&[transcript(&bodies).as_bytes()]);
    assert_eq!(super::visible_text(&decoded), "杭州很美");
}

#[test]
fn an_upstream_text_format_stream_is_read_too() {
    let body = |text: &str, reason: &str| {
        json!({"output": {"text": text, "finish_reason": reason},
            "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}, "request_id": "r"})
    };
    let bodies = [
        body("1+1", "null"),
        body("1+1 equals 2.", "null"),
        body("1+1 equals 2.", "stop"),
    ];
    let (events, done) = decode_chunks(&[transcript(&bodies).as_bytes()]);
    assert!(done);
    assert_eq!(super::visible_text(&events), "1+1 equals 2.");
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::Stop
        })
    );
}

//! Stream decoder and encoder behaviour, §7 stream rows included: tool indexes, one start per
//! call, usage-only chunks, termination, in-band errors.

use serde_json::json;

use super::{decode_every_split, encode_all, payloads};
use crate::protocol::canonical::{FinishReason, StreamError, StreamEvent, Usage};
use crate::protocol::openai::{OpenAiStreamDecoder, OpenAiStreamEncoder};
use crate::protocol::sse::SseEvent;
use crate::protocol::StreamDecoder;

fn transcript(chunks: &[serde_json::Value]) -> String {
    let mut text: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    text
}

fn tool_delta(
    choice: u32,
    index: u32,
    id: Option<&str>,
    name: Option<&str>,
    args: &str,
) -> serde_json::Value {
    let mut call = json!({"index": index, "function": {"arguments": args}});
    if let Some(id) = id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    if let Some(name) = name {
        call["function"]["name"] = json!(name);
    }
    json!({"id": "c", "model": "m", "choices": [{"index": choice, "delta": {"tool_calls": [call]}}]})
}

fn arguments_of(events: &[StreamEvent], choice: u32, index: u32) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta {
                choice: c,
                index: i,
                arguments,
            } if *c == choice && *i == index => Some(arguments.as_str()),
            _ => None,
        })
        .collect()
}

fn starts(events: &[StreamEvent]) -> Vec<(u32, u32, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallStart {
                choice, index, id, ..
            } => Some((*choice, *index, id.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn stream_tool_index_joins_interleaved_pieces_per_index_and_choice() {
    // Upstream indexes 3 and 5 (a server that does not count from 0), interleaved, and a second
    // choice reusing index 3: each call keeps its own arguments.
    let text = transcript(&[
        tool_delta(0, 3, Some("call_a"), Some("f"), "{\"a\":"),
        tool_delta(0, 5, Some("call_b"), Some("g"), "{\"b\":"),
        tool_delta(1, 3, Some("call_c"), Some("f"), "{\"c\":"),
        tool_delta(0, 3, None, None, "1}"),
        tool_delta(1, 3, None, None, "3}"),
        tool_delta(0, 5, None, None, "2}"),
    ]);
    let events = decode_every_split(OpenAiStreamDecoder::new, &text);
    assert_eq!(
        starts(&events),
        vec![
            (0, 0, "call_a".into()),
            (0, 1, "call_b".into()),
            (1, 0, "call_c".into())
        ],
        "canonical indexes count tool calls from 0 per choice"
    );
    assert_eq!(arguments_of(&events, 0, 0), "{\"a\":1}");
    assert_eq!(arguments_of(&events, 0, 1), "{\"b\":2}");
    assert_eq!(arguments_of(&events, 1, 0), "{\"c\":3}");
}

#[test]
fn one_block_per_call_even_when_id_and_name_repeat_on_every_piece() {
    let text = transcript(&[
        tool_delta(0, 0, Some("call_a"), Some("f"), "{\"x\""),
        tool_delta(0, 0, Some("call_a"), Some("f"), ":1}"),
        tool_delta(0, 0, Some(""), None, ""),
    ]);
    let events = decode_every_split(OpenAiStreamDecoder::new, &text);
    assert_eq!(starts(&events), vec![(0, 0, "call_a".into())]);
    assert_eq!(arguments_of(&events, 0, 0), "{\"x\":1}");
    // Empty pieces are skipped, never sent as empty deltas.
    assert!(!events.iter().any(
        |e| matches!(e, StreamEvent::ToolCallDelta { arguments, .. } if arguments.is_empty())
    ));
}

#[test]
fn empty_tool_id_is_ignored_and_a_missing_one_is_generated() {
    let text = transcript(&[tool_delta(0, 0, Some(""), Some("f"), "{}")]);
    let events = decode_every_split(OpenAiStreamDecoder::new, &text);
    assert_eq!(starts(&events), vec![(0, 0, "call_0_0".into())]);
}

#[test]
fn stream_usage_only_chunk_is_kept_and_role_only_or_null_deltas_are_ignored() {
    let text = transcript(&[
        json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"role": "", "content": "Hi"}}]}),
        json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": null, "finish_reason": "stop"}]}),
        json!({"id": "c", "model": "m", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}),
    ]);
    let events = decode_every_split(OpenAiStreamDecoder::new, &text);
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: "c".into(),
                model: "m".into()
            },
            StreamEvent::TextDelta {
                choice: 0,
                text: "Hi".into()
            },
            StreamEvent::Finish {
                choice: 0,
                reason: FinishReason::Stop
            },
            StreamEvent::Usage(Usage {
                input_total: Some(9),
                output_total: Some(2),
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn done_marker_and_undecodable_chunks_end_the_stream() {
    let mut decoder = OpenAiStreamDecoder::new();
    let event = |data: &str| SseEvent {
        data: data.into(),
        ..SseEvent::default()
    };
    assert!(decoder.feed(&event("[DONE]")).is_empty());
    assert!(decoder.done());

    let mut decoder = OpenAiStreamDecoder::new();
    let events = decoder.feed(&event("{not json"));
    assert!(matches!(
        &events[..],
        [StreamEvent::Error(StreamError { status: 502, .. })]
    ));
    assert!(decoder.done());
    assert!(decoder
        .feed(&event(r#"{"choices":[{"delta":{"content":"late"}}]}"#))
        .is_empty());
}

#[test]
fn in_band_errors_keep_a_meaningful_status() {
    let cases = [
        (
            json!({"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}),
            429,
        ),
        (
            json!({"message": "no money", "type": "insufficient_quota"}),
            429,
        ),
        (
            json!({"message": "bad key", "code": "invalid_api_key"}),
            401,
        ),
        (
            json!({"message": "too long", "code": "context_length_exceeded"}),
            400,
        ),
        (json!({"message": "boom", "type": "server_error"}), 500),
        (json!({"message": "busy", "code": 503}), 503),
        (json!({"message": "what"}), 502),
    ];
    for (error, status) in cases {
        let mut decoder = OpenAiStreamDecoder::new();
        let events = decoder.feed(&SseEvent {
            data: json!({ "error": error }).to_string(),
            ..SseEvent::default()
        });
        assert!(
            matches!(&events[..], [StreamEvent::Error(e)] if e.status == status && !e.message.is_empty()),
            "{error} → {events:?}"
        );
    }
}

#[test]
fn stream_termination_an_unfinished_stream_still_closes_properly() {
    let mut encoder = OpenAiStreamEncoder::new("chatcmpl-1".into(), "acme".into(), 7, true);
    let events = [
        StreamEvent::Start {
            id: "msg_1".into(),
            model: "claude".into(),
        },
        StreamEvent::ToolCallStart {
            choice: 0,
            index: 0,
            id: "toolu_1".into(),
            name: "f".into(),
        },
        StreamEvent::Usage(Usage {
            input_total: Some(5),
            ..Usage::default()
        }),
    ];
    let frames = encode_all(&mut encoder, &events);
    let payloads = payloads(&frames);
    let n = payloads.len();
    assert_eq!(
        payloads[n - 3]["choices"][0]["finish_reason"],
        "tool_calls",
        "inferred finish"
    );
    assert_eq!(payloads[n - 2]["choices"], json!([]));
    assert_eq!(payloads[n - 2]["usage"]["prompt_tokens"], 5);
    assert_eq!(payloads[n - 1], json!("[DONE]"));
    for payload in &payloads[..n - 1] {
        assert_eq!(payload["id"], "chatcmpl-1");
        assert_eq!(payload["model"], "acme");
        assert_eq!(payload["created"], 7);
        assert_eq!(payload["object"], "chat.completion.chunk");
    }
}

#[test]
fn stream_usage_chunk_only_when_the_client_asked() {
    let events = [
        StreamEvent::TextDelta {
            choice: 0,
            text: "x".into(),
        },
        StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::Stop,
        },
        StreamEvent::Usage(Usage {
            input_total: Some(3),
            output_total: Some(1),
            ..Usage::default()
        }),
    ];
    let without = payloads(&encode_all(
        &mut OpenAiStreamEncoder::new("c".into(), "m".into(), 1, false),
        &events,
    ));
    assert!(
        without.iter().all(|p| p.get("usage").is_none()),
        "{without:?}"
    );
    let with = payloads(&encode_all(
        &mut OpenAiStreamEncoder::new("c".into(), "m".into(), 1, true),
        &events,
    ));
    assert_eq!(with[with.len() - 2]["usage"]["total_tokens"], 4);
    assert!(with[..with.len() - 2].iter().all(|p| p["usage"].is_null()));
}

#[test]
fn an_error_is_sent_in_band_and_nothing_follows_it() {
    let mut encoder = OpenAiStreamEncoder::new("c".into(), "m".into(), 1, true);
    let error = StreamEvent::Error(StreamError {
        status: 529,
        message: "Overloaded".into(),
    });
    let frames = encode_all(
        &mut encoder,
        &[
            StreamEvent::TextDelta {
                choice: 0,
                text: "partial".into(),
            },
            error,
            StreamEvent::TextDelta {
                choice: 0,
                text: "late".into(),
            },
        ],
    );
    let payloads = payloads(&frames);
    assert_eq!(
        payloads.last(),
        Some(&json!({"error": {"message": "Overloaded", "type": "server_error", "code": null}}))
    );
    assert!(!frames.concat().contains("late") && !frames.concat().contains("[DONE]"));
}

#[test]
fn each_choice_opens_with_its_role_chunk() {
    let events = [
        StreamEvent::TextDelta {
            choice: 1,
            text: "b".into(),
        },
        StreamEvent::TextDelta {
            choice: 0,
            text: "a".into(),
        },
    ];
    let payloads = payloads(&encode_all(
        &mut OpenAiStreamEncoder::new("c".into(), "m".into(), 1, false),
        &events,
    ));
    let role = |p: &serde_json::Value| p["choices"][0]["delta"]["role"] == "assistant";
    assert!(role(&payloads[0]) && payloads[0]["choices"][0]["index"] == 1);
    assert!(role(&payloads[2]) && payloads[2]["choices"][0]["index"] == 0);
    // Both unfinished choices are finished with `stop` before `[DONE]`.
    let finishes = payloads
        .iter()
        .filter(|p| p["choices"][0]["finish_reason"] == "stop")
        .count();
    assert_eq!(finishes, 2);
}

#[test]
fn a_streamed_refusal_is_visible_text() {
    let text = transcript(&[json!({"id": "c", "model": "m", "choices": [{"index": 0,
        "delta": {"refusal": "I can't help with that."}, "finish_reason": null}]})]);
    let events = decode_every_split(OpenAiStreamDecoder::new, &text);
    assert!(events.contains(&StreamEvent::TextDelta {
        choice: 0,
        text: "I can't help with that.".into()
    }));
}

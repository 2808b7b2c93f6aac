//! MiniMax streams: the recorded quirks (golden transcripts, every byte split), errors in a
//! chunk, and a property over MiniMax-shaped transcripts built from canonical events.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::protocol::canonical::{FinishReason, StreamEvent, Usage};
use crate::protocol::minimax::MiniMaxStreamDecoder;
use crate::protocol::openai::codec_tests::{
    assert_golden_json, decode_every_split, decode_pieces, fixture, payloads,
};
use crate::protocol::openai::OpenAiStreamEncoder;
use crate::protocol::StreamEncoder;

fn texts(events: &[StreamEvent]) -> (String, String) {
    let mut reasoning = String::new();
    let mut text = String::new();
    for event in events {
        match event {
            StreamEvent::ReasoningDelta { text: t, .. } => reasoning.push_str(t),
            StreamEvent::TextDelta { text: t, .. } => text.push_str(t),
            _ => {}
        }
    }
    (reasoning, text)
}

#[test]
fn m2_stream_quirks_decode_to_the_golden_events() {
    let events = decode_every_split(MiniMaxStreamDecoder::new, &fixture("minimax/stream_m2.sse"));
    assert_golden_json("minimax/stream_m2.events.json", &events);
    // The repeated whole message at the end is not appended a second time.
    assert_eq!(
        texts(&events),
        ("The user asks about Paris.".into(), "Let me check.".into())
    );
    let finishes = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Finish { .. }))
        .count();
    assert_eq!(finishes, 1);
    let starts = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ToolCallStart { .. }))
        .count();
    assert_eq!(starts, 1);
}

#[test]
fn cumulative_reasoning_and_stray_think_tags_are_not_shown_twice() {
    let events = decode_every_split(
        MiniMaxStreamDecoder::new,
        &fixture("minimax/stream_cumulative_think.sse"),
    );
    assert_eq!(
        texts(&events),
        (
            "Cumulative reasoning: step one, step two.stray tags".into(),
            "Done.".into()
        )
    );
    assert!(events.contains(&StreamEvent::Finish {
        choice: 0,
        reason: FinishReason::Stop
    }));
}

#[test]
fn minimax_errors_in_200_inside_a_stream_end_it() {
    let events = decode_every_split(
        MiniMaxStreamDecoder::new,
        &fixture("minimax/stream_error.sse"),
    );
    assert_golden_json("minimax/stream_error.events.json", &events);
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Error(e)) if e.status == 429 && e.message.contains("1002")
    ));
    assert!(!texts(&events).1.contains("never read"));
}

/// Pieces of a single-choice stream MiniMax could send.
#[derive(Debug, Clone)]
enum Step {
    Text(String),
    Reasoning(String),
    ToolStart(String),
    ToolArgs(u32, String),
}

fn step() -> impl Strategy<Value = Step> {
    // Text starts with a letter: a leading `<` or blank would be held back (a possible
    // `<think>`), which changes how pieces are grouped but not what they say.
    prop_oneof![
        "[a-zA-Z][^<]{0,10}".prop_map(Step::Text),
        "[a-zA-Z][^<]{0,10}".prop_map(Step::Reasoning),
        "[a-z_]{1,8}".prop_map(Step::ToolStart),
        (0u32..3, "\\PC{1,8}").prop_map(|(i, a)| Step::ToolArgs(i, a)),
    ]
}

/// Rewrites OpenAI chunks into MiniMax's shape: reasoning in `reasoning_details`, `"role":""`
/// on later deltas, `delta:null` on the finish chunk, and a whole-message repeat (with made-up
/// content that must not show) before the usage chunk.
fn minimax_shape(frames: &[String]) -> String {
    let mut out = String::new();
    for mut payload in payloads(frames) {
        if payload == json!("[DONE]") {
            out.push_str("data: [DONE]\n\n");
            continue;
        }
        if payload["choices"] == json!([]) {
            let repeat = json!({"id": payload["id"], "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "REPEATED",
                        "reasoning_details": [{"text": "REPEATED"}]}}],
                "usage": payload["usage"], "base_resp": {"status_code": 0, "status_msg": ""}});
            out.push_str(&format!("data: {repeat}\n\n"));
        }
        if let Some(choice) = payload["choices"].get_mut(0) {
            let delta = &mut choice["delta"];
            if let Some(Value::String(reasoning)) = delta.get("reasoning_content").cloned() {
                delta["reasoning_details"] = json!([{"type": "reasoning.text", "text": reasoning}]);
                delta.as_object_mut().map(|d| d.remove("reasoning_content"));
            }
            if delta.get("role").is_none() {
                delta["role"] = json!("");
            }
            if !choice["finish_reason"].is_null() {
                choice["delta"] = Value::Null;
            }
        }
        out.push_str(&format!("data: {payload}\n\n"));
    }
    out
}

proptest! {
    #[test]
    fn minimax_shaped_streams_decode_to_the_events_they_carry(
        steps in prop::collection::vec(step(), 0..10),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut events = vec![StreamEvent::Start { id: "mm".into(), model: "MiniMax-M2".into() }];
        let mut tools = 0u32;
        for step in steps {
            events.push(match step {
                Step::Text(text) => StreamEvent::TextDelta { choice: 0, text },
                Step::Reasoning(text) => StreamEvent::ReasoningDelta { choice: 0, text },
                Step::ToolStart(name) => {
                    tools += 1;
                    StreamEvent::ToolCallStart { choice: 0, index: tools - 1, id: format!("call_{tools}"), name }
                }
                Step::ToolArgs(_, _) if tools == 0 => continue,
                Step::ToolArgs(i, arguments) => StreamEvent::ToolCallDelta { choice: 0, index: i % tools, arguments },
            });
        }
        let reason = if tools > 0 { FinishReason::ToolCalls } else { FinishReason::Length };
        events.push(StreamEvent::Finish { choice: 0, reason });
        let usage = Usage { input_total: Some(7), output_total: Some(3), ..Usage::default() };
        events.push(StreamEvent::Usage(usage));

        let mut encoder = OpenAiStreamEncoder::new("mm".into(), "MiniMax-M2".into(), 1, true);
        let mut frames: Vec<String> = events.iter().flat_map(|e| encoder.feed(e)).collect();
        frames.extend(encoder.finish());
        let text = minimax_shape(&frames);
        let at = cut.index(text.len() + 1);
        let mut decoded = decode_pieces(&mut MiniMaxStreamDecoder::new(), &[&text.as_bytes()[..at], &text.as_bytes()[at..]]);
        // The whole-message repeat and the usage chunk both carry the usage: said twice, same
        // numbers (the latest value wins, so a repeat changes nothing).
        decoded.dedup_by(|a, b| matches!(a, StreamEvent::Usage(_)) && a == b);
        prop_assert_eq!(decoded, events);
    }
}

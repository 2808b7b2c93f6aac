//! Properties of streams and decoders: canonical events survive the client encoder and the
//! upstream decoder (incremental and cumulative, split anywhere), and no decoder panics on any
//! bytes or JSON shape.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::props::usage;
use super::{decode_chunks, parse_sse};
use crate::protocol::canonical::{FinishReason, StreamEvent, Usage};
use crate::protocol::dashscope::{
    decode_error, decode_request, decode_response, DashScopeOptions, DashScopeStreamDecoder,
    DashScopeStreamEncoder, ResultFormat,
};
use crate::protocol::{StreamDecoder, StreamEncoder};

/// A canonical stream for one choice, and what a reader of it sees.
#[derive(Debug, Clone)]
enum Step {
    Text(String),
    Reasoning(String),
    Call(String, String, Vec<String>),
    Usage(Usage),
}

#[derive(Debug, Default, PartialEq)]
struct Seen {
    text: String,
    reasoning: String,
    calls: Vec<(String, String, String)>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

fn seen(events: &[StreamEvent]) -> Seen {
    let mut seen = Seen::default();
    for event in events {
        match event {
            StreamEvent::TextDelta { text, .. } => seen.text.push_str(text),
            StreamEvent::ReasoningDelta { text, .. } => seen.reasoning.push_str(text),
            StreamEvent::ToolCallStart { id, name, .. } => {
                seen.calls.push((id.clone(), name.clone(), String::new()))
            }
            StreamEvent::ToolCallDelta {
                index, arguments, ..
            } => seen.calls[*index as usize].2.push_str(arguments),
            StreamEvent::Finish { reason, .. } => seen.finish = Some(reason.clone()),
            StreamEvent::Usage(usage) => seen.usage.get_or_insert_with(Usage::default).merge(usage),
            _ => {}
        }
    }
    seen
}

fn steps() -> impl Strategy<Value = (Vec<Step>, bool)> {
    let step = prop_oneof![
        3 => "\\PC{1,4}".prop_map(Step::Text),
        1 => "\\PC{1,4}".prop_map(Step::Reasoning),
        1 => ("call_[a-z0-9]{1,6}", "[a-z]{1,6}", vec("\\PC{1,4}", 0..4))
            .prop_map(|(id, name, args)| Step::Call(id, name, args)),
        1 => usage().prop_map(Step::Usage),
    ];
    (vec(step, 0..12), any::<bool>())
}

fn events(steps: &[Step], long: bool) -> Vec<StreamEvent> {
    let mut events = vec![StreamEvent::Start {
        id: "up".into(),
        model: "m".into(),
    }];
    let mut calls = 0;
    for step in steps {
        match step.clone() {
            Step::Text(text) => events.push(StreamEvent::TextDelta { choice: 0, text }),
            Step::Reasoning(text) => events.push(StreamEvent::ReasoningDelta { choice: 0, text }),
            Step::Usage(usage) => events.push(StreamEvent::Usage(usage)),
            Step::Call(id, name, pieces) => {
                let index = calls;
                calls += 1;
                events.push(StreamEvent::ToolCallStart {
                    choice: 0,
                    index,
                    id,
                    name,
                });
                events.extend(
                    pieces
                        .into_iter()
                        .map(|arguments| StreamEvent::ToolCallDelta {
                            choice: 0,
                            index,
                            arguments,
                        }),
                );
            }
        }
    }
    let reason = match (long, calls > 0) {
        (true, _) => FinishReason::Length,
        (false, true) => FinishReason::ToolCalls,
        (false, false) => FinishReason::Stop,
    };
    events.push(StreamEvent::Finish { choice: 0, reason });
    events
}

/// The one documented misreading: an incremental piece that starts with the whole field so far.
fn ambiguous(events: &[StreamEvent]) -> bool {
    let mut fields: std::collections::HashMap<String, String> = Default::default();
    events.iter().any(|event| {
        let (key, piece) = match event {
            StreamEvent::TextDelta { text, .. } => ("text".to_string(), text),
            StreamEvent::ReasoningDelta { text, .. } => ("reasoning".to_string(), text),
            StreamEvent::ToolCallDelta {
                index, arguments, ..
            } => (format!("call{index}"), arguments),
            _ => return false,
        };
        let known = fields.entry(key).or_default();
        let clash = !known.is_empty() && piece.starts_with(known.as_str());
        known.push_str(piece);
        clash
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn streams_survive_encode_then_decode(
        (steps, long) in steps(),
        incremental in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let events = events(&steps, long);
        prop_assume!(!incremental || !ambiguous(&events));
        let options = DashScopeOptions { result_format: ResultFormat::Message, incremental_output: incremental };
        let mut encoder = DashScopeStreamEncoder::new("gw".into(), options);
        let mut sse: String = events.iter().flat_map(|e| encoder.feed(e)).collect();
        sse.extend(encoder.finish());
        let bytes = sse.as_bytes();
        let at = cut.index(bytes.len() + 1);
        let (decoded, done) = decode_chunks(&[&bytes[..at], &bytes[at..]]);
        prop_assert!(done, "the final event ends the stream");
        prop_assert_eq!(seen(&decoded), seen(&events));
    }

    #[test]
    fn decoders_never_panic_on_bytes(bytes in vec(any::<u8>(), 0..300)) {
        let _ = decode_request(&bytes, true);
        let _ = decode_response(&bytes);
        let _ = decode_error(400, &bytes);
        let mut decoder = DashScopeStreamDecoder::new();
        for event in parse_sse(&[&bytes]) {
            let _ = decoder.feed(&event);
        }
    }

    #[test]
    fn decoders_never_panic_on_json_shapes(a in json_value(), b in json_value(), final_ in any::<bool>()) {
        let bodies = [
            json!({"model": "m", "input": {"messages": [a.clone(), b.clone()]}, "parameters": b.clone()}),
            json!({"model": "m", "input": {"messages": [{"role": "assistant", "content": a.clone(), "tool_calls": [b.clone()]}]}}),
            json!({"output": {"choices": [{"message": a.clone(), "finish_reason": if final_ { "stop" } else { "null" }}]}, "usage": b.clone()}),
            json!({"output": a.clone(), "request_id": b.clone()}),
            a.clone(),
        ];
        let mut decoder = DashScopeStreamDecoder::new().with_choices(2);
        for body in &bodies {
            let text = body.to_string();
            let _ = decode_request(text.as_bytes(), false);
            let _ = decode_response(text.as_bytes());
            let _ = decode_error(200, text.as_bytes());
            let sse = super::result_frame(1, body);
            for event in parse_sse(&[sse.as_bytes()]) {
                let _ = decoder.feed(&event);
            }
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "\\PC{0,6}".prop_map(Value::from),
        prop::sample::select(vec![
            "null",
            "stop",
            "tool_calls",
            "length",
            "text",
            "message",
            "user",
            "assistant",
            "tool",
            "system",
            "function",
            "auto",
            "required",
            "data:image/png;base64,AA",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        let key = prop::sample::select(vec![
            "role",
            "content",
            "text",
            "image",
            "image_url",
            "url",
            "tool_calls",
            "id",
            "index",
            "function",
            "name",
            "arguments",
            "tool_call_id",
            "reasoning_content",
            "finish_reason",
            "message",
            "choices",
            "usage",
            "input_tokens",
            "output_tokens",
            "stop",
            "tools",
            "tool_choice",
            "result_format",
            "type",
            "messages",
            "prompt",
            "output",
            "code",
            "prompt_tokens_details",
            "cached_tokens",
            "n",
            "max_tokens",
            "response_format",
        ]);
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..5).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

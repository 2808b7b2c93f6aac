//! Round-trip property of streams: canonical events → OpenAI chunks → canonical events, with
//! the SSE text cut at random byte boundaries in between.

use proptest::prelude::*;

use super::decode_pieces;
use super::properties::words;
use crate::protocol::canonical::{FinishReason, StreamEvent, Usage};
use crate::protocol::openai::{OpenAiStreamDecoder, OpenAiStreamEncoder};
use crate::protocol::StreamEncoder;

/// Steps of a single-choice stream; tool pieces refer to calls already started.
#[derive(Debug, Clone)]
enum Step {
    Text(String),
    Reasoning(String),
    Signature(String),
    Redacted(String),
    ToolStart(String),
    ToolArgs(usize, String),
    Usage(Option<u64>, Option<u64>, Option<u64>),
}

fn step() -> impl Strategy<Value = Step> {
    let count = proptest::option::of(0u64..5000);
    prop_oneof![
        words().prop_map(Step::Text),
        words().prop_map(Step::Reasoning),
        "[A-Za-z0-9+/=]{4,12}".prop_map(Step::Signature),
        "[A-Za-z0-9+/=]{4,12}".prop_map(Step::Redacted),
        "[a-z_]{1,8}".prop_map(Step::ToolStart),
        (0usize..4, "\\PC{1,8}").prop_map(|(i, a)| Step::ToolArgs(i, a)),
        (count.clone(), count.clone(), count).prop_map(|(i, o, c)| Step::Usage(i, o, c)),
    ]
}

/// The canonical events of the steps, and what an OpenAI client's decoder must read back.
fn stream_case(steps: &[Step], finish: FinishReason) -> (Vec<StreamEvent>, Vec<StreamEvent>) {
    let mut events = vec![StreamEvent::Start {
        id: "msg_1".into(),
        model: "upstream".into(),
    }];
    let mut expected = vec![StreamEvent::Start {
        id: "chatcmpl-1".into(),
        model: "acme".into(),
    }];
    let mut tools = 0u32;
    let mut usage = Usage::default();
    for step in steps {
        let event = match step.clone() {
            Step::Text(text) => StreamEvent::TextDelta { choice: 0, text },
            Step::Reasoning(text) => StreamEvent::ReasoningDelta { choice: 0, text },
            Step::Signature(signature) => StreamEvent::ReasoningSignature {
                choice: 0,
                signature,
            },
            Step::Redacted(data) => StreamEvent::RedactedReasoning { choice: 0, data },
            Step::ToolStart(name) => {
                tools += 1;
                StreamEvent::ToolCallStart {
                    choice: 0,
                    index: tools - 1,
                    id: format!("call_{tools}"),
                    name,
                }
            }
            Step::ToolArgs(_, _) if tools == 0 => continue,
            Step::ToolArgs(i, arguments) => StreamEvent::ToolCallDelta {
                choice: 0,
                index: i as u32 % tools,
                arguments,
            },
            Step::Usage(input, output, cached) => {
                let u = Usage {
                    input_total: input,
                    output_total: output,
                    cache_read: cached,
                    ..Usage::default()
                };
                usage.merge(&u);
                events.push(StreamEvent::Usage(u));
                continue;
            }
        };
        events.push(event.clone());
        expected.push(event);
    }
    let finish = match finish {
        FinishReason::Stop if tools > 0 => FinishReason::ToolCalls,
        FinishReason::ToolCalls if tools == 0 => FinishReason::Stop,
        other => other,
    };
    events.push(StreamEvent::Finish {
        choice: 0,
        reason: finish.clone(),
    });
    expected.push(StreamEvent::Finish {
        choice: 0,
        reason: finish,
    });
    // One usage chunk at the end with the latest numbers; the totals are never missing there.
    usage.input_total = usage.input_total.or(Some(0));
    usage.output_total = usage.output_total.or(Some(0));
    expected.push(StreamEvent::Usage(usage));
    (events, expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn streams_survive_encode_then_decode_cut_anywhere(
        steps in prop::collection::vec(step(), 0..12),
        finish in prop_oneof![Just(FinishReason::Stop), Just(FinishReason::Length), Just(FinishReason::ContentFilter), Just(FinishReason::ToolCalls)],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let (events, expected) = stream_case(&steps, finish);
        let mut encoder = OpenAiStreamEncoder::new("chatcmpl-1".into(), "acme".into(), 9, true);
        let mut text: String = events.iter().flat_map(|e| encoder.feed(e)).collect();
        text.push_str(&encoder.finish().concat());
        let bytes = text.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for point in points {
            pieces.push(&bytes[from..point]);
            from = point;
        }
        pieces.push(&bytes[from..]);
        let decoded = decode_pieces(&mut OpenAiStreamDecoder::new(), &pieces);
        prop_assert_eq!(decoded, expected);
    }
}

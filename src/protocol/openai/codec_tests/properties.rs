//! Round-trip properties: whatever the OpenAI dialect can carry survives encode → decode, for
//! requests, responses and streams (streams also cut at random byte boundaries).

use proptest::prelude::*;
use serde_json::json;

use super::decode_pieces;
use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, ImageSource, Message, Part, ReasoningConfig,
    ResponseFormat, Role, StreamEvent, SystemBlock, Tool, ToolChoice, Usage,
};
use crate::protocol::openai::{
    decode_request, decode_response, encode_request, encode_response, OpenAiStreamDecoder,
    OpenAiStreamEncoder,
};
use crate::protocol::StreamEncoder;

fn words() -> impl Strategy<Value = String> {
    "\\PC{1,12}"
}

fn text_part() -> impl Strategy<Value = Part> {
    words().prop_map(|text| Part::Text {
        text,
        cache_control: None,
    })
}

fn image_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        ("(png|jpeg|gif|webp)", "[A-Za-z0-9+/]{4,12}").prop_map(|(kind, data)| {
            ImageSource::Base64 {
                media_type: format!("image/{kind}"),
                data,
            }
        }),
        "[a-z]{1,8}".prop_map(|p| ImageSource::Url {
            url: format!("https://example.com/{p}.png")
        }),
    ]
    .prop_map(|source| Part::Image { source })
}

fn tool_call() -> impl Strategy<Value = Part> {
    ("call_[a-z0-9]{1,6}", "[a-z_]{1,8}", "\\PC{0,16}").prop_map(|(id, name, arguments)| {
        Part::ToolCall {
            id,
            name,
            arguments,
        }
    })
}

fn unsigned_reasoning() -> impl Strategy<Value = Part> {
    words().prop_map(|text| Part::Reasoning {
        text,
        signature: None,
        redacted: None,
    })
}

fn turn() -> impl Strategy<Value = Message> {
    let name = proptest::option::of("[a-z]{1,6}");
    prop_oneof![
        (
            prop::collection::vec(prop_oneof![text_part(), image_part()], 1..4),
            name.clone()
        )
            .prop_map(|(parts, name)| Message {
                role: Role::User,
                parts,
                name
            }),
        (
            proptest::option::of(unsigned_reasoning()),
            proptest::option::of(text_part()),
            prop::collection::vec(tool_call(), 0..3),
            name,
        )
            .prop_filter_map(
                "an empty assistant turn is dropped",
                |(reasoning, text, calls, name)| {
                    let parts: Vec<Part> = reasoning.into_iter().chain(text).chain(calls).collect();
                    (!parts.is_empty()).then_some(Message {
                        role: Role::Assistant,
                        parts,
                        name,
                    })
                }
            ),
        prop::collection::vec(
            ("call_[a-z0-9]{1,6}", proptest::option::of(text_part())),
            1..3
        )
        .prop_map(|results| Message {
            role: Role::Tool,
            parts: results
                .into_iter()
                .map(|(call_id, content)| Part::ToolResult {
                    call_id,
                    content: content.into_iter().collect(),
                    is_error: false,
                })
                .collect(),
            name: None,
        }),
    ]
}

/// Consecutive tool turns are one canonical Tool message (as the decoder builds them).
fn merge_tool_turns(messages: Vec<Message>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for message in messages {
        match out.last_mut() {
            Some(last) if last.role == Role::Tool && message.role == Role::Tool => {
                last.parts.extend(message.parts)
            }
            _ => out.push(message),
        }
    }
    out
}

fn tool() -> impl Strategy<Value = Tool> {
    (
        "[a-z_]{1,10}",
        proptest::option::of(words()),
        proptest::option::of(Just(
            json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        )),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(name, description, parameters, strict)| Tool {
            name,
            description,
            parameters,
            strict,
        })
}

fn ratio(max: i32) -> impl Strategy<Value = Option<f64>> {
    proptest::option::of((-max..=max).prop_map(|x| f64::from(x) / 100.0))
}

fn request() -> impl Strategy<Value = ChatRequest> {
    let reasoning = proptest::option::of(prop_oneof![
        "(low|medium|high|xhigh)".prop_map(|e| ReasoningConfig {
            enabled: true,
            effort: Some(e),
            budget_tokens: None
        }),
        "(none|minimal)".prop_map(|e| ReasoningConfig {
            enabled: false,
            effort: Some(e),
            budget_tokens: None
        }),
    ]);
    let format = proptest::option::of(prop_oneof![
        Just(ResponseFormat::Text),
        Just(ResponseFormat::JsonObject),
        (
            proptest::option::of("[a-z]{1,6}"),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(name, strict)| {
                ResponseFormat::JsonSchema {
                    name,
                    schema: json!({"type": "object"}),
                    strict,
                }
            }),
    ]);
    let choice = proptest::option::of(prop_oneof![
        Just(ToolChoice::Auto),
        Just(ToolChoice::None),
        Just(ToolChoice::Required),
        "[a-z]{1,6}".prop_map(ToolChoice::Named),
    ]);
    let sampling = (
        ratio(200),
        ratio(100),
        ratio(200),
        ratio(200),
        proptest::option::of(any::<i64>()),
        proptest::option::of(1u32..=8),
    );
    (
        (
            "[a-z0-9-]{1,10}",
            proptest::option::of(words()),
            prop::collection::vec(turn(), 1..6),
        ),
        (
            proptest::option::of(1u64..100_000),
            sampling,
            prop::collection::vec(words(), 0..4),
        ),
        (
            prop::collection::vec(tool(), 0..3),
            choice,
            proptest::option::of(any::<bool>()),
        ),
        (
            reasoning,
            format,
            proptest::option::of("[a-z0-9]{1,8}"),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (model, system, messages),
                (limit, sampling, stop),
                (tools, tool_choice, parallel),
                rest,
            )| {
                let (temperature, top_p, presence, frequency, seed, n) = sampling;
                let (reasoning, response_format, user, stream) = rest;
                ChatRequest {
                    model,
                    system: system
                        .into_iter()
                        .map(|text| SystemBlock {
                            text,
                            cache_control: None,
                        })
                        .collect(),
                    messages: merge_tool_turns(messages),
                    tools,
                    tool_choice,
                    parallel_tool_calls: parallel,
                    max_output_tokens: limit,
                    temperature: temperature.map(f64::abs),
                    top_p: top_p.map(f64::abs),
                    top_k: None,
                    stop,
                    seed,
                    n,
                    presence_penalty: presence,
                    frequency_penalty: frequency,
                    user,
                    reasoning,
                    response_format,
                    stream,
                    // The encoder always asks a streaming upstream for usage.
                    include_usage: stream,
                }
            },
        )
}

fn reasoning_blocks() -> impl Strategy<Value = Vec<Part>> {
    let block = prop_oneof![
        unsigned_reasoning(),
        ("\\PC{0,12}", "[A-Za-z0-9+/=]{4,16}").prop_map(|(text, sig)| Part::Reasoning {
            text,
            signature: Some(sig),
            redacted: None
        }),
        "[A-Za-z0-9+/=]{4,16}".prop_map(|data| Part::Reasoning {
            text: String::new(),
            signature: None,
            redacted: Some(data)
        }),
    ];
    prop::collection::vec(block, 0..3).prop_map(|mut blocks| {
        // Only signed or redacted blocks travel one by one (in `thinking_blocks`); plain
        // reasoning is one `reasoning_content`.
        let signed = blocks.iter().any(|b| {
            matches!(
                b,
                Part::Reasoning {
                    signature: Some(_),
                    ..
                } | Part::Reasoning {
                    redacted: Some(_),
                    ..
                }
            )
        });
        if !signed {
            blocks.truncate(1);
        }
        blocks
    })
}

fn response() -> impl Strategy<Value = ChatResponse> {
    let finish = prop_oneof![
        Just(FinishReason::Stop),
        Just(FinishReason::Length),
        Just(FinishReason::ContentFilter),
        Just(FinishReason::ToolCalls)
    ];
    let choice = (
        reasoning_blocks(),
        proptest::option::of(text_part()),
        prop::collection::vec(tool_call(), 0..3),
        finish,
    );
    let usage = (
        0u64..10_000,
        0u64..10_000,
        proptest::option::of(0u64..100),
        proptest::option::of(0u64..100),
        proptest::option::of(0u64..100),
    );
    (
        "chatcmpl-[a-z0-9]{1,8}",
        "[a-z0-9-]{1,10}",
        0i64..2_000_000_000,
        prop::collection::vec(choice, 1..3),
        usage,
    )
        .prop_map(
            |(id, model, created, choices, (input, output, cache_read, cache_write, reasoning))| {
                ChatResponse {
                    id,
                    model,
                    created,
                    choices: choices
                        .into_iter()
                        .enumerate()
                        .map(|(index, (reasoning, text, calls, finish))| {
                            // A plain `stop` next to tool calls reads back as `tool_calls`.
                            let finish = match finish {
                                FinishReason::Stop if !calls.is_empty() => FinishReason::ToolCalls,
                                other => other,
                            };
                            let parts = reasoning.into_iter().chain(text).chain(calls).collect();
                            Choice {
                                index: index as u32,
                                parts,
                                finish: Some(finish),
                            }
                        })
                        .collect(),
                    usage: Some(Usage {
                        input_total: Some(input),
                        output_total: Some(output),
                        cache_read,
                        cache_write,
                        reasoning,
                        estimated: false,
                    }),
                }
            },
        )
}

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
    fn requests_survive_encode_then_decode(request in request()) {
        let body = encode_request(&request, &request.model).expect("encodable");
        let decoded = decode_request(body.to_string().as_bytes()).expect("decodable");
        prop_assert_eq!(decoded, request);
    }

    #[test]
    fn responses_survive_encode_then_decode(response in response()) {
        let body = encode_response(&response, &ChatRequest::default());
        let decoded = decode_response(body.to_string().as_bytes()).expect("decodable");
        prop_assert_eq!(decoded, response);
    }

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

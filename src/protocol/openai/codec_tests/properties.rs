//! Round-trip properties: whatever the OpenAI dialect can carry survives encode → decode, for
//! requests and responses (streams: `stream_properties.rs`).

use proptest::prelude::*;
use serde_json::json;

use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, ImageSource, Message, Part, ReasoningConfig,
    ResponseFormat, Role, SystemBlock, Tool, ToolChoice, Usage,
};
use crate::protocol::openai::{decode_request, decode_response, encode_request, encode_response};

pub(super) fn words() -> impl Strategy<Value = String> {
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
}

//! proptest strategies for canonical values Anthropic can carry whole: what `props.rs` round-trips.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, ImageSource, Message, Part, ReasoningConfig,
    Role, StreamEvent, SystemBlock, Tool, ToolChoice, Usage,
};

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAE=";

pub fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,!?é中]{1,12}"
}

pub fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_]{1,10}"
}

/// Compact JSON of an object, as a decoded `tool_use.input` reads.
pub fn arguments() -> impl Strategy<Value = String> {
    prop::collection::btree_map(
        "[a-z]{1,5}",
        prop_oneof![
            any::<i32>().prop_map(Value::from),
            text().prop_map(Value::from)
        ],
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()).to_string())
}

pub fn text_part() -> impl Strategy<Value = Part> {
    (text(), any::<bool>()).prop_map(|(text, cached)| Part::Text {
        text,
        cache_control: cached.then(|| json!({"type": "ephemeral"})),
    })
}

pub fn image_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        Just(ImageSource::Base64 {
            media_type: "image/png".into(),
            data: PNG.into()
        }),
        ident().prop_map(|name| ImageSource::Url {
            url: format!("https://example.com/{name}.png")
        }),
    ]
    .prop_map(|source| Part::Image { source })
}

pub fn user_parts() -> impl Strategy<Value = Vec<Part>> {
    prop::collection::vec(prop_oneof![3 => text_part(), 1 => image_part()], 1..4)
}

pub fn assistant_parts() -> impl Strategy<Value = Vec<Part>> {
    let reasoning =
        (text(), ident(), any::<bool>()).prop_map(|(text, sig, redacted)| Part::Reasoning {
            text: if redacted { String::new() } else { text },
            signature: (!redacted).then_some(sig.clone()),
            redacted: redacted.then_some(sig),
        });
    let call = (ident(), ident(), arguments()).prop_map(|(id, name, arguments)| Part::ToolCall {
        id,
        name,
        arguments,
    });
    (
        prop::collection::vec(reasoning, 0..2),
        prop::option::of(text_part()),
        prop::collection::vec(call, 0..3),
    )
        .prop_filter("a turn says something", |(r, t, c)| {
            !r.is_empty() || t.is_some() || !c.is_empty()
        })
        .prop_map(|(mut parts, text, calls)| {
            parts.extend(text);
            parts.extend(calls);
            parts
        })
}

pub fn results() -> impl Strategy<Value = Vec<Part>> {
    let result = (
        ident(),
        prop::collection::vec(prop_oneof![text_part(), image_part()], 0..2),
        any::<bool>(),
    )
        .prop_map(|(call_id, content, is_error)| Part::ToolResult {
            call_id,
            content,
            is_error,
        });
    prop::collection::vec(result, 1..3)
}

/// Alternating turns; a user turn may open with tool results (a canonical Tool message).
pub fn messages() -> impl Strategy<Value = Vec<Message>> {
    let message = |role, parts| Message {
        role,
        parts,
        name: None,
    };
    let user_turn = (prop::option::of(results()), prop::option::of(user_parts()))
        .prop_filter("non-empty", |(r, u)| r.is_some() || u.is_some())
        .prop_map(move |(results, user)| {
            let mut turn = Vec::new();
            turn.extend(results.map(|r| message(Role::Tool, r)));
            turn.extend(user.map(|u| message(Role::User, u)));
            turn
        });
    prop::collection::vec((user_turn, prop::option::of(assistant_parts())), 1..4).prop_map(
        move |turns| {
            let mut messages = Vec::new();
            let count = turns.len();
            for (i, (user, assistant)) in turns.into_iter().enumerate() {
                messages.extend(user);
                match assistant {
                    Some(parts) => messages.push(message(Role::Assistant, parts)),
                    // Without an assistant turn between, two user turns would merge.
                    None if i + 1 < count => messages.push(message(
                        Role::Assistant,
                        vec![Part::Text {
                            text: "ok".into(),
                            cache_control: None,
                        }],
                    )),
                    None => {}
                }
            }
            messages
        },
    )
}

pub fn requests() -> impl Strategy<Value = ChatRequest> {
    let tool = (ident(), prop::option::of(text()), any::<Option<bool>>()).prop_map(
        |(name, description, strict)| Tool {
            name,
            description,
            parameters: Some(json!({"type": "object", "properties": {"x": {"type": "string"}}})),
            strict,
        },
    );
    let choice = prop_oneof![
        Just(ToolChoice::Auto),
        Just(ToolChoice::Required),
        Just(ToolChoice::None),
        ident().prop_map(ToolChoice::Named)
    ];
    (
        (
            messages(),
            prop::collection::vec(text(), 0..2),
            prop::collection::vec(tool, 0..3),
            prop::option::of(choice),
            any::<bool>(),
        ),
        (
            1u64..100_000,
            prop::option::of(0u32..=100),
            prop::option::of(0u32..=100),
            prop::option::of(1u64..500),
        ),
        (
            prop::collection::vec(text(), 0..3),
            prop::option::of(ident()),
            any::<bool>(),
            prop::option::of(prop_oneof![Just(None), (1024u64..8000).prop_map(Some)]),
        ),
    )
        .prop_map(
            |(
                (messages, system, tools, choice, no_parallel),
                (max, temp, top_p, top_k),
                (stop, user, stream, reasoning),
            )| {
                let thinking = matches!(reasoning, Some(Some(_)));
                let has_tools = !tools.is_empty();
                let choice = choice.filter(|_| has_tools).map(|c| match c {
                    ToolChoice::Required | ToolChoice::Named(_) if thinking => ToolChoice::Auto,
                    c => c,
                });
                let no_parallel = no_parallel
                    && has_tools
                    && matches!(
                        choice,
                        Some(ToolChoice::Auto | ToolChoice::Required | ToolChoice::Named(_))
                    );
                ChatRequest {
                    model: "claude-x".into(),
                    system: system
                        .into_iter()
                        .map(|text| SystemBlock {
                            text,
                            cache_control: None,
                        })
                        .collect(),
                    messages,
                    tools,
                    tool_choice: choice,
                    parallel_tool_calls: no_parallel.then_some(false),
                    max_output_tokens: Some(max + reasoning.flatten().unwrap_or(0)),
                    temperature: temp.filter(|_| !thinking).map(|t| f64::from(t) / 100.0),
                    top_p: top_p.filter(|_| !thinking).map(|p| f64::from(p) / 100.0),
                    top_k: top_k.filter(|_| !thinking),
                    stop,
                    user,
                    reasoning: reasoning.map(|budget| ReasoningConfig {
                        enabled: budget.is_some(),
                        effort: None,
                        budget_tokens: budget,
                    }),
                    stream,
                    include_usage: true,
                    ..ChatRequest::default()
                }
            },
        )
}

pub fn responses() -> impl Strategy<Value = ChatResponse> {
    let finish = prop_oneof![
        Just(FinishReason::Stop),
        Just(FinishReason::Length),
        Just(FinishReason::ContentFilter),
        Just(FinishReason::Pause),
        text().prop_map(|s| FinishReason::StopSequence(Some(s))),
    ];
    (
        assistant_parts(),
        finish,
        (0u64..1000, 0u64..1000, 0u64..1000, 0u64..1000),
        ident(),
    )
        .prop_map(|(parts, finish, (input, read, write, output), id)| {
            // Blocks come back thinking → text → tool_use, without cache_control.
            let rank = |p: &Part| match p {
                Part::Reasoning { .. } => 0,
                Part::Text { .. } => 1,
                _ => 2,
            };
            let mut parts: Vec<Part> = parts
                .into_iter()
                .map(|p| match p {
                    Part::Text { text, .. } => Part::Text {
                        text,
                        cache_control: None,
                    },
                    p => p,
                })
                .collect();
            parts.sort_by_key(rank);
            let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
            ChatResponse {
                id: format!("msg_{id}"),
                model: "claude-x".into(),
                choices: vec![Choice {
                    index: 0,
                    parts,
                    finish: Some(if has_calls {
                        FinishReason::ToolCalls
                    } else {
                        finish
                    }),
                }],
                usage: Some(Usage {
                    input_total: Some(input + read + write),
                    cache_read: Some(read),
                    cache_write: Some(write),
                    output_total: Some(output),
                    reasoning: None,
                    estimated: false,
                }),
                created: 0,
            }
        })
}

/// What a client reconstructs from a stream: reasoning, signature, text, calls, finish, usage.
pub fn stream_events() -> impl Strategy<Value = Vec<StreamEvent>> {
    let piece = "[a-z {}\":,]{1,6}";
    let block = prop_oneof![
        (
            prop::collection::vec(piece, 1..4),
            prop::option::of(ident())
        )
            .prop_map(|(pieces, sig)| {
                let mut events: Vec<StreamEvent> = pieces
                    .into_iter()
                    .map(|text| StreamEvent::ReasoningDelta { choice: 0, text })
                    .collect();
                events.extend(sig.map(|signature| StreamEvent::ReasoningSignature {
                    choice: 0,
                    signature,
                }));
                events
            }),
        prop::collection::vec(piece, 1..4).prop_map(|pieces| pieces
            .into_iter()
            .map(|text| StreamEvent::TextDelta { choice: 0, text })
            .collect()),
        (ident(), ident(), prop::collection::vec(piece, 0..4)).prop_map(|(id, name, pieces)| {
            let mut events = vec![StreamEvent::ToolCallStart {
                choice: 0,
                index: u32::MAX,
                id,
                name,
            }];
            events.extend(
                pieces
                    .into_iter()
                    .map(|arguments| StreamEvent::ToolCallDelta {
                        choice: 0,
                        index: u32::MAX,
                        arguments,
                    }),
            );
            events
        }),
    ];
    (prop::collection::vec(block, 0..5), 0u64..5000).prop_map(|(blocks, output)| {
        let mut events = vec![StreamEvent::Start {
            id: "up".into(),
            model: "m".into(),
        }];
        let mut tools = 0;
        for block in blocks {
            let is_tool = matches!(block[0], StreamEvent::ToolCallStart { .. });
            events.extend(block.into_iter().map(|mut e| {
                if let StreamEvent::ToolCallStart { index, .. }
                | StreamEvent::ToolCallDelta { index, .. } = &mut e
                {
                    *index = tools;
                }
                e
            }));
            tools += u32::from(is_tool);
        }
        events.push(StreamEvent::Finish {
            choice: 0,
            reason: if tools > 0 {
                FinishReason::ToolCalls
            } else {
                FinishReason::Stop
            },
        });
        events.push(StreamEvent::Usage(Usage {
            output_total: Some(output),
            ..Usage::default()
        }));
        events
    })
}

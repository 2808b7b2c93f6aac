//! Properties: what DashScope can carry survives encode → decode (requests, responses and
//! streams, incremental and cumulative, split anywhere), and no decoder panics on any input.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::{decode_chunks, parse_sse};
use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, ImageSource, Message, Part, ReasoningConfig,
    ResponseFormat, Role, StreamEvent, SystemBlock, Tool, ToolChoice, Usage,
};
use crate::protocol::dashscope::{
    decode_error, decode_request, decode_response, encode_request, encode_response,
    DashScopeOptions, DashScopeStreamDecoder, DashScopeStreamEncoder, Endpoint, ResultFormat,
};
use crate::protocol::{StreamDecoder, StreamEncoder};

/// Non-empty text without control characters (multi-byte characters included).
fn words() -> impl Strategy<Value = String> {
    "\\PC{1,10}"
}

/// Floats that survive JSON exactly (quarters).
fn quarters(range: std::ops::Range<i32>) -> impl Strategy<Value = f64> {
    range.prop_map(|q| f64::from(q) * 0.25)
}

fn text(text: String) -> Part {
    Part::Text {
        text,
        cache_control: None,
    }
}

fn tool_call() -> impl Strategy<Value = Part> {
    ("call_[a-z0-9]{1,8}", "[a-z_]{1,10}", "\\PC{0,20}").prop_map(|(id, name, arguments)| {
        Part::ToolCall {
            id,
            name,
            arguments,
        }
    })
}

fn image() -> impl Strategy<Value = Part> {
    prop_oneof![
        "https://example\\.com/[a-z]{1,8}\\.png".prop_map(|url| ImageSource::Url { url }),
        "[A-Za-z0-9+/]{4,16}".prop_map(|data| ImageSource::Base64 {
            media_type: "image/png".into(),
            data
        }),
    ]
    .prop_map(|source| Part::Image { source })
}

fn message() -> impl Strategy<Value = Message> {
    let user = vec(prop_oneof![3 => words().prop_map(text), 1 => image()], 1..4);
    let assistant = (
        proptest::option::of(words()),
        proptest::option::of(words()),
        vec(tool_call(), 0..3),
    )
        .prop_filter("not empty", |(r, t, c)| {
            r.is_some() || t.is_some() || !c.is_empty()
        })
        .prop_map(|(reasoning, answer, calls)| {
            let reasoning = reasoning.map(|text| Part::Reasoning {
                text,
                signature: None,
                redacted: None,
            });
            reasoning
                .into_iter()
                .chain(answer.map(text))
                .chain(calls)
                .collect()
        });
    let results = vec(
        ("call_[a-z0-9]{1,8}", proptest::option::of(words())).prop_map(|(call_id, content)| {
            Part::ToolResult {
                call_id,
                content: content.map(text).into_iter().collect(),
                is_error: false,
            }
        }),
        1..3,
    );
    prop_oneof![
        user.prop_map(|parts| (Role::User, parts)),
        assistant.prop_map(|parts| (Role::Assistant, parts)),
        results.prop_map(|parts| (Role::Tool, parts)),
    ]
    .prop_map(|(role, parts)| Message {
        role,
        parts,
        name: None,
    })
}

fn tool() -> impl Strategy<Value = Tool> {
    (
        "[a-z_]{1,10}",
        proptest::option::of(words()),
        proptest::option::of(Just(json!({"type": "object", "properties": {}}))),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(name, description, parameters, strict)| Tool {
            name,
            description,
            parameters,
            strict,
        })
}

prop_compose! {
    fn request()(
        system in vec(words(), 0..3),
        messages in vec(message(), 1..6),
        tools in vec(tool(), 0..3),
        tool_choice in proptest::option::of(prop_oneof![
            Just(ToolChoice::Auto), Just(ToolChoice::None),
            "[a-z_]{1,10}".prop_map(ToolChoice::Named)]),
        parallel_tool_calls in proptest::option::of(any::<bool>()),
        max_output_tokens in proptest::option::of(1u64..100_000),
        temperature in proptest::option::of(quarters(0..8)),
        top_p in proptest::option::of(quarters(1..5)),
        top_k in proptest::option::of(1u64..100),
        stop in vec("\\PC{1,8}", 0..3),
        seed in proptest::option::of(any::<u32>()),
        n in proptest::option::of(1u32..=4),
        presence_penalty in proptest::option::of(quarters(-8..9)),
        reasoning in proptest::option::of(prop_oneof![
            proptest::option::of(1u64..40_000).prop_map(|budget_tokens| ReasoningConfig {
                enabled: true, effort: None, budget_tokens }),
            Just(ReasoningConfig { enabled: false, effort: None, budget_tokens: None })]),
        response_format in proptest::option::of(prop_oneof![
            Just(ResponseFormat::JsonObject),
            ("[a-z]{1,8}", proptest::option::of(any::<bool>())).prop_map(|(name, strict)|
                ResponseFormat::JsonSchema { name: Some(name), schema: json!({"type": "object"}), strict })]),
        stream in any::<bool>(),
    ) -> ChatRequest {
        ChatRequest {
            model: "public".into(),
            system: system.into_iter().map(|text| SystemBlock { text, cache_control: None }).collect(),
            messages, tools, tool_choice, parallel_tool_calls, max_output_tokens, temperature,
            top_p, top_k, stop, seed: seed.map(i64::from), n, presence_penalty,
            frequency_penalty: None, user: None, reasoning, response_format, stream,
            include_usage: stream,
        }
    }
}

/// What a DashScope round trip keeps of a request: one system prompt; text joined per message
/// on the text endpoint; consecutive tool messages as one; usage always on in streams.
fn expected(mut req: ChatRequest, multimodal: bool) -> ChatRequest {
    req.model = "qwen-upstream".into();
    req.include_usage = true;
    let system: Vec<String> = req.system.iter().map(|b| b.text.clone()).collect();
    req.system = (!system.is_empty())
        .then(|| SystemBlock {
            text: system.join("\n\n"),
            cache_control: None,
        })
        .into_iter()
        .collect();
    let mut messages: Vec<Message> = Vec::new();
    for mut message in req.messages {
        if message.role == Role::User && !multimodal {
            let texts: Vec<String> = message
                .parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text, .. } => Some(text.clone()),
                    _ => None,
                })
                .collect();
            message.parts = vec![text(texts.join("\n"))];
        }
        match messages.last_mut() {
            Some(last) if last.role == Role::Tool && message.role == Role::Tool => {
                last.parts.extend(message.parts)
            }
            _ => messages.push(message),
        }
    }
    req.messages = messages;
    req
}

fn choice_parts() -> impl Strategy<Value = (Vec<Part>, bool)> {
    (
        proptest::option::of(words()),
        proptest::option::of(words()),
        vec(tool_call(), 0..3),
    )
        .prop_map(|(reasoning, answer, calls)| {
            let has_calls = !calls.is_empty();
            let reasoning = reasoning.map(|text| Part::Reasoning {
                text,
                signature: None,
                redacted: None,
            });
            let parts = reasoning.into_iter().chain(answer.map(text)).chain(calls);
            (parts.collect(), has_calls)
        })
}

fn usage() -> impl Strategy<Value = Usage> {
    use proptest::option::of;
    (
        of(0u64..1 << 40),
        of(0u64..1 << 20),
        of(0u64..1 << 30),
        of(0u64..1 << 20),
    )
        .prop_map(|(input_total, cache_read, output_total, reasoning)| Usage {
            input_total,
            cache_read,
            cache_write: None,
            output_total,
            reasoning,
            estimated: false,
        })
}

prop_compose! {
    fn response()(
        choices in vec((choice_parts(), any::<bool>()), 1..4),
        usage in proptest::option::of(usage()),
        id in "[a-f0-9-]{1,36}",
    ) -> ChatResponse {
        let choices = choices.into_iter().enumerate().map(|(index, ((parts, has_calls), long))| {
            let finish = match (long, has_calls) {
                (true, _) => FinishReason::Length,
                (false, true) => FinishReason::ToolCalls,
                (false, false) => FinishReason::Stop,
            };
            Choice { index: index as u32, parts, finish: Some(finish) }
        }).collect();
        ChatResponse { id, model: String::new(), choices, usage, created: 0 }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn requests_survive_encode_then_decode(req in request()) {
        let (body, endpoint) = encode_request(&req, "qwen-upstream").expect("encodable");
        let multimodal = endpoint == Endpoint::Multimodal;
        let has_image = req.messages.iter().flat_map(|m| &m.parts)
            .any(|p| matches!(p, Part::Image { .. }));
        prop_assert_eq!(multimodal, has_image);
        let (decoded, options) = decode_request(body.to_string().as_bytes(), req.stream)
            .expect("our own upstream body is a valid DashScope request");
        prop_assert_eq!(options.result_format, ResultFormat::Message);
        prop_assert_eq!(options.incremental_output, req.stream);
        prop_assert_eq!(decoded, expected(req, multimodal));
    }

    #[test]
    fn responses_survive_encode_then_decode(resp in response()) {
        let options = DashScopeOptions { result_format: ResultFormat::Message, incremental_output: false };
        let body = encode_response(&resp, &ChatRequest::default(), &options, &resp.id);
        let mut decoded = decode_response(body.to_string().as_bytes()).expect("decodable");
        decoded.created = 0;
        prop_assert_eq!(decoded, resp);
    }
}

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

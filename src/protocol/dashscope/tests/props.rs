//! Properties: what DashScope can carry of a request or a response survives encode → decode.
//! Streams and the no-panic properties are in `stream_props`.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::json;

use crate::protocol::canonical::{
    ChatRequest, ChatResponse, Choice, FinishReason, ImageSource, Message, Part, ReasoningConfig,
    ResponseFormat, Role, SystemBlock, Tool, ToolChoice, Usage,
};
use crate::protocol::dashscope::{
    decode_request, decode_response, encode_request, encode_response, DashScopeOptions, Endpoint,
    ResultFormat,
};

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

pub(super) fn usage() -> impl Strategy<Value = Usage> {
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

//! Request rules beyond the goldens: what a client may send and what is refused, how canonical
//! settings reach a DashScope upstream, and the error envelope both ways.

use serde_json::{json, Value};

use super::{message, request, text};
use crate::protocol::canonical::{
    ChatRequest, ImageSource, Part, ReasoningConfig, Role, ToolChoice,
};
use crate::protocol::dashscope::{decode_error, encode_request, error_body, Endpoint};

fn prompt_with(parameters: Value) -> Result<ChatRequest, String> {
    request(json!({"model": "m", "input": {"prompt": "x"}, "parameters": parameters}))
        .map(|(req, _)| req)
}

fn upstream(req: &ChatRequest) -> Value {
    encode_request(req, "qwen").expect("encodable").0
}

#[test]
fn refused_requests_name_the_field() {
    let cases = [
        (
            json!({"model": "m", "input": {"messages": [{"role": "bot", "content": "x"}]}}),
            "input.messages[0]",
        ),
        (
            json!({"model": "m", "input": {"messages": [{"role": "tool", "content": "x"}]}}),
            "input.messages[0]",
        ),
        (
            json!({"model": "m", "input": {"messages": [{"role": "user", "content": [{"video": "https://v"}]}]}}),
            "input.messages[0]",
        ),
        (
            json!({"model": "m", "input": {"history": [{"user": "a", "bot": "b"}], "prompt": "x"}}),
            "input.history",
        ),
        (
            json!({"model": "m", "input": {"prompt": "x"}, "parameters": {"n": 5}}),
            "parameters.n",
        ),
        (
            json!({"model": "m", "input": {"prompt": "x"}, "parameters": {"tool_choice": "any"}}),
            "parameters.tool_choice",
        ),
        (
            json!({"model": "m", "input": {"prompt": "x"}, "parameters": {"max_tokens": 0}}),
            "parameters.max_tokens",
        ),
        (
            json!({"model": "m", "input": {"prompt": "x"}, "parameters": {"result_format": "message",
                "tools": [{"type": "retrieval"}]}}),
            "parameters.tools[0]",
        ),
    ];
    for (body, param) in cases {
        let err = request(body.clone()).expect_err("refused");
        assert!(err.ends_with(&format!("[{param}]")), "{body}: {err}");
    }
    let err = request(json!({"model": "m", "input": "not an object"})).expect_err("bad shape");
    assert!(err.contains("not valid"), "{err}");
}

#[test]
fn parameters_map_to_canonical_settings() {
    let req = prompt_with(
        json!({"max_completion_tokens": 99, "repetition_penalty": 1.1,
        "enable_search": true, "enable_thinking": true, "thinking_budget": 500,
        "tool_choice": {"type": "function", "function": {"name": "f"}}}),
    )
    .expect("valid");
    assert_eq!(
        req.max_output_tokens,
        Some(99),
        "max_completion_tokens is accepted"
    );
    assert_eq!(req.tool_choice, Some(ToolChoice::Named("f".into())));
    assert_eq!(
        req.reasoning,
        Some(ReasoningConfig {
            enabled: true,
            effort: None,
            budget_tokens: Some(500)
        })
    );
    let off = prompt_with(json!({"enable_thinking": false, "thinking_budget": 500})).expect("ok");
    assert_eq!(
        off.reasoning,
        Some(ReasoningConfig {
            enabled: false,
            effort: None,
            budget_tokens: None
        })
    );
    let budget_only = prompt_with(json!({"thinking_budget": 500})).expect("ok");
    assert_eq!(
        budget_only.reasoning, None,
        "a budget alone does not turn thinking on"
    );
    let both = prompt_with(json!({"max_tokens": 10, "max_completion_tokens": 20})).expect("ok");
    assert_eq!(
        both.max_output_tokens,
        Some(10),
        "DashScope's own name wins"
    );
}

#[test]
fn upstream_settings_follow_dashscope_limits() {
    let base = ChatRequest {
        messages: vec![message(Role::User, vec![text("hi")])],
        ..ChatRequest::default()
    };
    let req = ChatRequest {
        temperature: Some(2.0),
        tool_choice: Some(ToolChoice::Required),
        seed: Some(-3),
        frequency_penalty: Some(1.0),
        user: Some("end-user".into()),
        reasoning: Some(ReasoningConfig {
            enabled: true,
            effort: Some("minimal".into()),
            budget_tokens: Some(100),
        }),
        ..base.clone()
    };
    let params = &upstream(&req)["parameters"];
    assert_eq!(
        params["temperature"],
        json!(1.99),
        "DashScope's range is [0, 2)"
    );
    assert_eq!(
        params["tool_choice"],
        json!("auto"),
        "required is unverified"
    );
    assert_eq!(
        params["enable_thinking"],
        json!(false),
        "minimal effort means no thinking"
    );
    for dropped in [
        "seed",
        "frequency_penalty",
        "user",
        "thinking_budget",
        "incremental_output",
    ] {
        assert!(params.get(dropped).is_none(), "{dropped} in {params}");
    }
    let too_many = ChatRequest {
        n: Some(5),
        ..base.clone()
    };
    let err = encode_request(&too_many, "qwen").expect_err("n > 4");
    assert_eq!(err.param.as_deref(), Some("n"));
    let nothing = ChatRequest {
        messages: vec![message(Role::Assistant, vec![text("")])],
        ..base
    };
    assert!(
        encode_request(&nothing, "qwen").is_err(),
        "no message left to send"
    );
}

#[test]
fn image_url_vs_base64_inline_only_where_given() {
    let (req, _) = request(
        json!({"model": "m", "input": {"messages": [{"role": "user", "content": [
        {"image": "https://example.com/a.png"},
        {"image": {"url": "data:image/webp;base64,UklGRg=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}}]}]}}),
    )
    .expect("valid");
    let sources: Vec<_> = req.messages[0]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Image { source } => Some(source.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        sources,
        vec![
            ImageSource::Url {
                url: "https://example.com/a.png".into()
            },
            ImageSource::Base64 {
                media_type: "image/webp".into(),
                data: "UklGRg==".into()
            },
            ImageSource::Url {
                url: "https://example.com/b.png".into()
            },
        ]
    );
    let (body, endpoint) = encode_request(&req, "qwen-vl").expect("encodable");
    assert_eq!(endpoint, Endpoint::Multimodal);
    assert_eq!(
        body["input"]["messages"][0]["content"],
        json!([{"image": "https://example.com/a.png"}, {"image": "data:image/webp;base64,UklGRg=="},
               {"image": "https://example.com/b.png"}]),
        "URLs stay URLs; only inline data becomes a data URL"
    );
    assert_eq!(
        Endpoint::Text.path(),
        "/services/aigc/text-generation/generation"
    );
}

#[test]
fn error_envelope_maps_gateway_conditions() {
    let cases = [
        (400, 400, "InvalidParameter"),
        (401, 401, "InvalidApiKey"),
        (402, 400, "Arrearage"),
        (403, 403, "AccessDenied"),
        (404, 404, "ModelNotFound"),
        (408, 408, "RequestTimeOut"),
        (504, 408, "RequestTimeOut"),
        (413, 413, "BadRequest.TooLarge"),
        (422, 400, "InvalidParameter"),
        (429, 429, "Throttling.RateQuota"),
        (500, 500, "InternalError"),
        (502, 500, "InternalError"),
        (503, 500, "InternalError"),
    ];
    for (condition, status, code) in cases {
        let (got, body) = error_body(condition, "Something failed.", "req-1");
        assert_eq!(
            (got, body),
            (
                status,
                json!({"code": code, "message": "Something failed.", "request_id": "req-1"})
            ),
            "{condition}"
        );
    }
    // An upstream's precise code survives when its status matches.
    let (status, message) = decode_error(
        429,
        br#"{"code":"Throttling.AllocationQuota","message":"Free quota used up.","request_id":"u"}"#,
    );
    assert_eq!(status, 429);
    let (_, body) = error_body(status, &message, "gw");
    assert_eq!(body["code"], json!("Throttling.AllocationQuota"));
    assert_eq!(body["message"], json!("Free quota used up."));
}

#[test]
fn upstream_errors_are_read_never_forwarded_raw() {
    assert_eq!(
        decode_error(
            401,
            br#"{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"a1"}"#
        ),
        (401, "InvalidApiKey: Invalid API-key provided.".to_string())
    );
    assert_eq!(
        decode_error(502, b"<html>Bad Gateway</html>"),
        (502, "The DashScope upstream answered HTTP 502.".to_string())
    );
    assert_eq!(
        decode_error(200, br#"{"code":"DataInspectionFailed","message":"Input data may contain inappropriate content."}"#).0,
        400,
        "an error body under HTTP 200 takes its code's status"
    );
}

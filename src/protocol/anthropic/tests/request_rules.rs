//! Request rules beyond §7: what Anthropic requires of a client body, how reasoning, sampling and
//! tool choice translate, the error envelope and the `count_tokens` estimate.

use serde_json::json;

use super::edge_cases::{request, user};
use crate::protocol::anthropic::{
    decode_count_tokens_request, decode_request, encode_request, error_body, error_type_for_status,
    estimate_input_tokens, status_for_error_type,
};
use crate::protocol::canonical::{Part, ReasoningConfig, ResponseFormat, Tool, ToolChoice};

fn client(extra: serde_json::Value) -> Vec<u8> {
    let mut body = json!({"model": "c", "max_tokens": 100,
        "messages": [{"role": "user", "content": "q"}]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                body.remove(k);
            } else {
                body.insert(k.clone(), v.clone());
            }
        }
    }
    body.to_string().into_bytes()
}

#[test]
fn max_tokens_is_required_like_anthropic_requires_it() {
    let err = decode_request(&client(json!({"max_tokens": null}))).expect_err("refused");
    assert_eq!(
        (err.status, err.param.as_deref()),
        (400, Some("max_tokens"))
    );
    assert!(err.message.contains("max_tokens"));
    let err = decode_request(&client(json!({"max_tokens": -1}))).expect_err("refused");
    assert_eq!(err.param.as_deref(), Some("max_tokens"));
    // count_tokens takes the same body without it.
    let req = decode_count_tokens_request(&client(json!({"max_tokens": null}))).expect("ok");
    assert_eq!(req.max_output_tokens, None);
}

#[test]
fn malformed_bodies_name_the_field() {
    let cases = [
        (client(json!({"model": null})), Some("model")),
        (client(json!({"messages": null})), Some("messages")),
        (client(json!({"messages": "hi"})), Some("messages")),
        (client(json!({"messages": []})), Some("messages")),
        (
            client(json!({"messages": [{"role": "robot", "content": "x"}]})),
            Some("messages"),
        ),
        (
            client(json!({"tool_choice": {"type": "tool"}})),
            Some("tool_choice"),
        ),
        (
            client(json!({"thinking": {"type": "sometimes"}})),
            Some("thinking"),
        ),
        (
            client(json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]})),
            Some("tools"),
        ),
        (
            client(
                json!({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}),
            ),
            Some("messages"),
        ),
        (b"[1,2]".to_vec(), None),
        (b"{\"model\":".to_vec(), None),
    ];
    for (body, param) in cases {
        let err = decode_request(&body).expect_err("refused");
        assert_eq!(
            err.param.as_deref(),
            param,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(err.status, 400);
    }
}

#[test]
fn client_thinking_and_effort_decode_to_reasoning() {
    let reasoning = |extra| decode_request(&client(extra)).expect("ok").reasoning;
    assert_eq!(
        reasoning(json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}})),
        Some(ReasoningConfig {
            enabled: true,
            effort: Some("high".into()),
            budget_tokens: None
        })
    );
    assert_eq!(
        reasoning(json!({"thinking": {"type": "disabled"}})),
        Some(ReasoningConfig {
            enabled: false,
            effort: None,
            budget_tokens: None
        })
    );
    assert_eq!(reasoning(json!({})), None);
    let req = decode_request(&client(
        json!({"tool_choice": {"type": "tool", "name": "f"},
        "metadata": {"user_id": "u"}, "top_k": 5,
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}),
    ))
    .expect("ok");
    assert_eq!(req.tool_choice, Some(ToolChoice::Named("f".into())));
    assert_eq!(req.parallel_tool_calls, None);
    assert_eq!(req.user.as_deref(), Some("u"));
    assert_eq!(req.top_k, Some(5));
    assert!(req.include_usage, "Anthropic streams always carry usage");
    assert_eq!(
        req.response_format,
        Some(ResponseFormat::JsonSchema {
            name: None,
            schema: json!({"type": "object"}),
            strict: None
        })
    );
}

#[test]
fn reasoning_encodes_as_a_budget_that_fits_max_tokens() {
    let mut req = request(vec![user("q")]);
    req.max_output_tokens = Some(1000);
    req.temperature = Some(0.3);
    req.top_k = Some(10);
    req.top_p = Some(0.97);
    req.tools = vec![Tool {
        name: "f".into(),
        description: None,
        parameters: None,
        strict: None,
    }];
    req.tool_choice = Some(ToolChoice::Named("f".into()));
    req.reasoning = Some(ReasoningConfig {
        enabled: true,
        effort: Some("high".into()),
        budget_tokens: None,
    });
    let body = encode_request(&req, "c").expect("encodes");
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert_eq!(
        body["max_tokens"], 17384,
        "raised so the answer keeps its 1000 tokens"
    );
    assert!(body.get("temperature").is_none() && body.get("top_k").is_none());
    assert_eq!(body["top_p"], 0.97);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "auto"}),
        "thinking forbids forced tools"
    );

    for (effort, budget) in [
        ("low", 1024),
        ("medium", 4096),
        ("xhigh", 32768),
        ("odd", 4096),
    ] {
        req.reasoning = Some(ReasoningConfig {
            enabled: true,
            effort: Some(effort.into()),
            budget_tokens: None,
        });
        assert_eq!(
            encode_request(&req, "c").expect("ok")["thinking"]["budget_tokens"],
            budget
        );
    }
    req.reasoning = Some(ReasoningConfig {
        enabled: true,
        effort: None,
        budget_tokens: Some(100),
    });
    assert_eq!(
        encode_request(&req, "c").expect("ok")["thinking"]["budget_tokens"],
        1024,
        "minimum"
    );
    for off in [
        ReasoningConfig {
            enabled: false,
            effort: None,
            budget_tokens: None,
        },
        ReasoningConfig {
            enabled: true,
            effort: Some("minimal".into()),
            budget_tokens: None,
        },
    ] {
        req.reasoning = Some(off);
        let body = encode_request(&req, "c").expect("ok");
        assert_eq!(body["thinking"], json!({"type": "disabled"}));
        assert_eq!(body["temperature"], 0.3);
        assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "f"}));
        assert_eq!(body["max_tokens"], 1000);
    }
}

#[test]
fn sampling_fields_anthropic_lacks_are_dropped_or_refused() {
    let mut req = request(vec![user("q")]);
    req.seed = Some(1);
    req.presence_penalty = Some(1.0);
    req.temperature = Some(-0.5);
    let body = encode_request(&req, "c").expect("encodes");
    assert!(body.get("seed").is_none() && body.get("presence_penalty").is_none());
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(
        body["max_tokens"], 4096,
        "fallback when the gateway set nothing"
    );
    assert!(body.get("stream").is_none() && body.get("tool_choice").is_none());
    req.n = Some(2);
    let err = encode_request(&req, "c").expect_err("refused");
    assert_eq!((err.status, err.param.as_deref()), (400, Some("n")));
}

#[test]
fn parallel_tool_calls_false_disables_parallel_use() {
    let mut req = request(vec![user("q")]);
    req.tools = vec![Tool {
        name: "f".into(),
        description: None,
        parameters: None,
        strict: None,
    }];
    req.parallel_tool_calls = Some(false);
    let choice = |req: &crate::protocol::canonical::ChatRequest| {
        encode_request(req, "c").expect("ok")["tool_choice"].clone()
    };
    assert_eq!(
        choice(&req),
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    req.tool_choice = Some(ToolChoice::Required);
    assert_eq!(
        choice(&req),
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    req.tool_choice = Some(ToolChoice::None);
    assert_eq!(choice(&req), json!({"type": "none"}));
    let decoded = decode_request(&client(
        json!({"tool_choice": {"type": "any", "disable_parallel_tool_use": true}}),
    ))
    .expect("ok");
    assert_eq!(
        (decoded.tool_choice, decoded.parallel_tool_calls),
        (Some(ToolChoice::Required), Some(false))
    );
}

#[test]
fn error_envelope_uses_anthropic_types() {
    assert_eq!(
        error_body(429, "slow down", "req_1"),
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"},
               "request_id": "req_1"})
    );
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (504, "timeout_error"),
        (422, "invalid_request_error"),
    ] {
        assert_eq!(error_type_for_status(status), kind, "{status}");
    }
    for kind in [
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "timeout_error",
        "overloaded_error",
    ] {
        assert_eq!(error_type_for_status(status_for_error_type(kind)), kind);
    }
    assert_eq!(status_for_error_type("something_new"), 500);
}

#[test]
fn count_tokens_estimate_grows_with_what_the_model_reads() {
    let small = decode_count_tokens_request(&client(json!({"max_tokens": null}))).expect("ok");
    let base = estimate_input_tokens(&small);
    let text: String = small
        .messages
        .iter()
        .flat_map(|m| m.parts.iter())
        .filter_map(|p| match p {
            Part::Text { text, .. } => Some(format!("{text}\n")),
            _ => None,
        })
        .collect();
    assert_eq!(
        base,
        crate::tokenizer::count(&text) + 4,
        "the message text through the tokenizer, plus the message overhead"
    );
    let long = decode_count_tokens_request(&client(
        json!({"max_tokens": null, "system": "lorem ipsum ".repeat(100),
        "tools": [{"name": "f", "input_schema": {"type": "object"}}]}),
    ))
    .expect("ok");
    // 200 words of system text and a tool with its framing.
    assert!(estimate_input_tokens(&long) >= base + 200 + 4);
}

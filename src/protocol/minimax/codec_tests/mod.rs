//! Tests of the MiniMax codec: golden fixtures (`tests/fixtures/minimax/`), `base_resp` errors
//! (§7 "MiniMax errors in 200"), reasoning extraction, request ranges, and streams.

mod requests;
mod streams;

use proptest::prelude::*;
use serde_json::json;

use crate::protocol::canonical::{FinishReason, Part};
use crate::protocol::minimax::{decode_response, status_for_code, MiniMaxError};
use crate::protocol::openai::codec_tests::{assert_golden_json, fixture};

#[test]
fn reasoning_details_response_decodes_to_the_canonical_golden() {
    let response = decode_response(fixture("minimax/response_reasoning_details.json").as_bytes())
        .expect("valid");
    assert_golden_json(
        "minimax/response_reasoning_details.canonical.json",
        &response,
    );
}

#[test]
fn think_tags_are_moved_out_of_the_visible_text() {
    let response =
        decode_response(fixture("minimax/response_think_tags.json").as_bytes()).expect("valid");
    assert_golden_json("minimax/response_think_tags.canonical.json", &response);
    let parts = &response.choices[0].parts;
    assert!(
        matches!(&parts[0], Part::Reasoning { text, .. } if text.contains("A greeting")),
        "{parts:?}"
    );
    assert!(
        matches!(&parts[1], Part::Text { text, .. } if text == "Hello! How can I help?"),
        "{parts:?}"
    );
}

#[test]
fn minimax_errors_in_200_are_errors() {
    let error = decode_response(fixture("minimax/response_error_200.json").as_bytes())
        .expect_err("base_resp 1008 is an error even with HTTP 200");
    assert_eq!(
        error,
        MiniMaxError::Upstream {
            status: 402,
            message: "insufficient balance (MiniMax error 1008)".into()
        }
    );
    assert_eq!(error.status(), 402);
}

#[test]
fn minimax_error_codes_map_to_statuses() {
    for (code, status) in [
        (1000, 500),
        (1001, 504),
        (1002, 429),
        (1004, 401),
        (1008, 402),
        (1024, 500),
        (1026, 400),
        (1027, 400),
        (1033, 500),
        (1039, 429),
        (2013, 400),
        (2049, 401),
        (9999, 500),
    ] {
        assert_eq!(status_for_code(code), status, "code {code}");
        // The code may also come as a string; the body is checked before anything else.
        let body = json!({"choices": [{"message": {"content": "looks fine"}}],
            "base_resp": {"status_code": code.to_string(), "status_msg": ""}});
        let error = decode_response(body.to_string().as_bytes()).expect_err("error");
        assert_eq!(error.status(), status, "code {code}");
    }
    let ok = json!({"choices": [], "base_resp": {"status_code": 0, "status_msg": "success"}});
    assert!(decode_response(ok.to_string().as_bytes()).is_ok());
}

#[test]
fn reasoning_content_is_read_too_and_never_duplicated() {
    // M1 style: reasoning_content.
    let body = json!({"id": "a", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"content": "Hi", "reasoning_content": "Plan."}}]});
    let response = decode_response(body.to_string().as_bytes()).expect("valid");
    assert_eq!(response.choices[0].parts.len(), 2);
    // Split reasoning plus leftover tags in the content: the tags are cut, the reasoning kept once.
    let body = json!({"id": "b", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"content": "<think>Plan.</think>Hi", "reasoning_details": [{"text": "Plan."}]}}]});
    let parts = decode_response(body.to_string().as_bytes())
        .expect("valid")
        .choices[0]
        .parts
        .clone();
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(matches!(&parts[1], Part::Text { text, .. } if text == "Hi"));
}

#[test]
fn blocked_output_finishes_as_content_filter() {
    let body = json!({"id": "c", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"content": "(blocked)"}}], "output_sensitive": true,
        "base_resp": {"status_code": 0}});
    let response = decode_response(body.to_string().as_bytes()).expect("valid");
    assert_eq!(
        response.choices[0].finish,
        Some(FinishReason::ContentFilter)
    );
}

proptest! {
    #[test]
    fn decode_response_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), code in any::<i64>()) {
        let _ = decode_response(&bytes);
        let body = json!({"base_resp": {"status_code": code}, "choices": [{"message": {"content": String::from_utf8_lossy(&bytes)}}]});
        let _ = decode_response(body.to_string().as_bytes());
    }
}

#[test]
fn an_openai_style_error_body_is_an_upstream_error() {
    let body = json!({"error": {"message": "invalid function arguments json string", "type": "invalid_request_error", "code": "2013"}});
    let error = decode_response(body.to_string().as_bytes()).expect_err("error");
    assert_eq!(error.status(), 400);
    assert!(
        error.to_string().contains("invalid function arguments"),
        "{error}"
    );
}

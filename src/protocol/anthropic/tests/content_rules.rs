//! protocols.md §7 rows about content, images, stops, reasons and cache accounting.

use serde_json::{json, Value};

use super::edge_cases::{assistant, request, response, user};
use super::*;
use crate::protocol::anthropic::{
    decode_request, decode_response, encode_request, encode_response, sniff_media_type,
};
use crate::protocol::canonical::{
    ChatRequest, FinishReason, ImageSource, Message, Part, Role, StreamEvent, Tool, Usage,
};

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAE=";
const JPEG: &str = "/9j/4AAQSkZJRgABAQ==";
const GIF: &str = "R0lGODlhAQABAIAAAP///wAAACw=";
const WEBP: &str = "UklGRiQAAABXRUJQVlA4IBgAAAAwAQCdASoBAAEAAwA0JaQAA3AA/vuUAAA=";

fn image_message(source: ImageSource) -> Message {
    Message {
        role: Role::User,
        parts: vec![Part::Image { source }],
        name: None,
    }
}

fn encoded_source(source: ImageSource) -> Result<Value, u16> {
    encode_request(&request(vec![image_message(source)]), "c")
        .map(|body| body["messages"][0]["content"][0]["source"].clone())
        .map_err(|e| e.status)
}

#[test]
fn empty_content_is_dropped() {
    let empty = |role| Message {
        role,
        parts: vec![Part::Text {
            text: String::new(),
            cache_control: None,
        }],
        name: None,
    };
    let req = request(vec![
        user("hi"),
        empty(Role::Assistant),
        empty(Role::User),
        user("again"),
    ]);
    let body = encode_request(&req, "c").expect("encodes");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"},
                                            {"type": "text", "text": "again"}]}])
    );
    let only_empty = request(vec![empty(Role::User)]);
    assert_eq!(
        encode_request(&only_empty, "c").map_err(|e| e.param),
        Err(Some("messages".into()))
    );

    let client = json!({"model": "c", "max_tokens": 5, "system": "", "messages": [
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "q"}]},
        {"role": "assistant", "content": ""}]});
    let req = decode_request(client.to_string().as_bytes()).expect("decodes");
    assert!(req.system.is_empty());
    assert_eq!(req.messages, vec![user("q")]);

    let text = |t: &str| Part::Text {
        text: t.into(),
        cache_control: None,
    };
    let message = encode_response(
        &response(vec![text(""), text("ok")], None),
        &ChatRequest::default(),
    );
    assert_eq!(message["content"], json!([{"type": "text", "text": "ok"}]));
    let frames = encode_stream(&[StreamEvent::TextDelta {
        choice: 0,
        text: String::new(),
    }]);
    assert!(frames_json(&frames)
        .iter()
        .all(|(n, _)| n != "content_block_start"));
}

#[test]
fn stop_shape_one_stop_string_stays_an_array() {
    let mut req = request(vec![user("q")]);
    req.stop = vec!["END".into()];
    let body = encode_request(&req, "c").expect("encodes");
    assert_eq!(body["stop_sequences"], json!(["END"]));
    req.stop.clear();
    let body = encode_request(&req, "c").expect("encodes");
    assert!(body.get("stop_sequences").is_none(), "no empty array");
    let client = json!({"model": "c", "max_tokens": 5, "stop_sequences": ["a"],
        "messages": [{"role": "user", "content": "q"}]});
    assert_eq!(
        decode_request(client.to_string().as_bytes())
            .expect("ok")
            .stop,
        ["a"]
    );
}

#[test]
fn tools_without_schema_are_kept() {
    let mut req = request(vec![user("q")]);
    req.tools = vec![Tool {
        name: "ping".into(),
        description: None,
        parameters: None,
        strict: None,
    }];
    let body = encode_request(&req, "c").expect("encodes");
    assert_eq!(
        body["tools"],
        json!([{"name": "ping", "input_schema": {"type": "object", "properties": {}}}])
    );
    let client = json!({"model": "c", "max_tokens": 5, "tools": [{"name": "ping"}],
        "messages": [{"role": "user", "content": "q"}]});
    let req = decode_request(client.to_string().as_bytes()).expect("decodes");
    assert_eq!(req.tools.len(), 1);
    assert_eq!(req.tools[0].parameters, None);
}

#[test]
fn image_url_vs_base64_inline_only_data_urls() {
    let url = |u: &str| ImageSource::Url { url: u.into() };
    assert_eq!(
        encoded_source(url("https://example.com/x.png")),
        Ok(json!({"type": "url", "url": "https://example.com/x.png"}))
    );
    assert_eq!(
        encoded_source(url(&format!("data:image/png;base64,{PNG}"))),
        Ok(json!({"type": "base64", "media_type": "image/png", "data": PNG}))
    );
    assert_eq!(encoded_source(url("file:///etc/passwd")), Err(400));
    assert_eq!(encoded_source(url("data:image/png,rawbytes")), Err(400));
    // Client side: both source kinds become canonical images unchanged.
    let client = json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://e.com/a.gif"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": GIF}}]}]});
    let req = decode_request(client.to_string().as_bytes()).expect("decodes");
    assert_eq!(
        req.messages[0].parts,
        vec![
            Part::Image {
                source: url("https://e.com/a.gif")
            },
            Part::Image {
                source: ImageSource::Base64 {
                    media_type: "image/gif".into(),
                    data: GIF.into()
                }
            },
        ]
    );
}

#[test]
fn image_media_type_is_sniffed_from_bytes() {
    for (data, expected) in [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (WEBP, "image/webp"),
    ] {
        assert_eq!(sniff_media_type(data), Some(expected));
        // Whatever the client claimed, Anthropic gets the real type.
        let source = ImageSource::Base64 {
            media_type: "image/jpeg".into(),
            data: data.into(),
        };
        assert_eq!(
            encoded_source(source).expect("supported")["media_type"],
            expected
        );
    }
    let bmp = ImageSource::Base64 {
        media_type: "image/png".into(),
        data: "Qk02AAAAAAAAADYAAAAo".into(),
    };
    assert_eq!(encoded_source(bmp), Err(400));
    let garbage = ImageSource::Base64 {
        media_type: "image/png".into(),
        data: "%%%".into(),
    };
    assert_eq!(encoded_source(garbage), Err(400));
}

#[test]
fn images_chat_to_messages_become_image_blocks() {
    // What an OpenAI `image_url` part decodes to, next to text, and inside a tool result.
    let req = request(vec![
        Message {
            role: Role::User,
            parts: vec![
                Part::Text {
                    text: "what is it?".into(),
                    cache_control: None,
                },
                Part::Image {
                    source: ImageSource::Url {
                        url: format!("data:image/jpeg;base64,{JPEG}"),
                    },
                },
            ],
            name: None,
        },
        assistant(vec![super::edge_cases::call("c1", "screenshot", "")]),
        Message {
            role: Role::Tool,
            parts: vec![Part::ToolResult {
                call_id: "c1".into(),
                content: vec![Part::Image {
                    source: ImageSource::Url {
                        url: "https://e.com/s.png".into(),
                    },
                }],
                is_error: false,
            }],
            name: None,
        },
    ]);
    let body = encode_request(&req, "c").expect("encodes");
    assert_eq!(body["messages"][0]["content"][1]["type"], "image");
    assert_eq!(
        body["messages"][0]["content"][1]["source"]["media_type"],
        "image/jpeg"
    );
    assert_eq!(
        body["messages"][2]["content"][0]["content"],
        json!([{"type": "image", "source": {"type": "url", "url": "https://e.com/s.png"}}])
    );
}

#[test]
fn reason_passthrough_maps_every_reason_and_never_passes_unknown_ones() {
    let decoded = |reason: &str| {
        let body = json!({"id": "m", "model": "c", "content": [], "stop_reason": reason,
            "stop_sequence": "STOP"});
        decode_response(body.to_string().as_bytes())
            .expect("decodes")
            .choices[0]
            .finish
            .clone()
    };
    assert_eq!(decoded("end_turn"), Some(FinishReason::Stop));
    assert_eq!(decoded("max_tokens"), Some(FinishReason::Length));
    assert_eq!(
        decoded("model_context_window_exceeded"),
        Some(FinishReason::Length)
    );
    assert_eq!(
        decoded("stop_sequence"),
        Some(FinishReason::StopSequence(Some("STOP".into())))
    );
    assert_eq!(decoded("tool_use"), Some(FinishReason::ToolCalls));
    assert_eq!(decoded("pause_turn"), Some(FinishReason::Pause));
    assert_eq!(decoded("refusal"), Some(FinishReason::ContentFilter));
    assert_eq!(decoded("brand_new_reason"), Some(FinishReason::Stop));

    let encoded = |finish: Option<FinishReason>| {
        let message = encode_response(&response(vec![], finish), &ChatRequest::default());
        (
            message["stop_reason"].clone(),
            message["stop_sequence"].clone(),
        )
    };
    assert_eq!(
        encoded(None),
        (json!("end_turn"), Value::Null),
        "never null outside streams"
    );
    assert_eq!(encoded(Some(FinishReason::Stop)).0, "end_turn");
    assert_eq!(encoded(Some(FinishReason::Length)).0, "max_tokens");
    assert_eq!(encoded(Some(FinishReason::ContentFilter)).0, "refusal");
    assert_eq!(encoded(Some(FinishReason::Pause)).0, "pause_turn");
    assert_eq!(
        encoded(Some(FinishReason::ToolCalls)).0,
        "end_turn",
        "no calls, no tool_use"
    );
    assert_eq!(
        encoded(Some(FinishReason::StopSequence(None))).0,
        "end_turn"
    );
    assert_eq!(
        encoded(Some(FinishReason::StopSequence(Some("X".into())))),
        (json!("stop_sequence"), json!("X"))
    );
    // Streams map the same way, unknown reasons included.
    let sse = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"brand_new_reason\"}}\n\n";
    assert_eq!(
        decode_stream(&[sse.as_bytes()]),
        vec![StreamEvent::Finish {
            choice: 0,
            reason: FinishReason::Stop
        }]
    );
}

#[test]
fn cache_accounting_anthropic_input_excludes_cache() {
    let body = json!({"id": "m", "model": "c", "content": [], "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 50,
                  "output_tokens": 7}});
    let usage = decode_response(body.to_string().as_bytes())
        .expect("ok")
        .usage
        .expect("usage");
    assert_eq!(
        usage.input_total,
        Some(1060),
        "canonical total includes the cache"
    );
    assert_eq!(
        (usage.cache_read, usage.cache_write),
        (Some(1000), Some(50))
    );

    // From an OpenAI-style upstream whose prompt_tokens include cached tokens.
    let mut resp = response(vec![], None);
    resp.usage = Some(Usage {
        input_total: Some(120),
        cache_read: Some(64),
        output_total: Some(5),
        ..Usage::default()
    });
    let message = encode_response(&resp, &ChatRequest::default());
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 56, "cache_read_input_tokens": 64,
               "cache_creation_input_tokens": 0, "output_tokens": 5})
    );
    // Inconsistent numbers never go negative.
    resp.usage = Some(Usage {
        input_total: Some(10),
        cache_read: Some(64),
        ..Usage::default()
    });
    assert_eq!(
        encode_response(&resp, &ChatRequest::default())["usage"]["input_tokens"],
        0
    );
}

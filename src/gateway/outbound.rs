//! The upstream side of translation: encoding the canonical request for an upstream's protocol
//! and decoding what comes back, whole or streamed.

use modelrouter_domain::provider::UpstreamProtocol;
use serde_json::Value;

use super::inbound::bad_request;
use super::ApiError;
use crate::protocol::canonical::{ChatRequest, ChatResponse};
use crate::protocol::minimax::MiniMaxError;
use crate::protocol::{anthropic, dashscope, minimax, openai, StreamDecoder};
use crate::upstream::{self, UpstreamError};

/// An encoded upstream request: the body and the path to send it to.
pub struct Encoded {
    pub body: Value,
    pub path: &'static str,
}

/// Encodes `request` for an upstream speaking `protocol`.
pub fn encode(
    protocol: UpstreamProtocol,
    request: &ChatRequest,
    upstream_model: &str,
) -> Result<Encoded, ApiError> {
    let chat_path = upstream::adapter(protocol).chat_path();
    let (body, path) = match protocol {
        UpstreamProtocol::Openai => (openai::encode_request(request, upstream_model), chat_path),
        UpstreamProtocol::Anthropic => (
            anthropic::encode_request(request, upstream_model),
            chat_path,
        ),
        UpstreamProtocol::Minimax => (minimax::encode_request(request, upstream_model), chat_path),
        UpstreamProtocol::Dashscope => {
            let (body, endpoint) =
                dashscope::encode_request(request, upstream_model).map_err(bad_request)?;
            return Ok(Encoded {
                body,
                path: endpoint.path(),
            });
        }
    };
    Ok(Encoded {
        body: body.map_err(bad_request)?,
        path,
    })
}

/// Decodes a whole upstream response. MiniMax reports some errors inside an HTTP 200.
pub fn decode(protocol: UpstreamProtocol, body: &[u8]) -> Result<ChatResponse, UpstreamError> {
    let undecodable = |e: crate::protocol::DecodeError| UpstreamError::Transport(e.to_string());
    match protocol {
        UpstreamProtocol::Openai => openai::decode_response(body).map_err(undecodable),
        UpstreamProtocol::Anthropic => anthropic::decode_response(body).map_err(undecodable),
        UpstreamProtocol::Dashscope => dashscope::decode_response(body).map_err(undecodable),
        UpstreamProtocol::Minimax => minimax::decode_response(body).map_err(|error| match error {
            MiniMaxError::Decode(e) => undecodable(e),
            MiniMaxError::Upstream { status, message } => UpstreamError::Status {
                status,
                message: Some(message),
            },
        }),
    }
}

/// A decoder for an upstream's stream; `choices` is the number of choices asked for (DashScope
/// ends its stream only when every choice has finished).
pub fn stream_decoder(protocol: UpstreamProtocol, choices: u32) -> Box<dyn StreamDecoder> {
    match protocol {
        UpstreamProtocol::Openai => Box::new(openai::OpenAiStreamDecoder::new()),
        UpstreamProtocol::Anthropic => Box::new(anthropic::AnthropicStreamDecoder::new()),
        UpstreamProtocol::Dashscope => {
            Box::new(dashscope::DashScopeStreamDecoder::new().with_choices(choices.max(1)))
        }
        UpstreamProtocol::Minimax => Box::new(minimax::MiniMaxStreamDecoder::new()),
    }
}

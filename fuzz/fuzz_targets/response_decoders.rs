//! Every upstream response decoder must refuse bad input with an error, never panic; and a
//! decoded response must encode for every customer protocol without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelrouter::protocol::canonical::ChatRequest;
use modelrouter::protocol::dashscope::DashScopeOptions;
use modelrouter::protocol::{anthropic, dashscope, minimax, openai};

fuzz_target!(|data: &[u8]| {
    let mut decoded = Vec::new();
    decoded.extend(openai::decode_response(data).ok());
    decoded.extend(anthropic::decode_response(data).ok());
    decoded.extend(dashscope::decode_response(data).ok());
    decoded.extend(minimax::decode_response(data).ok());
    let request = ChatRequest::default();
    for response in decoded {
        let _ = openai::encode_response(&response, &request);
        let _ = anthropic::encode_response(&response, &request);
        let _ = dashscope::encode_response(&response, &request, &DashScopeOptions::default(), "r");
    }
});

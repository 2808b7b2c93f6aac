//! Every customer-protocol request decoder must refuse bad input with an error, never panic;
//! and whatever decodes must encode for every upstream protocol without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelrouter::protocol::{anthropic, dashscope, minimax, openai};

fuzz_target!(|data: &[u8]| {
    let mut decoded = Vec::new();
    if let Ok(request) = openai::decode_request(data) {
        decoded.push(request);
    }
    if let Ok(request) = anthropic::decode_request(data) {
        decoded.push(request);
    }
    let _ = anthropic::decode_count_tokens_request(data);
    for stream in [false, true] {
        if let Ok((request, _)) = dashscope::decode_request(data, stream) {
            decoded.push(request);
        }
    }
    for request in decoded {
        let _ = openai::encode_request(&request, "m");
        let _ = anthropic::encode_request(&request, "m");
        let _ = dashscope::encode_request(&request, "m");
        let _ = minimax::encode_request(&request, "m");
    }
});

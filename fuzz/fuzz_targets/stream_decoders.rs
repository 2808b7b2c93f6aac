//! Upstream bytes through the SSE parser, every upstream stream decoder, and every customer
//! stream encoder: nothing may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelrouter::protocol::dashscope::DashScopeOptions;
use modelrouter::protocol::sse::SseParser;
use modelrouter::protocol::{anthropic, dashscope, minimax, openai, StreamDecoder, StreamEncoder};

fuzz_target!(|data: &[u8]| {
    let mut parser = SseParser::new();
    let mut events = parser.feed(data);
    events.extend(parser.finish());
    let decoders: Vec<Box<dyn StreamDecoder>> = vec![
        Box::new(openai::OpenAiStreamDecoder::new()),
        Box::new(anthropic::AnthropicStreamDecoder::new()),
        Box::new(dashscope::DashScopeStreamDecoder::new()),
        Box::new(minimax::MiniMaxStreamDecoder::new()),
    ];
    for mut decoder in decoders {
        let mut encoders: Vec<Box<dyn StreamEncoder>> = vec![
            Box::new(openai::OpenAiStreamEncoder::new("id".into(), "m".into(), 0, true)),
            Box::new(anthropic::AnthropicStreamEncoder::new("msg_1".into(), "m".into())),
            Box::new(dashscope::DashScopeStreamEncoder::new("r".into(), DashScopeOptions::default())),
        ];
        let mut canonical = Vec::new();
        for event in &events {
            canonical.extend(decoder.feed(event));
        }
        canonical.extend(decoder.finish());
        for encoder in encoders.iter_mut() {
            for event in &canonical {
                let _ = encoder.feed(event);
            }
            let _ = encoder.finish();
        }
    }
});

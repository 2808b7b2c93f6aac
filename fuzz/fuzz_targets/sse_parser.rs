//! The SSE parser must never panic, and splitting the input anywhere must not change the events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelrouter::protocol::sse::SseParser;

fuzz_target!(|data: &[u8]| {
    let mut whole = SseParser::new();
    let mut expected = whole.feed(data);
    expected.extend(whole.finish());

    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut split = SseParser::new();
    let mut got = split.feed(&data[..cut]);
    got.extend(split.feed(&data[cut..]));
    got.extend(split.finish());
    assert_eq!(expected, got);
});

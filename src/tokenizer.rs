//! Token counts the gateway works out itself, only where an upstream gave none: the usage of a
//! stream that delivered output but lost its usage report, and `count_tokens` in front of an
//! upstream without that endpoint. Counted with OpenAI's o200k_base byte-pair encoding — exact
//! for current OpenAI models, an estimate for others (their tokenizers differ by some percent),
//! and always marked as estimated where it is used.
//!
//! Bounded work: the byte-pair merge costs the square of a piece's length, so a request of
//! megabytes of one repeated character could hold a CPU for seconds. Text is therefore encoded in
//! chunks cut where the encoder's own pre-tokenizer cuts (before a space that follows a
//! non-space), which keeps ordinary text exact; a run with no such cut is cut every
//! [`LONGEST_RUN`] bytes, and only the first [`ENCODED_BYTES`] bytes go through the encoder at
//! all — the rest counts at four bytes a token. Callers still run it off the async workers.

use serde_json::Value;

/// Bytes of a text that go through the encoder; beyond them, four bytes count a token.
pub const ENCODED_BYTES: usize = 1 << 20;
/// The longest run without a natural cut handed to the encoder at once.
pub const LONGEST_RUN: usize = 256;
/// Ordinary text is encoded in chunks of about this many bytes, cut at natural boundaries.
const CHUNK_BYTES: usize = 8 * 1024;

/// Tokens of a text.
pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    let mut end = text.len().min(ENCODED_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let (head, rest) = text.split_at(end);
    let bpe = tiktoken_rs::o200k_base_singleton();
    let encoded: usize = chunks(head)
        .map(|chunk| bpe.encode_ordinary(chunk).len())
        .sum();
    encoded as u64 + (rest.len() as u64).div_ceil(4)
}

/// `text` cut into chunks for the encoder: at natural boundaries (before a space that follows a
/// non-space) once a chunk has [`CHUNK_BYTES`], and anywhere once a run without such a
/// boundary reaches [`LONGEST_RUN`] bytes.
pub fn chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut cuts = Vec::new();
    let (mut start, mut run_start) = (0, 0);
    let mut previous_space = true;
    for (at, c) in text.char_indices() {
        let space = c.is_whitespace();
        // Before a plain space that follows a non-space the encoder always cuts (a newline may
        // still belong to the punctuation before it).
        if c == ' ' && !previous_space {
            if at - start >= CHUNK_BYTES {
                cuts.push(at);
                start = at;
            }
            run_start = at;
        } else if at - run_start >= LONGEST_RUN {
            cuts.push(at);
            start = at;
            run_start = at;
        }
        previous_space = space;
    }
    cuts.push(text.len());
    let mut from = 0;
    cuts.into_iter().filter_map(move |to| {
        let chunk = &text[from..to];
        from = to;
        (!chunk.is_empty()).then_some(chunk)
    })
}

/// Keys of a chat request whose string values are structure, not something the model reads.
const STRUCTURAL: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "tool_call_id",
    "tool_use_id",
    "media_type",
    "detail",
    "result_format",
    "stop_reason",
    "finish_reason",
];

/// Tokens of what a model reads in a request body of any protocol: the string values of its JSON
/// (message text, system prompts, tool descriptions and arguments), not its keys or structural
/// values; 4 tokens of framing per object. Images and other binary payloads (base64 or URLs) are
/// not text the model reads and count one framing each. A body that is not JSON counts as text.
pub fn count_request(body: &[u8]) -> u64 {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let mut text = String::new();
            let mut objects = 0;
            collect(&value, None, &mut text, &mut objects);
            count(&text) + 4 * objects
        }
        Err(_) => count(&String::from_utf8_lossy(body)),
    }
}

fn collect(value: &Value, key: Option<&str>, text: &mut String, objects: &mut u64) {
    match value {
        Value::String(s) => {
            let structural = key.is_some_and(|k| STRUCTURAL.contains(&k));
            let binary = s.starts_with("data:") || s.len() > 4096 && !s.contains(' ');
            if !structural && !binary {
                text.push_str(s);
                text.push('\n');
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, key, text, objects)),
        Value::Object(map) => {
            *objects += 1;
            for (k, v) in map {
                collect(v, Some(k), text, objects);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_text_with_the_bpe_not_by_characters() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
        // Long repeated words are few tokens; four characters a token would say 25.
        assert!(count(&"internationalization ".repeat(5)) < 25);
    }

    #[test]
    fn ordinary_text_counts_exactly_as_the_encoder_counts_it_whole() {
        let prose = "The quick brown fox, it's said, jumps over 1234 lazy dogs!\n\n  Then  again? "
            .repeat(400)
            + "日本語のテキストも 数えます。";
        assert!(chunks(&prose).count() > 2, "long text is encoded in chunks");
        let whole = tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(&prose)
            .len() as u64;
        assert_eq!(count(&prose), whole);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn cutting_at_natural_boundaries_never_changes_the_count(
            text in "([a-zA-Z0-9éü日本' .,!?;:/\n\r\t-]{1,12} ?){1500,3000}"
        ) {
            let whole = tiktoken_rs::o200k_base_singleton().encode_ordinary(&text).len() as u64;
            proptest::prop_assert_eq!(count(&text), whole);
        }
    }

    #[test]
    fn a_run_without_natural_cuts_reaches_the_encoder_in_bounded_pieces() {
        let spaces = " ".repeat(8 * 1024 * 1024);
        let within = &spaces[..ENCODED_BYTES];
        assert!(chunks(within).all(|chunk| chunk.len() <= LONGEST_RUN));
        assert_eq!(chunks(within).map(str::len).sum::<usize>(), ENCODED_BYTES);
        let word = "a".repeat(10_000);
        assert!(chunks(&word).all(|chunk| chunk.len() <= LONGEST_RUN));
        // Beyond what is encoded, four bytes count a token.
        let tokens = count(&spaces);
        let beyond = (spaces.len() - ENCODED_BYTES) as u64 / 4;
        assert!(tokens > beyond && tokens < beyond + ENCODED_BYTES as u64);
    }

    #[test]
    fn a_request_counts_what_the_model_reads_not_its_structure() {
        let small = br#"{"model":"gpt","messages":[{"role":"user","content":"hello world"}]}"#;
        // "hello world\n" (3 tokens) plus framing of two objects.
        assert_eq!(count_request(small), 3 + 8);
        let image = br#"{"model":"gpt","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}"#;
        assert_eq!(count_request(image), 4 * 4);
        assert_eq!(count_request(b"not json at all"), count("not json at all"));
    }
}

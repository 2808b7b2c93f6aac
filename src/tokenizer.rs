//! Token counts the gateway works out itself, only where an upstream gave none: the usage of a
//! stream that delivered output but lost its usage report, and `count_tokens` in front of an
//! upstream without that endpoint. Counted with OpenAI's o200k_base byte-pair encoding — exact
//! for current OpenAI models, an estimate for others (their tokenizers differ by some percent),
//! and always marked as estimated where it is used.

use serde_json::Value;

/// Tokens of a text.
pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
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
    fn a_request_counts_what_the_model_reads_not_its_structure() {
        let small = br#"{"model":"gpt","messages":[{"role":"user","content":"hello world"}]}"#;
        // "hello world\n" (3 tokens) plus framing of two objects.
        assert_eq!(count_request(small), 3 + 8);
        let image = br#"{"model":"gpt","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}"#;
        assert_eq!(count_request(image), 4 * 4);
        assert_eq!(count_request(b"not json at all"), count("not json at all"));
    }
}

//! Server-sent events (protocols.md §0): an incremental parser — feed bytes as they arrive, get
//! whole events — and a frame writer. Lines end in LF, CRLF or CR; `data:` may or may not have a
//! space after the colon; comment lines (`:…`) are skipped, except that DashScope's
//! `:HTTP_STATUS/NNN` comment (or a `status:` line) is kept as `status`; several `data:` lines join with `\n`; a last
//! event without a trailing blank line is returned by `finish`.

/// One parsed event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
    /// DashScope's `:HTTP_STATUS/NNN` comment.
    pub status: Option<u16>,
}

/// Incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    has_data: bool,
    has_fields: bool,
    /// The previous chunk ended in CR: a following LF belongs to the same line end.
    skip_lf: bool,
}

/// Longest line kept (bytes); longer lines are cut, so a hostile upstream cannot grow memory
/// without bound through one line.
const MAX_LINE: usize = 16 * 1024 * 1024;

impl SseParser {
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            if self.skip_lf {
                self.skip_lf = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.end_line(&mut events);
                    self.skip_lf = true;
                }
                _ if self.buffer.len() < MAX_LINE => self.buffer.push(byte),
                _ => {}
            }
        }
        events
    }

    /// Ends the input: returns the last event if it had no trailing blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut events = Vec::new();
        if !self.buffer.is_empty() {
            self.end_line(&mut events);
        }
        self.dispatch(&mut events);
        events.pop()
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let line = String::from_utf8_lossy(&self.buffer).into_owned();
        self.buffer.clear();
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            if let Some(code) = comment.trim().strip_prefix("HTTP_STATUS/") {
                self.current.status = code.trim().parse().ok();
                self.has_fields = true;
            }
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
                self.has_fields = true;
            }
            "event" => {
                self.current.event = Some(value.to_string());
                self.has_fields = true;
            }
            "id" => {
                self.current.id = Some(value.to_string());
                self.has_fields = true;
            }
            // The official DashScope SDK reads an error's status from a `status:` line.
            "status" => {
                self.current.status = value.trim().parse().ok();
                self.has_fields = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        if self.has_fields {
            events.push(std::mem::take(&mut self.current));
        }
        self.current = SseEvent::default();
        self.has_data = false;
        self.has_fields = false;
    }
}

/// Writes one SSE frame. `space` puts a space after each colon (OpenAI, Anthropic); DashScope
/// writes none.
pub fn frame(event: &SseEvent, space: bool) -> String {
    let sep = if space { ": " } else { ":" };
    let mut out = String::new();
    if let Some(id) = &event.id {
        out.push_str(&format!("id{sep}{id}\n"));
    }
    if let Some(name) = &event.event {
        out.push_str(&format!("event{sep}{name}\n"));
    }
    if let Some(status) = event.status {
        out.push_str(&format!(":HTTP_STATUS/{status}\n"));
        // DashScope documents the comment; its Python SDK reads a `status:` line on errors.
        if event.event.as_deref() == Some("error") {
            out.push_str(&format!("status{sep}{status}\n"));
        }
    }
    for line in event.data.split('\n') {
        out.push_str(&format!("data{sep}{line}\n"));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events: Vec<SseEvent> = chunks.iter().flat_map(|c| parser.feed(c)).collect();
        events.extend(parser.finish());
        events
    }

    #[test]
    fn crlf_comments_multiline_and_missing_space() {
        let events = parse_all(&[
            b": keep-alive\r\nevent: ping\r\ndata:{\"a\":1}\r\n\r\ndata: x\ndata: y\n\n",
        ]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("ping"));
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].data, "x\ny");
    }

    #[test]
    fn split_anywhere_gives_the_same_events() {
        let text =
            b"id:1\r\nevent:result\r\n:HTTP_STATUS/200\r\ndata:{\"k\":\"v\"}\r\n\r\ndata: [DONE]";
        let whole = parse_all(&[text]);
        for cut in 0..text.len() {
            assert_eq!(
                parse_all(&[&text[..cut], &text[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        assert_eq!(whole[0].status, Some(200));
        assert_eq!(whole[0].id.as_deref(), Some("1"));
        assert_eq!(whole[1].data, "[DONE]", "last event without a blank line");
    }

    #[test]
    fn frames_round_trip() {
        let event = SseEvent {
            event: Some("result".into()),
            data: "{\"a\":\"b\"}\nsecond".into(),
            id: Some("7".into()),
            status: Some(200),
        };
        for space in [true, false] {
            assert_eq!(
                parse_all(&[frame(&event, space).as_bytes()]),
                vec![event.clone()]
            );
        }
    }
}

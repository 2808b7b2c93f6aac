//! Moves reasoning that MiniMax wrote into the visible content (`<think>…</think>` at its start;
//! M3 spells the tags `<mm:think>…</mm:think>`) out of the text, whole or piece by piece as a
//! stream delivers it. Tags split across pieces are held back until they are known, so
//! reasoning never leaks into the answer and a text that merely starts with `<th` is not eaten.

/// Opening tag → closing tag.
const TAGS: [(&str, &str); 2] = [("<think>", "</think>"), ("<mm:think>", "</mm:think>")];

#[derive(Debug, Default)]
enum State {
    /// Nothing but whitespace seen yet: the content may still open with a tag.
    #[default]
    Start,
    /// Inside the reasoning, until this closing tag.
    Inside(&'static str),
    /// Just past the closing tag: the blank lines that usually follow it are dropped.
    Closed,
    /// Past the reasoning (or there was none): everything is text.
    Text,
}

/// Splits one choice's content into reasoning and text.
#[derive(Debug, Default)]
pub struct ThinkSplitter {
    state: State,
    pending: String,
}

/// What a piece of content turned out to be.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub reasoning: String,
    pub text: String,
}

impl ThinkSplitter {
    /// Feeds the next piece of content.
    pub fn push(&mut self, piece: &str) -> Split {
        let mut out = Split::default();
        self.pending.push_str(piece);
        loop {
            match self.state {
                State::Text => {
                    out.text.push_str(&std::mem::take(&mut self.pending));
                    return out;
                }
                State::Closed => {
                    self.pending = self.pending.trim_start_matches(['\n', '\r']).to_string();
                    if self.pending.is_empty() {
                        return out;
                    }
                    self.state = State::Text;
                }
                State::Start => {
                    let trimmed = self.pending.trim_start();
                    if let Some((open, close)) =
                        TAGS.iter().find(|(open, _)| trimmed.starts_with(open))
                    {
                        self.pending = trimmed[open.len()..].to_string();
                        self.state = State::Inside(close);
                    } else if TAGS.iter().any(|(open, _)| open.starts_with(trimmed)) {
                        // Whitespace or the start of a tag so far: wait for more.
                        return out;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Inside(close) => {
                    if let Some(at) = self.pending.find(close) {
                        out.reasoning.push_str(&self.pending[..at]);
                        self.pending = self.pending[at + close.len()..].to_string();
                        self.state = State::Closed;
                    } else {
                        // Keep back a tail that may be the start of the closing tag.
                        let keep = partial_suffix(&self.pending, close);
                        let cut = self.pending.len() - keep;
                        out.reasoning.push_str(&self.pending[..cut]);
                        self.pending = self.pending[cut..].to_string();
                        return out;
                    }
                }
            }
        }
    }

    /// The content ended: whatever was held back is what it looked like.
    pub fn flush(&mut self) -> Split {
        let pending = std::mem::take(&mut self.pending);
        match self.state {
            State::Inside(_) => Split {
                reasoning: pending,
                text: String::new(),
            },
            State::Start | State::Closed | State::Text => Split {
                reasoning: String::new(),
                text: pending,
            },
        }
    }
}

/// The length of the longest tail of `text` that is a proper prefix of `tag` (ASCII, so the
/// cut is on a char boundary).
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| text.ends_with(&tag[..n]))
        .unwrap_or(0)
}

/// Splits a whole content at once.
pub fn split_content(content: &str) -> Split {
    let mut splitter = ThinkSplitter::default();
    let mut split = splitter.push(content);
    let rest = splitter.flush();
    split.reasoning.push_str(&rest.reasoning);
    split.text.push_str(&rest.text);
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_think_is_moved_out_of_the_text() {
        let split = split_content("<think>Plan the answer.</think>\n\nHello!");
        assert_eq!(split.reasoning, "Plan the answer.");
        assert_eq!(split.text, "Hello!");
        let split = split_content("<mm:think>M3 style</mm:think>Hi");
        assert_eq!(
            (split.reasoning.as_str(), split.text.as_str()),
            ("M3 style", "Hi")
        );
    }

    #[test]
    fn text_that_only_looks_like_a_tag_stays_text() {
        assert_eq!(split_content("<th").text, "<th");
        assert_eq!(split_content("The <think> tag").text, "The <think> tag");
        assert_eq!(split_content("").text, "");
    }

    #[test]
    fn any_split_of_the_pieces_gives_the_same_result() {
        let whole = "  <think>a</thin b</think>\n\nAnswer </think> kept";
        for cut in 0..=whole.len() {
            for cut2 in cut..=whole.len() {
                let mut splitter = ThinkSplitter::default();
                let mut got = Split::default();
                for piece in [&whole[..cut], &whole[cut..cut2], &whole[cut2..]] {
                    let split = splitter.push(piece);
                    got.reasoning.push_str(&split.reasoning);
                    got.text.push_str(&split.text);
                }
                let rest = splitter.flush();
                got.reasoning.push_str(&rest.reasoning);
                got.text.push_str(&rest.text);
                assert_eq!(got.reasoning, "a</thin b", "cuts {cut} {cut2}");
                assert_eq!(got.text, "Answer </think> kept", "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn unclosed_reasoning_never_becomes_text() {
        let split = split_content("<think>cut off mid-thought </thi");
        assert_eq!(split.reasoning, "cut off mid-thought </thi");
        assert_eq!(split.text, "");
    }
}

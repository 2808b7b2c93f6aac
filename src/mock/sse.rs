//! The streaming body every protocol of the mock shares: a lazy sequence of server-sent-event
//! frames, sent one per poll so `[mock:chunk_delay_ms=N]` delays are real, `[mock:cut_after=N]`
//! can break the body mid-stream and `[mock:stream_error]` can end it with an in-band error.
//!
//! Each protocol describes its stream as [`Frame`]s of four kinds, which is all the driver needs
//! to apply the directives the same way everywhere:
//! - `Head`: before any content (OpenAI's role chunk, Anthropic's `message_start`); never cut.
//! - `Content`: one content chunk (a word, an argument fragment, a thinking piece); counted.
//! - `Inner`: between content chunks (Anthropic block boundaries); cut once N chunks went out.
//! - `Tail`: the ending (finish, usage, end marker); a stream with `cut_after` never reaches it.
//!
//! So `cut_after=N` breaks the body (an I/O error, no end marker) before the (N+1)th content
//! chunk or before the tail, whichever comes first; `stream_error` sends the protocol's error
//! frame right after the first content chunk and then ends the body cleanly.
//!
//! `one_piece` and `random_cuts` change only how the same bytes are cut into body chunks: all in
//! one (with `Content-Length`), or at places drawn from a seed, across event boundaries.

use std::io;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use super::faults::Directives;

/// Where a frame sits in the stream (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Head,
    Content,
    Inner,
    Tail,
}

/// One encoded server-sent event.
#[derive(Debug)]
pub(super) struct Frame {
    pub kind: Kind,
    pub bytes: Bytes,
}

impl Frame {
    pub fn new(kind: Kind, bytes: impl Into<Bytes>) -> Self {
        Self {
            kind,
            bytes: bytes.into(),
        }
    }
}

/// The frames of one response, produced lazily.
pub(super) type Frames = Box<dyn Iterator<Item = Frame> + Send>;

/// The `200 text/event-stream` response for `frames`, applying the streaming directives.
/// `error_frame` is the protocol's in-band error, sent when `[mock:stream_error]` asks for it;
/// `headers` are extra response headers (request ids).
pub(super) fn respond(
    frames: Frames,
    directives: &Directives,
    error_frame: Bytes,
    headers: Vec<(HeaderName, String)>,
) -> Response {
    let delay = Duration::from_millis(directives.chunk_delay_ms);
    let mut driver = Driver {
        frames,
        cut_after: directives.cut_after,
        stream_error: directives.stream_error.then_some(error_frame),
        pending: None,
        content_sent: 0,
        over: false,
    };
    if directives.one_piece || directives.random_cuts.is_some() {
        let body = recut(&mut driver, directives.random_cuts);
        return with_headers(sse_response(body), headers);
    }
    let stream = futures::stream::unfold((driver, true), move |(mut driver, first)| async move {
        let step = driver.next_step()?;
        if !first && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if step.is_err() {
            // Let the server flush the headers and the frames so far first: the client must
            // see a body that breaks mid-stream, not a request that failed outright.
            tokio::task::yield_now().await;
        }
        Some((step, (driver, false)))
    });
    with_headers(sse_response(Body::from_stream(stream)), headers)
}

fn sse_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

fn with_headers(mut response: Response, headers: Vec<(HeaderName, String)>) -> Response {
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The whole stream at once: one chunk (`seed` `None`, so the body has a `Content-Length`) or
/// cut at places drawn from `seed`. A stream that `cut_after` breaks keeps its break at the end.
fn recut(driver: &mut Driver, seed: Option<u64>) -> Body {
    let mut bytes = Vec::new();
    let mut broken = None;
    while let Some(step) = driver.next_step() {
        match step {
            Ok(frame) => bytes.extend_from_slice(&frame),
            Err(error) => {
                broken = Some(error);
                break;
            }
        }
    }
    let mut chunks: Vec<io::Result<Bytes>> = Vec::new();
    match seed {
        None if broken.is_none() => return Body::from(bytes),
        None => chunks.push(Ok(Bytes::from(bytes))),
        Some(mut state) => {
            let mut start = 0;
            while start < bytes.len() {
                // A linear congruential generator: the same seed always cuts the same way.
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let end = (start + 1 + (state >> 33) as usize % 61).min(bytes.len());
                chunks.push(Ok(Bytes::copy_from_slice(&bytes[start..end])));
                start = end;
            }
        }
    }
    chunks.extend(broken.map(Err));
    Body::from_stream(futures::stream::iter(chunks))
}

/// Walks the frames, applying `cut_after` and `stream_error`.
struct Driver {
    frames: Frames,
    cut_after: Option<usize>,
    /// The error frame still to send after the first content chunk.
    stream_error: Option<Bytes>,
    /// A frame to send before anything else (the stream error, once due).
    pending: Option<Bytes>,
    content_sent: usize,
    over: bool,
}

impl Driver {
    fn next_step(&mut self) -> Option<io::Result<Bytes>> {
        if self.over {
            return None;
        }
        if let Some(error) = self.pending.take() {
            self.over = true;
            return Some(Ok(error));
        }
        let frame = self.frames.next()?;
        if let Some(cut) = self.cut_after {
            let cut_now = match frame.kind {
                Kind::Head => false,
                Kind::Content | Kind::Inner => self.content_sent >= cut,
                Kind::Tail => true,
            };
            if cut_now {
                self.over = true;
                return Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "mock upstream: stream cut by [mock:cut_after]",
                )));
            }
        }
        if frame.kind == Kind::Content {
            self.content_sent += 1;
            self.pending = self.stream_error.take();
        }
        Some(Ok(frame.bytes))
    }
}

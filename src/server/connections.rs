//! The gateway's HTTP/1.1 connections: the accept loop, what it does not let a client do, and
//! graceful shutdown.
//!
//! A client may not hold a connection without sending a request:
//! - a new connection must deliver its whole first request head (request line and headers)
//!   within `header_read_timeout`, however it dribbles the bytes;
//! - once a response is complete, a kept-alive connection may wait `idle_timeout` for the next
//!   request, whose head must then arrive within `header_read_timeout` of its first byte;
//! - while a request is in progress — from its head to the last byte of its response, however
//!   long a stream runs — no deadline applies.
//!
//! A connection past its deadline is closed without an answer. hyper's own header timeout is
//! not used: it counts the idle wait of a kept-alive connection as header time, so the two
//! deadlines could not differ.
//!
//! At most `max_connections` are served at once. The loop takes a permit before it accepts, so
//! connections beyond the limit wait, unaccepted, in the kernel's listen backlog until one
//! closes (and the kernel refuses them when the backlog is full).
//!
//! Shutdown stops accepting, lets every request in progress finish (streams included), closes
//! idle connections, and returns when every connection has ended.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::config::EdgeSettings;

/// Serves `app` on `listener` until `shutdown` resolves, then waits for every connection to end.
pub async fn serve(
    mut listener: TcpListener,
    app: Router,
    settings: &EdgeSettings,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let deadlines = Deadlines {
        header: settings.header_read_timeout,
        idle: settings.idle_timeout,
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.header_read_timeout(None);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (permit, tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = accept(&mut listener, &permits) => accepted,
        };
        // Small SSE frames must leave at once, not wait for the client's delayed ACK (Nagle).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let watch = Arc::new(Watch::new(deadlines));
        let io = TokioIo::new(Watched {
            tcp,
            watch: watch.clone(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        });
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let in_flight = InFlight::start(&watch);
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(Body::new)).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(Tracked {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        });
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Waits for a free connection slot, then for a connection.
async fn accept(
    listener: &mut TcpListener,
    permits: &Arc<Semaphore>,
) -> (OwnedSemaphorePermit, TcpStream, SocketAddr) {
    let permit = match permits.clone().acquire_owned().await {
        Ok(permit) => permit,
        // The semaphore is never closed.
        Err(_) => std::future::pending().await,
    };
    // axum's listener retries failed accepts (out of file descriptors, say) after a pause.
    let (tcp, peer) = axum::serve::Listener::accept(listener).await;
    (permit, tcp, peer)
}

#[derive(Clone, Copy)]
struct Deadlines {
    header: Duration,
    idle: Duration,
}

/// One connection's progress, shared by its socket (which enforces the deadlines) and its
/// requests (which suspend them).
struct Watch {
    deadlines: Deadlines,
    state: Mutex<State>,
}

struct State {
    /// Requests read and not yet fully answered.
    in_flight: usize,
    waiting: Waiting,
    /// The connection task, to wake when the last request in progress ends, so that the read
    /// it is waiting on starts counting the idle deadline.
    reader: Option<Waker>,
}

/// What the connection waits for while no request is in progress, and since when.
#[derive(Clone, Copy)]
enum Waiting {
    /// The rest of a request head.
    Head(Instant),
    /// The first byte of the next request.
    Idle(Instant),
}

impl Watch {
    fn new(deadlines: Deadlines) -> Watch {
        Watch {
            deadlines,
            state: Mutex::new(State {
                in_flight: 0,
                waiting: Waiting::Head(Instant::now()),
                reader: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection must be closed if nothing more arrives; None while a request is in
    /// progress. Remembers `reader` to wake when that changes.
    fn deadline(&self, reader: &Waker) -> Option<Instant> {
        let mut state = self.state();
        state.reader = Some(reader.clone());
        if state.in_flight > 0 {
            return None;
        }
        Some(match state.waiting {
            Waiting::Head(since) => since + self.deadlines.header,
            Waiting::Idle(since) => since + self.deadlines.idle,
        })
    }

    fn bytes_arrived(&self) {
        let mut state = self.state();
        if state.in_flight == 0 {
            if let Waiting::Idle(_) = state.waiting {
                state.waiting = Waiting::Head(Instant::now());
            }
        }
    }
}

/// A request in progress: from its head until its response body is done or dropped.
struct InFlight(Arc<Watch>);

impl InFlight {
    fn start(watch: &Arc<Watch>) -> InFlight {
        watch.state().in_flight += 1;
        InFlight(watch.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.waiting = Waiting::Idle(Instant::now());
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
        }
    }
}

/// A response body that keeps its request in progress until it is done.
struct Tracked {
    body: Body,
    /// Held, never read: dropped with the body.
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A client's socket whose reads fail with `TimedOut` once the connection's deadline passes.
struct Watched {
    tcp: TcpStream,
    watch: Arc<Watch>,
    timer: Pin<Box<Sleep>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.watch.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let Some(deadline) = self.watch.deadline(cx.waker()) else {
                    return Poll::Pending;
                };
                if self.timer.deadline() != deadline {
                    self.timer.as_mut().reset(deadline);
                }
                match self.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no complete request in time",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

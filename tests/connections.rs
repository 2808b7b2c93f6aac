//! The gateway's connections over real TCP sockets: slow and silent clients are cut at the
//! header-read and idle deadlines, a slow stream is not, the connection limit holds, and
//! shutdown lets a stream in progress finish.
//!
//! Connection handling does not depend on the store, so these run against SQLite only.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use modelrouter::config::Settings;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than any deadline a test sets: a read still waiting after this failed the test.
const PATIENCE: Duration = Duration::from_secs(10);

const LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: gateway\r\n\r\n";

fn sqlite() -> Store {
    Store {
        name: "sqlite",
        url: None,
        dir: tempfile::tempdir().unwrap(),
    }
}

async fn gateway(tweak: impl Fn(&mut Settings)) -> Env {
    env_with(sqlite(), 0, tweak).await
}

/// Reads until the server closes the connection (or resets it); returns what it sent and when
/// it closed. Fails the test if the server keeps the connection open past [`PATIENCE`].
async fn until_closed(tcp: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, tcp.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open for {PATIENCE:?}; it sent {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, Instant::now()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one whole response (head and a `Content-Length` body) within `within`; None if it
/// did not come.
async fn response(tcp: &mut TcpStream, within: Duration) -> Option<String> {
    let read = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    return text;
                }
            }
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed mid-response: {text:?}");
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(within, read).await.ok()
}

#[tokio::test]
async fn a_client_dribbling_header_lines_is_cut_at_the_header_timeout() {
    let header_timeout = Duration::from_millis(600);
    let env = gateway(|s| {
        s.edge.header_read_timeout = header_timeout;
        s.edge.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let tcp = TcpStream::connect(env.server.addr).await.unwrap();
    let opened = Instant::now();
    let (mut reader, mut writer) = tcp.into_split();
    // Each line comes well within the timeout; the head as a whole never completes.
    let dribble = tokio::spawn(async move {
        writer
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: gateway\r\n")
            .await?;
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(150)).await;
            writer
                .write_all(format!("X-Line-{i}: still typing\r\n").as_bytes())
                .await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match tokio::time::timeout(PATIENCE, reader.read(&mut buf)).await {
            Err(_) => panic!("a slow header was allowed {PATIENCE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => break Instant::now(),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    };
    assert!(received.is_empty(), "no answer to a request never finished");
    assert!(closed - opened >= header_timeout);
    // The dribbler finds the connection gone.
    let written = tokio::time::timeout(PATIENCE, dribble).await.unwrap();
    assert!(written.unwrap().is_err());
    env.finish().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    let header_timeout = Duration::from_millis(400);
    let env = gateway(|s| {
        s.edge.header_read_timeout = header_timeout;
        s.edge.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let mut tcp = TcpStream::connect(env.server.addr).await.unwrap();
    let opened = Instant::now();
    let (received, closed) = until_closed(&mut tcp).await;
    assert!(received.is_empty());
    assert!(closed - opened >= header_timeout);
    env.finish().await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let idle_timeout = Duration::from_millis(1500);
    let env = gateway(|s| {
        s.edge.header_read_timeout = Duration::from_millis(300);
        s.edge.idle_timeout = idle_timeout;
    })
    .await;
    let mut tcp = TcpStream::connect(env.server.addr).await.unwrap();
    tcp.write_all(LIVE).await.unwrap();
    let first = response(&mut tcp, PATIENCE).await.unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let answered = Instant::now();
    // Kept alive past the header timeout: a second request on the same connection is served.
    tcp.write_all(LIVE).await.unwrap();
    let second = response(&mut tcp, PATIENCE).await.unwrap();
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    let answered_again = Instant::now();
    assert!(answered_again - answered < idle_timeout);

    let (received, closed) = until_closed(&mut tcp).await;
    assert!(received.is_empty());
    assert!(
        closed - answered_again >= idle_timeout,
        "closed {:?} after the response",
        closed - answered_again
    );
    env.finish().await;
}

#[tokio::test]
async fn a_slow_stream_outlives_the_header_and_idle_timeouts() {
    let env = gateway(|s| {
        s.edge.header_read_timeout = Duration::from_millis(200);
        s.edge.idle_timeout = Duration::from_millis(200);
    })
    .await;
    let started = Instant::now();
    // Five chunks 400 ms apart: every pause is twice the deadlines.
    let response = env
        .chat(
            KEY_AUTO,
            json!({"model": "test-gpt", "stream": true,
                   "messages": user("[mock:words=5] [mock:chunk_delay_ms=400] go")}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1600));
    assert!(body.contains("w5"), "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    env.finish().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let env = gateway(|s| s.edge.max_connections = 2).await;
    let mut first = TcpStream::connect(env.server.addr).await.unwrap();
    let mut second = TcpStream::connect(env.server.addr).await.unwrap();
    for tcp in [&mut first, &mut second] {
        tcp.write_all(LIVE).await.unwrap();
        let answer = response(tcp, PATIENCE).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // Both are kept alive; the third waits in the backlog.
    let mut third = TcpStream::connect(env.server.addr).await.unwrap();
    third.write_all(LIVE).await.unwrap();
    assert_eq!(
        response(&mut third, Duration::from_millis(700)).await,
        None,
        "a third connection was served beyond the limit of two"
    );
    drop(first);
    let answer = response(&mut third, PATIENCE).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    env.finish().await;
}

#[tokio::test]
async fn shutdown_lets_a_stream_in_progress_finish() {
    let env = gateway(|_| {}).await;
    let mut response = env
        .chat(
            KEY_AUTO,
            json!({"model": "test-gpt", "stream": true,
                   "messages": user("[mock:words=6] [mock:chunk_delay_ms=150] go")}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut body = String::from_utf8(response.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    let Env {
        store,
        mock,
        server,
        http: _,
    } = env;
    let stopping = tokio::spawn(server.stop());
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(body.contains("w6"), "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    mock.stop();
    drop(store);
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408_at_the_body_deadline() {
    // The head arrives whole, so the header deadline is met; the body then stops coming.
    let body_timeout = Duration::from_millis(400);
    let env = gateway(|s| {
        s.edge.body_read_timeout = body_timeout;
        s.edge.header_read_timeout = Duration::from_secs(30);
        s.edge.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let mut tcp = TcpStream::connect(env.server.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {KEY_AUTO}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let sent = Instant::now();
    let (received, closed) = until_closed(&mut tcp).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive in time"), "{text}");
    assert!(closed - sent >= body_timeout);
    env.finish().await;
}

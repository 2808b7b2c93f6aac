//! HTTP helpers for the tests of every protocol: POST with headers, read a broken stream.

use axum::body::{to_bytes, Body, Bytes};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use futures::StreamExt;
use serde_json::Value;
use tower::ServiceExt;

fn request(path: &str, headers: &[(&str, &str)], body: &Value) -> Request<Body> {
    let mut builder = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

/// POSTs JSON to `path` with extra headers; returns the status, headers and whole body.
pub(super) async fn post(
    app: &Router,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, HeaderMap, Bytes) {
    let response = app
        .clone()
        .oneshot(request(path, headers, body))
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, headers, bytes)
}

/// The body of a stream that breaks: the text sent before the break. Fails if it does not break.
pub(super) async fn broken_stream(
    app: &Router,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> String {
    let response = app
        .clone()
        .oneshot(request(path, headers, body))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let items: Vec<_> = response.into_body().into_data_stream().collect().await;
    let (last, frames) = items.split_last().unwrap();
    assert!(last.is_err(), "the body must end with an error");
    frames
        .iter()
        .map(|f| String::from_utf8(f.as_ref().unwrap().to_vec()).unwrap())
        .collect()
}

pub(super) fn json_body(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

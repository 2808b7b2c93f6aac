//! What a client of each customer protocol sends and reads, for the protocol matrix tests.
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::{json, Value};

use crate::common::{env_with, eventually, import_text, stores, Env, KEY_AUTO};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    OpenAi,
    Anthropic,
    DashScope,
}

pub const CLIENTS: [Client; 3] = [Client::OpenAi, Client::Anthropic, Client::DashScope];
/// One public model per upstream protocol (see `matrix_catalog`).
pub const UPSTREAMS: [&str; 4] = [
    "via-openai",
    "via-anthropic",
    "via-dashscope",
    "via-minimax",
];

pub fn matrix_catalog(mock: std::net::SocketAddr) -> String {
    let provider = |id: &str, protocol: &str, base: &str| {
        format!(
            "[[providers]]\nid = \"{id}\"\nprotocol = \"{protocol}\"\nbase_url = \"http://{mock}{base}\"\nregion = \"local\"\napi_key = \"{}\"\n\n",
            crate::common::UPSTREAM_CREDENTIAL
        )
    };
    // via-anthropic has its own output limit: Anthropic requires one, and it must come from the
    // model, not a global default.
    let model = |name: &str, provider: &str| {
        let limit = if name == "via-anthropic" {
            "max_output_tokens = 777\n"
        } else {
            ""
        };
        format!(
            "[[models]]\nname = \"{name}\"\ndisplay_name = \"{name}\"\ninput_price = 1_000_000\noutput_price = 2_000_000\ncached_input_price = 500_000\n{limit}\n[[routes]]\nmodel = \"{name}\"\nmax_attempts = 1\ndeployments = [ {{ provider = \"{provider}\", upstream_model = \"up-{name}\", weight = 1, priority = 0 }} ]\n\n"
        )
    };
    let mut text = String::new();
    text += &provider("p-openai", "openai", "/v1");
    text += &provider("p-anthropic", "anthropic", "");
    text += &provider("p-dashscope", "dashscope", "/api/v1");
    text += &provider("p-minimax", "minimax", "/v1");
    text += &model("via-openai", "p-openai");
    text += &model("via-anthropic", "p-anthropic");
    text += &model("via-dashscope", "p-dashscope");
    text += &model("via-minimax", "p-minimax");
    text
}

fn weather_tool_openai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// What a client read back, in protocol-neutral terms.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reading {
    pub status: u16,
    pub text: String,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub tool_name: Option<String>,
    pub tool_arguments: Option<Value>,
    /// The error's type/code in the client's envelope.
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub finish: Option<String>,
}

/// The body a `client` of each protocol sends for one user `text`.
pub fn request_body(client: Client, model: &str, text: &str, stream: bool, tools: bool) -> Value {
    let mut body = match client {
        Client::OpenAi => json!({"model": model, "messages": [{"role": "user", "content": text}]}),
        Client::Anthropic => json!({"model": model, "max_tokens": 256,
            "messages": [{"role": "user", "content": text}]}),
        Client::DashScope => json!({"model": model,
            "input": {"messages": [{"role": "user", "content": text}]},
            "parameters": {"result_format": "message", "incremental_output": true}}),
    };
    match client {
        Client::OpenAi if stream => {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        Client::Anthropic if stream => body["stream"] = json!(true),
        _ => {}
    }
    if tools {
        match client {
            Client::OpenAi => body["tools"] = weather_tool_openai(),
            Client::Anthropic => {
                body["tools"] = json!([{"name": "get_weather", "description": "Weather by city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"]}}])
            }
            Client::DashScope => body["parameters"]["tools"] = weather_tool_openai(),
        }
    }
    body
}

/// A request to `client`'s endpoint with the auth and stream switch that protocol uses.
pub fn request_to(env: &Env, client: Client, key: &str, stream: bool) -> reqwest::RequestBuilder {
    match client {
        Client::OpenAi => env
            .http
            .post(env.url("/v1/chat/completions"))
            .bearer_auth(key),
        Client::Anthropic => env
            .http
            .post(env.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01"),
        Client::DashScope => {
            let request = env
                .http
                .post(env.url("/api/v1/services/aigc/text-generation/generation"))
                .bearer_auth(key);
            if stream {
                request.header("X-DashScope-SSE", "enable")
            } else {
                request
            }
        }
    }
}

/// One whole (non-streamed) answer to `text`, as the client's raw JSON.
pub async fn post_json(env: &Env, client: Client, model: &str, text: &str) -> Value {
    request_to(env, client, KEY_AUTO, false)
        .json(&request_body(client, model, text, false, false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Fails the test with every collected failure, one per line.
pub fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

pub async fn call(
    env: &Env,
    client: Client,
    key: &str,
    model: &str,
    text: &str,
    stream: bool,
    tools: bool,
) -> Reading {
    let request = request_to(env, client, key, stream)
        .json(&request_body(client, model, text, stream, tools));
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let raw = response.text().await.unwrap();
    let mut reading = Reading {
        status,
        ..Reading::default()
    };
    if content_type.starts_with("text/event-stream") {
        read_stream(client, &raw, &mut reading);
    } else {
        let value: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
        read_whole(client, &value, &mut reading);
    }
    reading
}

fn read_error(client: Client, value: &Value, reading: &mut Reading) -> bool {
    let (kind, message) = match client {
        Client::OpenAi | Client::Anthropic => (
            value.pointer("/error/type"),
            value.pointer("/error/message"),
        ),
        Client::DashScope => (value.get("code"), value.get("message")),
    };
    if let (Some(kind), Some(message)) = (
        kind.and_then(Value::as_str),
        message.and_then(Value::as_str),
    ) {
        reading.error_kind = Some(kind.to_string());
        reading.error_message = Some(message.to_string());
        return true;
    }
    false
}

fn read_whole(client: Client, value: &Value, reading: &mut Reading) {
    if read_error(client, value, reading) {
        return;
    }
    match client {
        Client::OpenAi => {
            let message = &value["choices"][0]["message"];
            reading.text = message["content"].as_str().unwrap_or("").to_string();
            reading.input_tokens = value["usage"]["prompt_tokens"].as_u64();
            reading.output_tokens = value["usage"]["completion_tokens"].as_u64();
            reading.finish = value["choices"][0]["finish_reason"]
                .as_str()
                .map(str::to_string);
            if let Some(call) = message["tool_calls"].get(0) {
                reading.tool_name = call["function"]["name"].as_str().map(str::to_string);
                reading.tool_arguments = call["function"]["arguments"]
                    .as_str()
                    .and_then(|a| serde_json::from_str(a).ok());
            }
        }
        Client::Anthropic => {
            for block in value["content"].as_array().into_iter().flatten() {
                match block["type"].as_str() {
                    Some("text") => reading.text.push_str(block["text"].as_str().unwrap_or("")),
                    Some("tool_use") => {
                        reading.tool_name = block["name"].as_str().map(str::to_string);
                        reading.tool_arguments = Some(block["input"].clone());
                    }
                    _ => {}
                }
            }
            let usage = &value["usage"];
            reading.input_tokens = usage["input_tokens"].as_u64().map(|i| {
                i + usage["cache_read_input_tokens"].as_u64().unwrap_or(0)
                    + usage["cache_creation_input_tokens"].as_u64().unwrap_or(0)
            });
            reading.output_tokens = usage["output_tokens"].as_u64();
            reading.finish = value["stop_reason"].as_str().map(str::to_string);
        }
        Client::DashScope => {
            let choice = &value["output"]["choices"][0];
            reading.text = choice["message"]["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            reading.input_tokens = value["usage"]["input_tokens"].as_u64();
            reading.output_tokens = value["usage"]["output_tokens"].as_u64();
            reading.finish = choice["finish_reason"].as_str().map(str::to_string);
            if let Some(call) = choice["message"]["tool_calls"].get(0) {
                reading.tool_name = call["function"]["name"].as_str().map(str::to_string);
                reading.tool_arguments = call["function"]["arguments"]
                    .as_str()
                    .and_then(|a| serde_json::from_str(a).ok());
            }
        }
    }
}

/// (event name, data) of every frame.
pub fn frames(raw: &str) -> Vec<(Option<String>, String)> {
    let mut parser = modelrouter::protocol::sse::SseParser::new();
    let mut events = parser.feed(raw.as_bytes());
    events.extend(parser.finish());
    events.into_iter().map(|e| (e.event, e.data)).collect()
}

fn read_stream(client: Client, raw: &str, reading: &mut Reading) {
    let mut arguments = String::new();
    for (event, data) in frames(raw) {
        if data.trim() == "[DONE]" {
            continue;
        }
        let value: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        if event.as_deref() == Some("error")
            || value.get("error").is_some() && client != Client::DashScope
        {
            read_error(client, &value, reading);
            continue;
        }
        match client {
            Client::OpenAi => {
                let delta = &value["choices"][0]["delta"];
                reading
                    .text
                    .push_str(delta["content"].as_str().unwrap_or(""));
                if let Some(call) = delta["tool_calls"].get(0) {
                    if let Some(name) = call["function"]["name"].as_str() {
                        reading.tool_name = Some(name.to_string());
                    }
                    arguments.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
                }
                if let Some(reason) = value["choices"][0]["finish_reason"].as_str() {
                    reading.finish = Some(reason.to_string());
                }
                if value["usage"].is_object() {
                    reading.input_tokens = value["usage"]["prompt_tokens"].as_u64();
                    reading.output_tokens = value["usage"]["completion_tokens"].as_u64();
                }
            }
            Client::Anthropic => match value["type"].as_str() {
                Some("message_start") => {
                    let usage = &value["message"]["usage"];
                    reading.input_tokens = usage["input_tokens"].as_u64();
                }
                Some("content_block_start") if value["content_block"]["type"] == "tool_use" => {
                    reading.tool_name = value["content_block"]["name"].as_str().map(str::to_string);
                }
                Some("content_block_delta") => {
                    let delta = &value["delta"];
                    reading.text.push_str(delta["text"].as_str().unwrap_or(""));
                    arguments.push_str(delta["partial_json"].as_str().unwrap_or(""));
                }
                Some("message_delta") => {
                    let usage = &value["usage"];
                    if let Some(input) = usage["input_tokens"].as_u64() {
                        reading.input_tokens =
                            Some(input + usage["cache_read_input_tokens"].as_u64().unwrap_or(0));
                    }
                    reading.output_tokens = usage["output_tokens"].as_u64();
                    reading.finish = value["delta"]["stop_reason"].as_str().map(str::to_string);
                }
                _ => {}
            },
            Client::DashScope => {
                if event.as_deref() == Some("error") {
                    continue;
                }
                let choice = &value["output"]["choices"][0];
                reading
                    .text
                    .push_str(choice["message"]["content"].as_str().unwrap_or(""));
                if let Some(call) = choice["message"]["tool_calls"].get(0) {
                    if let Some(name) = call["function"]["name"].as_str().filter(|n| !n.is_empty())
                    {
                        reading.tool_name = Some(name.to_string());
                    }
                    arguments.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
                }
                if let Some(reason) = choice["finish_reason"].as_str().filter(|r| *r != "null") {
                    reading.finish = Some(reason.to_string());
                }
                reading.input_tokens = value["usage"]["input_tokens"]
                    .as_u64()
                    .or(reading.input_tokens);
                reading.output_tokens = value["usage"]["output_tokens"]
                    .as_u64()
                    .or(reading.output_tokens);
            }
        }
    }
    if !arguments.is_empty() {
        reading.tool_arguments = serde_json::from_str(&arguments).ok();
    }
}

/// A replica serving the matrix catalog (one public model per upstream protocol), once the
/// catalog has reached it through the event log.
pub async fn matrix_env() -> Env {
    matrix_env_with(|_| {}).await
}

/// [`matrix_env`] with adjusted settings.
pub async fn matrix_env_with(tweak: impl Fn(&mut modelrouter::config::Settings)) -> Env {
    let store = stores().await.remove(0);
    let env = env_with(store, 0, tweak).await;
    let core = env.store.core().await;
    import_text(&core, &matrix_catalog(env.mock.addr)).await;
    // The serving replica picks the import up from the log.
    let core_position = core.db.head().await.unwrap();
    drop(core);
    let http = env.http.clone();
    let url = env.url("/v1/models");
    assert!(
        eventually(std::time::Duration::from_secs(5), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let body: serde_json::Value = http
                    .get(url)
                    .bearer_auth(KEY_AUTO)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["id"] == "via-minimax")
            }
        })
        .await,
        "matrix catalog reached the replica (head {core_position:?})"
    );
    env
}

pub fn check(failures: &mut Vec<String>, ok: bool, what: String) {
    if !ok {
        failures.push(what);
    }
}

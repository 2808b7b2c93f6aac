//! Routing's answers to failing or slow upstreams through a spawned gateway and the mock: a
//! provider that refuses the platform itself (401/403/404) is the platform's failure and the
//! next deployment serves; a route's deadline bounds every attempt; embedding models answer no
//! chat.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].clone())
}

/// Waits until the serving replica lists every model in `names` (an import it picks up from
/// the log).
async fn wait_for_models(env: &Env, names: &[&str]) {
    let (http, url) = (env.http.clone(), env.url("/v1/models"));
    let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let listed = eventually(std::time::Duration::from_secs(5), || {
        let (http, url, names) = (http.clone(), url.clone(), names.clone());
        async move {
            let text = http
                .get(url)
                .bearer_auth(KEY_AUTO)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            names.iter().all(|name| text.contains(name.as_str()))
        }
    })
    .await;
    assert!(listed, "the replica never listed {names:?}");
}

#[tokio::test]
async fn a_provider_that_refuses_the_platform_is_its_failure_and_the_next_deployment_serves() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let core = env.store.core().await;
    // The same mock behind a provider whose credential it does not accept (401).
    let mock = env.mock.addr;
    import_text(
        &core,
        &format!(
            r#"
[[providers]]
id = "expired"
protocol = "openai"
base_url = "http://{mock}/v1"
region = "local"
api_key = "sk-expired-credential"

[[models]]
name = "refused-only"
display_name = "Refused only"
input_price = 1
output_price = 1
cached_input_price = 1

[[models]]
name = "refused-then-good"
display_name = "Refused then good"
input_price = 1
output_price = 1
cached_input_price = 1

[[routes]]
model = "refused-only"
max_attempts = 3
deployments = [ {{ provider = "expired", upstream_model = "up", weight = 1, priority = 0 }} ]

[[routes]]
model = "refused-then-good"
max_attempts = 3
deployments = [
  {{ provider = "expired", upstream_model = "up", weight = 1, priority = 0 }},
  {{ provider = "mock-openai", upstream_model = "up", weight = 1, priority = 1 }},
]
"#
        ),
    )
    .await;
    drop(core);
    wait_for_models(&env, &["refused-then-good"]).await;

    let before = env.mock.requests().await.len();
    let response = env
        .chat(
            KEY_AUTO,
            json!({"model": "refused-only", "messages": user("hi")}),
        )
        .await;
    assert_eq!(response.status(), 502);
    let (_, error) = error_of(response).await;
    let message = error["message"].as_str().unwrap();
    assert_eq!(error["type"], "server_error", "{error}");
    assert!(
        message.contains("not a problem with your request") && !message.contains("API key"),
        "the gateway's own words, not the provider's: {message}"
    );
    assert_eq!(
        env.mock.requests().await.len() - before,
        1,
        "a refusing deployment is never tried again"
    );

    let served = env
        .chat(
            KEY_AUTO,
            json!({"model": "refused-then-good", "messages": user("hi")}),
        )
        .await;
    assert_eq!(served.status(), 200, "the next deployment serves");
    env.finish().await;
}

#[tokio::test]
async fn a_routes_deadline_bounds_every_attempt_and_embedding_models_answer_no_chat() {
    let store = stores().await.remove(0);
    let env = env_with(store, 0, |s| {
        s.upstream_first_byte_timeout = std::time::Duration::from_secs(1)
    })
    .await;
    let core = env.store.core().await;
    import_text(
        &core,
        r#"
[[models]]
name = "deadline-gpt"
display_name = "Deadline GPT"
input_price = 1
output_price = 1
cached_input_price = 1

[[models]]
name = "embed"
kind = "embedding"
display_name = "Embed"
input_price = 1
output_price = 0
cached_input_price = 0

[[routes]]
model = "deadline-gpt"
max_attempts = 3
timeout_ms = 300
deployments = [ { provider = "mock-openai", upstream_model = "up", weight = 1, priority = 0 } ]

[[routes]]
model = "embed"
deployments = [ { provider = "mock-openai", upstream_model = "up-embed", weight = 1, priority = 0 } ]
"#,
    )
    .await;
    drop(core);
    wait_for_models(&env, &["deadline-gpt", "embed"]).await;

    // Each attempt alone could wait 1 s for the first byte; the route allows 0.3 s for all of
    // them, so the one attempt under way is the last.
    let before = env.mock.requests().await.len();
    let (status, error) = error_of(
        env.chat(
            KEY_AUTO,
            json!({"model": "deadline-gpt", "messages": user("slow [mock:delay_ms=2000]")}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 504, "{error}");
    assert_eq!(env.mock.requests().await.len() - before, 1);

    let (status, error) = error_of(
        env.chat(KEY_AUTO, json!({"model": "embed", "messages": user("hi")}))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["param"], "model", "{error}");
    assert!(error["message"].as_str().unwrap().contains("embedding"));
    env.finish().await;
}

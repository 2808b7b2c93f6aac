//! Providers in the operations console: adding and editing with clear validation, write-only
//! credentials that never appear anywhere in plaintext and take effect at once, disabling that
//! stops routing at once, connection tests through every protocol's adapter, and the health
//! page built from the `provider_health` projection.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::visitor::Visitor;
use common::*;
use modelrouter_domain::aggregate_types::PROVIDER;
use modelrouter_projections::sql::{self, Projection};
use modelrouter_projections::Db;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Every event's payload and metadata as text, straight from the events table.
async fn event_texts(db: &Db) -> Vec<String> {
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar("SELECT payload || ' ' || metadata FROM events")
            .fetch_all(pool)
            .await
            .unwrap(),
        Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT payload::text || ' ' || metadata::text FROM events")
                .fetch_all(pool)
                .await
                .unwrap()
        }
    }
}

/// A replica on `store` with the usual catalog plus `extra` imported before it starts.
async fn env_plus(store: Store, extra: impl Fn(std::net::SocketAddr) -> String) -> Env {
    let mock = mock().await;
    let core = store.core().await;
    import_text(&core, &catalog(mock.addr, 0)).await;
    import_text(&core, &extra(mock.addr)).await;
    drop(core);
    let server = modelrouter::server::Running::start(store.settings())
        .await
        .unwrap();
    Env {
        store,
        mock,
        server,
        http: reqwest::Client::new(),
    }
}

async fn body(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap())
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn operators_add_and_edit_providers_with_clear_validation() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let core = env.store.core().await;
    let ops = Visitor::operator(&env.url(""), &core, "ops@example.com").await;
    let mock = env.mock.addr;

    // The imported provider is listed with its credential's state, not the credential.
    let (status, page) = body(ops.get("/admin/providers").await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("mock-openai"), "{page}");
    assert!(page.contains("Set · "), "{page}");
    assert!(page.contains("Never tested"));

    // A name that is not a slug is refused beside the form, with what was entered kept.
    let csrf = ops.csrf.clone();
    let bad = ops
        .form(
            "/admin/providers",
            &[
                ("csrf", &csrf),
                ("name", "Open AI"),
                ("protocol", "anthropic"),
                ("region", "eu-west"),
                ("base_url", "https://api.example.com"),
                ("credential", "sk-typed-secret-0001"),
            ],
        )
        .await;
    let (status, page) = body(bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("lower-case letters, digits and hyphens"),
        "{page}"
    );
    assert!(page.contains("value=\"eu-west\""));
    assert!(page.contains("value=\"anthropic\" selected"));
    assert!(
        !page.contains("sk-typed-secret-0001"),
        "a credential is never written back into a page"
    );

    // URLs: a scheme, no credentials inside, no query.
    for (url, message) in [
        ("api.example.com", "full address"),
        ("ftp://api.example.com", "http:// or https://"),
        (
            "https://user:pw@api.example.com/v1",
            "Do not put credentials in the URL",
        ),
        ("https://api.example.com/v1?key=1", "query"),
    ] {
        let (status, answer) = ops
            .write(
                "POST",
                "/api/admin/providers",
                json!({"name": "x-1", "protocol": "openai", "region": "r", "base_url": url}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(answer["error"]["field"], "base_url", "{url}");
        let text = answer["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{url}: {text}");
    }

    // Added with the form: to its page, which shows the settings and the credential's state.
    let added = ops
        .form(
            "/admin/providers",
            &[
                ("csrf", &csrf),
                ("name", "claude-eu"),
                ("protocol", "anthropic"),
                ("region", "eu-west"),
                ("base_url", &format!("http://{mock}/")),
                ("credential", UPSTREAM_CREDENTIAL),
            ],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&added), "/admin/providers/claude-eu?notice=added");
    let (status, page) = body(ops.get("/admin/providers/claude-eu?notice=added").await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("The provider was added."));
    assert!(
        page.contains(&format!("http://{mock}")),
        "trailing slash trimmed"
    );
    assert!(page.contains("Anthropic"));
    assert!(page.contains("Set · "));

    // The same name again is refused.
    let (status, answer) = ops
        .write(
            "POST",
            "/api/admin/providers",
            json!({"name": "claude-eu", "protocol": "openai", "region": "r",
                   "base_url": "https://api.example.com/v1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already exists"));

    // Editing: a bad region is shown beside the settings form; a good edit is saved.
    let edit = ops
        .form(
            "/admin/providers/claude-eu",
            &[
                ("csrf", &csrf),
                ("protocol", "anthropic"),
                ("region", "  "),
                ("base_url", &format!("http://{mock}")),
            ],
        )
        .await;
    let (status, page) = body(edit).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"edit-error\""), "{page}");
    let edit = ops
        .form(
            "/admin/providers/claude-eu",
            &[
                ("csrf", &csrf),
                ("protocol", "anthropic"),
                ("region", "eu-central"),
                ("base_url", &format!("http://{mock}")),
            ],
        )
        .await;
    assert_eq!(location(&edit), "/admin/providers/claude-eu?notice=updated");
    let (_, provider) = ops.json("/api/admin/providers/claude-eu").await;
    assert_eq!(provider["region"], "eu-central");
    assert_eq!(provider["protocol"], "anthropic");
    assert_eq!(provider["enabled"], true);
    assert_eq!(provider["credential"]["set"], true);
    assert_eq!(
        provider["credential"]["fingerprint"]
            .as_str()
            .unwrap()
            .len(),
        8
    );

    // A form without the session's CSRF token, and a JSON write without the header, are refused.
    let forged = ops
        .form(
            "/admin/providers/claude-eu/disable",
            &[("csrf", "not-the-token")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let unsigned = ops
        .http
        .post(ops.url("/api/admin/providers/claude-eu/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
    let (_, provider) = ops.json("/api/admin/providers/claude-eu").await;
    assert_eq!(provider["enabled"], true);

    // Every change is an event with the operator as actor.
    let events = core.db.events_of(PROVIDER, "claude-eu").await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["Registered", "CredentialRotated", "Reconfigured"]);
    for event in &events {
        assert!(
            event.metadata["actor"]
                .as_str()
                .unwrap()
                .starts_with("operator:"),
            "{}",
            event.metadata
        );
    }

    // A tenant's session opens none of it.
    let tenant = Visitor::sign_up(&env.url(""), "tenant@example.com").await;
    let (status, _) = tenant.json("/api/admin/providers").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(core);
    env.finish().await;
}

#[tokio::test]
async fn credentials_are_write_only_and_the_gateway_uses_a_new_one_at_once() {
    const ROTATED: &str = "sk-rotated-credential-7777";
    for store in stores().await {
        let env = env(store).await;
        let core = env.store.core().await;
        let ops = Visitor::operator(&env.url(""), &core, "ops@example.com").await;
        let mut seen = String::new();

        // Rotate to a credential the mock does not accept: the very next call carries it.
        let (status, provider) = ops
            .write(
                "POST",
                "/api/admin/providers/mock-openai/credential",
                json!({"credential": ROTATED}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{}: {provider}", env.store.name);
        seen.push_str(&provider.to_string());
        let before = env.mock.requests().await.len();
        let refused = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("hi")}),
            )
            .await;
        assert_ne!(refused.status(), StatusCode::OK, "{}", env.store.name);
        seen.push_str(&refused.text().await.unwrap());
        let requests = env.mock.requests().await;
        let sent = &requests[before..];
        assert!(!sent.is_empty());
        for request in sent {
            assert_eq!(request["authorization"], format!("Bearer {ROTATED}"));
        }

        // A connection test now shows the upstream's refusal, without the credential.
        let (status, test) = ops
            .write("POST", "/api/admin/providers/mock-openai/test", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{test}");
        assert_eq!(test["ok"], false);
        assert_eq!(test["status"], 401);
        assert!(test["error"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key provided"));
        seen.push_str(&test.to_string());

        // Rotated back with the page's form: calls succeed again, with that credential.
        let csrf = ops.csrf.clone();
        let form = ops
            .form(
                "/admin/providers/mock-openai/credential",
                &[("csrf", &csrf), ("credential", UPSTREAM_CREDENTIAL)],
            )
            .await;
        assert_eq!(
            location(&form),
            "/admin/providers/mock-openai?notice=rotated"
        );
        let ok = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("hi")}),
            )
            .await;
        assert_eq!(ok.status(), StatusCode::OK, "{}", env.store.name);
        let last = env.mock.requests().await.pop().unwrap();
        assert_eq!(
            last["authorization"],
            format!("Bearer {UPSTREAM_CREDENTIAL}")
        );
        // The same credential again records nothing.
        let same = ops
            .form(
                "/admin/providers/mock-openai/credential",
                &[("csrf", &csrf), ("credential", UPSTREAM_CREDENTIAL)],
            )
            .await;
        assert_eq!(
            location(&same),
            "/admin/providers/mock-openai?notice=same_credential"
        );

        // No page, no API answer and no event holds either plaintext, nor the ciphertext.
        for path in [
            "/admin/providers",
            "/admin/providers/mock-openai",
            "/api/admin/providers",
            "/api/admin/providers/mock-openai",
            "/admin/health",
            "/api/admin/health",
        ] {
            seen.push_str(&body(ops.get(path).await).await.1);
        }
        let events = core.db.events_of(PROVIDER, "mock-openai").await.unwrap();
        let rotations: Vec<&Value> = events
            .iter()
            .filter(|e| e.event_type == "CredentialRotated")
            .map(|e| &e.payload["CredentialRotated"]["ciphertext"])
            .collect();
        assert_eq!(rotations.len(), 3, "import, rotate, rotate back");
        for secret in [ROTATED, UPSTREAM_CREDENTIAL] {
            assert!(!seen.contains(secret), "{}: {secret} shown", env.store.name);
        }
        for ciphertext in rotations {
            assert!(!seen.contains(ciphertext.as_str().unwrap()));
        }
        for text in event_texts(&core.db).await {
            assert!(!text.contains(ROTATED), "{text}");
            assert!(!text.contains(UPSTREAM_CREDENTIAL), "{text}");
        }
        drop(core);
        env.finish().await;
    }
}

/// A second provider on the mock and a model served by both, primary first.
fn backup(mock: std::net::SocketAddr) -> String {
    format!(
        r#"
[[providers]]
id = "mock-backup"
protocol = "openai"
base_url = "http://{mock}/v1"
region = "local"
api_key = "{UPSTREAM_CREDENTIAL}"

[[models]]
name = "test-dual"
display_name = "Test Dual"
input_price = 1
output_price = 1
cached_input_price = 1

[[routes]]
model = "test-dual"
deployments = [
  {{ provider = "mock-openai", upstream_model = "primary-model", priority = 0 }},
  {{ provider = "mock-backup", upstream_model = "backup-model", priority = 1 }},
]
"#
    )
}

#[tokio::test]
async fn a_disabled_provider_gets_no_calls_from_the_next_one_on() {
    for store in stores().await {
        let env = env_plus(store, backup).await;
        let core = env.store.core().await;
        let ops = Visitor::operator(&env.url(""), &core, "ops@example.com").await;
        let dual = || async {
            let response = env
                .chat(
                    KEY_AUTO,
                    json!({"model": "test-dual", "messages": user("hi")}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            let last = env.mock.requests().await.pop().unwrap();
            last["body"]["model"].as_str().unwrap().to_string()
        };
        assert_eq!(dual().await, "primary-model");

        let csrf = ops.csrf.clone();
        let disabled = ops
            .form("/admin/providers/mock-openai/disable", &[("csrf", &csrf)])
            .await;
        assert_eq!(
            location(&disabled),
            "/admin/providers/mock-openai?notice=disabled"
        );
        // At once, on this replica: a model bound only to it is refused in OpenAI's envelope…
        let refused = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("hi")}),
            )
            .await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let error: Value = refused.json().await.unwrap();
        assert!(error["error"]["message"].is_string(), "{error}");
        // …and a model with another deployment goes there.
        assert_eq!(dual().await, "backup-model");
        let (_, page) = body(ops.get("/admin/providers").await).await;
        assert!(page.contains("disabled"));

        let (status, provider) = ops
            .write("POST", "/api/admin/providers/mock-openai/enable", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(provider["enabled"], true);
        assert_eq!(dual().await, "primary-model");
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn connection_tests_make_a_real_call_in_every_protocol_and_are_recorded() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let core = env.store.core().await;
    let ops = Visitor::operator(&env.url(""), &core, "ops@example.com").await;
    let mock = env.mock.addr;

    // The imported provider, with the upstream model of its first route by default.
    let csrf = ops.csrf.clone();
    let tested = ops
        .form(
            "/admin/providers/mock-openai/test",
            &[("csrf", &csrf), ("upstream_model", "")],
        )
        .await;
    assert_eq!(
        location(&tested),
        "/admin/providers/mock-openai?notice=tested"
    );
    let last = env.mock.requests().await.pop().unwrap();
    assert_eq!(last["body"]["model"], "upstream-gpt");
    assert_eq!(last["body"]["messages"].as_array().unwrap().len(), 1);
    let (_, page) = body(ops.get("/admin/providers").await).await;
    assert!(page.contains("OK in "), "{page}");
    assert!(page.contains("upstream-gpt"));

    // Each protocol through its own adapter, against a model the operator names.
    for (name, protocol, base, path) in [
        (
            "t-anthropic",
            "anthropic",
            format!("http://{mock}"),
            "/v1/messages",
        ),
        (
            "t-dashscope",
            "dashscope",
            format!("http://{mock}/api/v1"),
            "/api/v1/services/aigc/text-generation/generation",
        ),
        (
            "t-minimax",
            "minimax",
            format!("http://{mock}/v1"),
            "/v1/text/chatcompletion_v2",
        ),
    ] {
        let (status, _) = ops
            .write(
                "POST",
                "/api/admin/providers",
                json!({"name": name, "protocol": protocol, "region": "local", "base_url": base,
                       "credential": UPSTREAM_CREDENTIAL}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        // No route uses it: the model must be named.
        let (status, answer) = ops
            .write(
                "POST",
                &format!("/api/admin/providers/{name}/test"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer["error"]["field"], "upstream_model");
        let (status, test) = ops
            .write(
                "POST",
                &format!("/api/admin/providers/{name}/test"),
                json!({"upstream_model": "named-model"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(test["ok"], true, "{name}: {test}");
        assert_eq!(test["upstream_model"], "named-model");
        let last = env.mock.requests().await.pop().unwrap();
        assert_eq!(last["path"], path, "{name}");
    }

    // An upstream that cannot be reached: the failure, recorded and listed.
    let (status, _) = ops
        .write(
            "POST",
            "/api/admin/providers",
            json!({"name": "nowhere", "protocol": "openai", "region": "local",
                   "base_url": "http://127.0.0.1:9/v1", "credential": "sk-nowhere-0001"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, test) = ops
        .write(
            "POST",
            "/api/admin/providers/nowhere/test",
            json!({"upstream_model": "m"}),
        )
        .await;
    assert_eq!(test["ok"], false);
    assert_eq!(test["error"], "could not connect to the upstream");
    let (_, provider) = ops.json("/api/admin/providers/nowhere").await;
    assert_eq!(provider["last_test"]["ok"], false);
    let (_, page) = body(ops.get("/admin/providers/nowhere").await).await;
    assert!(page.contains("could not connect to the upstream"), "{page}");

    // Without a credential there is nothing to test, and nothing is recorded.
    let (status, _) = ops
        .write(
            "POST",
            "/api/admin/providers",
            json!({"name": "keyless", "protocol": "openai", "region": "local",
                   "base_url": "http://127.0.0.1:9/v1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let tested = ops
        .form(
            "/admin/providers/keyless/test",
            &[("csrf", &csrf), ("upstream_model", "m")],
        )
        .await;
    let (status, page) = body(tested).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Set a credential before testing"));

    // Each test is an event on its provider, with the operator as actor.
    let events = core.db.events_of(PROVIDER, "mock-openai").await.unwrap();
    let test = events
        .iter()
        .find(|e| e.event_type == "ConnectionTested")
        .unwrap();
    assert!(test.metadata["actor"]
        .as_str()
        .unwrap()
        .starts_with("operator:"));
    assert_eq!(test.payload["ConnectionTested"]["ok"], true);
    let keyless = core.db.events_of(PROVIDER, "keyless").await.unwrap();
    assert!(keyless.iter().all(|e| e.event_type != "ConnectionTested"));
    drop(core);
    env.finish().await;
}

#[tokio::test]
async fn the_health_page_shows_error_rates_and_its_projection_rebuilds_equal() {
    for store in stores().await {
        let env = env(store).await;
        let core = env.store.core().await;
        let ops = Visitor::operator(&env.url(""), &core, "ops@example.com").await;
        for text in ["one", "two", "three"] {
            let ok = env
                .chat(
                    KEY_AUTO,
                    json!({"model": "test-gpt", "messages": user(text)}),
                )
                .await;
            assert_eq!(ok.status(), StatusCode::OK);
        }
        // An upstream 400 is not retried: one failed attempt.
        let failed = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("[mock:status=400] x")}),
            )
            .await;
        assert_eq!(failed.status(), StatusCode::BAD_REQUEST);

        let health = || async {
            let (status, health) = ops.json("/api/admin/health").await;
            assert_eq!(status, StatusCode::OK);
            health
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["provider"] == "mock-openai")
                .cloned()
                .unwrap()
        };
        let counted = eventually(Duration::from_secs(5), || async {
            health().await["last_15_minutes"]["attempts"] == 4
        })
        .await;
        assert!(counted, "{}: {}", env.store.name, health().await);
        let provider = health().await;
        for window in ["last_15_minutes", "last_24_hours"] {
            let w = &provider[window];
            assert_eq!(w["attempts"], 4, "{window}");
            assert_eq!(w["errors"], 1, "{window}");
            assert_eq!(w["error_rate"], 0.25, "{window}");
            assert!(w["average_latency_ms"].as_i64().unwrap() >= 0);
            assert!(
                w["p95_latency_ms"].as_i64().unwrap() >= w["average_latency_ms"].as_i64().unwrap()
            );
            assert_eq!(w["last_error"]["status"], 400, "{window}");
            assert_eq!(w["last_error"]["upstream_model"], "upstream-gpt");
        }
        let (status, page) = body(ops.get("/admin/health").await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("25.0%"), "{page}");
        assert!(page.contains("HTTP 400"));

        let (store, db) = env.finish().await;
        let live = sql::dump(&db, Projection::ProviderHealth).await.unwrap();
        assert!(!live.is_empty());
        sql::rebuild(&db, Projection::ProviderHealth).await.unwrap();
        let rebuilt = sql::dump(&db, Projection::ProviderHealth).await.unwrap();
        assert_eq!(live, rebuilt, "{}", store.name);
        drop(core);
    }
}

//! The catalog and routes from the console: an operator publishes a model and binds it, and
//! tenants call it by its public name at its price; visibility hides a model from the tenants
//! it does not name; a rollout moves a sticky share of keys and is promoted or rolled back; a
//! route change made on one replica is used by another within a second.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::visitor::Visitor;
use common::*;
use modelrouter::server::Running;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::tenant::TenantCommand;
use modelrouter_projections::TailPosition;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ACME_PASSWORD: &str = "correct horse battery staple";

/// Signs an imported tenant in to the portal.
async fn tenant(base: &str, email: &str) -> Visitor {
    let mut visitor = Visitor::new(base);
    let response = visitor
        .http
        .post(visitor.url("/api/portal/login"))
        .json(&json!({"email": email, "password": ACME_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    visitor.csrf = body["csrf_token"].as_str().unwrap().to_string();
    visitor
}

async fn chat_on(base: &str, key: &str, model: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": user("Hello there")}))
        .send()
        .await
        .unwrap()
}

/// The public models `/v1/models` lists for a key.
async fn listed(base: &str, key: &str) -> Vec<String> {
    let body: Value = reqwest::Client::new()
        .get(format!("{base}/v1/models"))
        .bearer_auth(key)
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
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// The upstream model of the newest request the mock received.
async fn last_upstream_model(mock: &Mock) -> String {
    let requests = mock.requests().await;
    requests.last().unwrap()["body"]["model"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Which upstream model serves one call with `key` (calls are made one at a time).
async fn served_by(env: &Env, key: &str, model: &str) -> String {
    let response = chat_on(&env.url(""), key, model).await;
    assert_eq!(response.status(), StatusCode::OK);
    last_upstream_model(&env.mock).await
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

async fn publish_json(operator: &Visitor, name: &str, visibility: Value) {
    let (status, body) = operator
        .write(
            "POST",
            "/api/admin/models",
            json!({"name": name, "display_name": format!("{name} display"),
                   "prices": {"input": 1_000_000, "output": 2_000_000, "cached_input": 500_000},
                   "visibility": visibility}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn bind_json(operator: &Visitor, model: &str, upstream: &str) -> Value {
    let (status, body) = operator
        .write(
            "POST",
            &format!("/api/admin/routes/{model}"),
            json!({"deployments": [{"provider": "mock-openai", "upstream_model": upstream}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn an_operator_publishes_and_binds_a_model_that_tenants_call_at_its_price() {
    for store in stores().await {
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "ops@example.com").await;
        let csrf = operator.csrf.clone();

        // A form with a bad price comes back with the message and what was typed.
        let mut fields = vec![
            ("csrf", csrf.as_str()),
            ("name", "acme-chat"),
            ("display_name", "Acme Chat"),
            ("description", "Our own chat model"),
            ("context_window", "32000"),
            ("max_output_tokens", ""),
            ("input", "three"),
            ("output", "12"),
            ("cached_input", ""),
            ("cache_write", ""),
        ];
        let refused = operator.form("/admin/models", &fields).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = refused.text().await.unwrap();
        assert!(page.contains("Enter the input price"), "{page}");
        assert!(page.contains("value=\"Acme Chat\""));

        fields[6] = ("input", "3");
        let published = operator.form("/admin/models", &fields).await;
        assert_eq!(published.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            location(&published),
            "/admin/models/acme-chat?notice=published"
        );
        let page = operator
            .get("/admin/models/acme-chat?notice=published")
            .await;
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        assert!(page.contains("Bind it to a route") && page.contains("Add price version"));
        let list = operator.get("/admin/models").await.text().await.unwrap();
        assert!(
            list.contains("Acme Chat") && list.contains("32,000"),
            "{list}"
        );
        assert!(list.contains("unrouted"));
        // Published but bound to nothing: no tenant can call it yet.
        let early = env.chat(
            KEY_AUTO,
            json!({"model": "acme-chat", "messages": user("hi")}),
        );
        assert_eq!(early.await.status(), StatusCode::NOT_FOUND);

        // The deployments editor: one filled row, one left empty.
        let bound = operator
            .form(
                "/admin/routes/acme-chat",
                &[
                    ("csrf", csrf.as_str()),
                    ("provider", "mock-openai"),
                    ("upstream_model", "upstream-acme"),
                    ("region", ""),
                    ("weight", "100"),
                    ("priority", "0"),
                    ("provider", ""),
                    ("upstream_model", ""),
                    ("region", ""),
                    ("weight", ""),
                    ("priority", ""),
                    ("max_attempts", "2"),
                    ("retry_rate_limit", "on"),
                    ("retry_server_error", "on"),
                    ("fallback", "on"),
                ],
            )
            .await;
        assert_eq!(bound.status(), StatusCode::SEE_OTHER);
        let routes = operator.get("/admin/routes").await.text().await.unwrap();
        assert!(routes.contains("upstream-acme") && routes.contains("not bound"));
        let page = operator.get("/admin/routes/acme-chat").await;
        let page = page.text().await.unwrap();
        assert!(
            page.contains("mock-openai / upstream-acme (local) · weight 100 · tier 0"),
            "{page}"
        );
        assert!(page.contains("2 attempts, retrying 429, 5xx, with fallback tiers"));

        // A tenant calls it by its public name, and is charged its price: 3 per 1M input
        // tokens and 12 per 1M output tokens are 3 and 12 micro-units a token.
        let acme = tenant(&base, "acme@example.com").await;
        let before = acme.balance().await;
        let response = env
            .chat(
                KEY_AUTO,
                json!({"model": "acme-chat", "messages": user("Hello there")}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["model"], "acme-chat");
        assert_eq!(last_upstream_model(&env.mock).await, "upstream-acme");
        let input = body["usage"]["prompt_tokens"].as_i64().unwrap();
        let output = body["usage"]["completion_tokens"].as_i64().unwrap();
        assert!(input > 0 && output > 0);
        let charged = before - (3 * input + 12 * output);
        assert!(acme.balance_becomes(charged).await, "charged at the price");
        assert!(listed(&base, KEY_AUTO)
            .await
            .contains(&"acme-chat".to_string()));
        let (_, models) = acme.json("/api/portal/models").await;
        let shown = models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "acme-chat")
            .unwrap();
        assert_eq!(shown["display_name"], "Acme Chat");
        assert_eq!(shown["prices"]["input"], 3_000_000);

        // Every change is an event with the operator as actor.
        let (_, session) = operator.json("/api/admin/session").await;
        let actor = format!("operator:{}", session["operator_id"].as_str().unwrap());
        let events = core.db.read_events(TailPosition::default(), 10_000).await;
        let by_operator: Vec<String> = events
            .unwrap()
            .into_iter()
            .filter(|e| e.aggregate_id == "acme-chat")
            .map(|e| {
                assert_eq!(e.metadata["actor"], actor, "{}", e.metadata);
                e.event_type
            })
            .collect();
        assert_eq!(by_operator, ["Published", "BindingChanged"]);

        // Retired, it is gone for tenants; restored, it is back.
        let retire = operator
            .form("/admin/models/acme-chat/retire", &[("csrf", csrf.as_str())])
            .await;
        assert_eq!(retire.status(), StatusCode::SEE_OTHER);
        let gone = env.chat(
            KEY_AUTO,
            json!({"model": "acme-chat", "messages": user("hi")}),
        );
        assert_eq!(gone.await.status(), StatusCode::NOT_FOUND);
        let (status, body) = operator
            .write("POST", "/api/admin/models/acme-chat/restore", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "offered");
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn a_model_hidden_from_a_tenant_does_not_exist_for_it() {
    for store in stores().await {
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "ops@example.com").await;
        publish_json(
            &operator,
            "vip-chat",
            json!({"kind": "restricted", "tenants": ["ACME@example.com"]}),
        )
        .await;
        bind_json(&operator, "vip-chat", "upstream-vip").await;
        let acme_id = tenant_id(&core.db, "acme@example.com").await;
        let (_, model) = operator.json("/api/admin/models/vip-chat").await;
        assert_eq!(
            model["visibility"],
            json!({"kind": "restricted", "tenants": [acme_id], "plans": []})
        );

        // Acme, named, sees and calls it.
        assert!(listed(&base, KEY_AUTO).await.contains(&"vip-chat".into()));
        assert_eq!(
            chat_on(&base, KEY_AUTO, "vip-chat").await.status(),
            StatusCode::OK
        );

        // Another tenant gets exactly what an unknown model gets.
        assert!(!listed(&base, KEY_BROKE).await.contains(&"vip-chat".into()));
        let hidden = chat_on(&base, KEY_BROKE, "vip-chat").await;
        let unknown = chat_on(&base, KEY_BROKE, "no-such-model").await;
        assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let hidden: Value = hidden.json().await.unwrap();
        let unknown: Value = unknown.json().await.unwrap();
        assert_eq!(hidden["error"]["code"], unknown["error"]["code"]);
        assert_eq!(hidden["error"]["type"], unknown["error"]["type"]);
        let one = reqwest::Client::new()
            .get(env.url("/v1/models/vip-chat"))
            .bearer_auth(KEY_BROKE)
            .send()
            .await
            .unwrap();
        assert_eq!(one.status(), StatusCode::NOT_FOUND);
        // …nor on the portal's models page or in key scopes.
        let newcomer = Visitor::sign_up(&base, "newcomer@example.com").await;
        let (_, models) = newcomer.json("/api/portal/models").await;
        assert!(!models.to_string().contains("vip-chat"), "{models}");
        assert!(models.to_string().contains("test-gpt"));
        let (status, body) = newcomer
            .write(
                "POST",
                "/api/portal/keys",
                json!({"name": "k", "scope": {"kind": "fixed", "model": "vip-chat"}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let keys_page = newcomer.get("/portal/keys").await.text().await.unwrap();
        assert!(!keys_page.contains("vip-chat"));

        // Restricted to a plan: Acme (standard plan) loses it; Broke, moved to the plan, gains it.
        let (status, body) = operator
            .write(
                "POST",
                "/api/admin/models/vip-chat/visibility",
                json!({"kind": "restricted", "plans": ["Enterprise"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["visibility"]["plans"], json!(["enterprise"]));
        assert_eq!(
            chat_on(&base, KEY_AUTO, "vip-chat").await.status(),
            StatusCode::NOT_FOUND
        );
        let broke_id = tenant_id(&core.db, "broke@example.com").await;
        let set_plan = TenantCommand::SetPlan {
            plan: "enterprise".into(),
        };
        core.commands
            .tenants
            .execute(&broke_id, set_plan, &Metadata::new(&Actor::Cli))
            .await
            .unwrap();
        let sees = eventually(Duration::from_secs(2), || async {
            listed(&base, KEY_BROKE).await.contains(&"vip-chat".into())
        })
        .await;
        assert!(sees, "a tenant moved to the plan sees the model");

        // A restriction naming nobody, or an unknown tenant, is refused.
        for (visibility, message) in [
            (json!({"kind": "restricted"}), "Name at least one tenant"),
            (
                json!({"kind": "restricted", "tenants": ["ghost@example.com"]}),
                "no tenant 'ghost@example.com'",
            ),
        ] {
            let (status, body) = operator
                .write("POST", "/api/admin/models/vip-chat/visibility", visibility)
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            let text = body["error"]["message"].as_str().unwrap();
            assert!(text.contains(message), "{text}");
        }
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn a_rollout_moves_a_sticky_share_of_keys_until_promoted_or_rolled_back() {
    for store in stores().await {
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "ops@example.com").await;
        publish_json(&operator, "roll-chat", json!({"kind": "everyone"})).await;
        bind_json(&operator, "roll-chat", "upstream-a").await;
        let acme = tenant(&base, "acme@example.com").await;
        let mut keys = Vec::new();
        for i in 0..40 {
            keys.push(
                acme.create_key(&format!("key {i}"), json!({"kind": "auto"}))
                    .await,
            );
        }

        // Without a rollout there is nothing to promote or roll back.
        let (status, _) = operator
            .write(
                "POST",
                "/api/admin/routes/roll-chat/rollout/promote",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let candidate = json!([{"provider": "mock-openai", "upstream_model": "upstream-b"}]);
        let (status, _) = operator
            .write(
                "POST",
                "/api/admin/routes/roll-chat/rollout",
                json!({"candidate": candidate, "percent": 0}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let (status, route) = operator
            .write(
                "POST",
                "/api/admin/routes/roll-chat/rollout",
                json!({"candidate": candidate, "percent": 50}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{route}");
        let rollout_id = route["rollout"]["id"].as_str().unwrap().to_string();
        assert_eq!(route["rollout"]["percent"], 50);

        // Each key lands on the side its hash says, and stays there.
        let mut on_candidate = 0;
        for (key, key_id) in &keys {
            let expected = if modelrouter_domain::route::bucket(&rollout_id, key_id) < 50 {
                on_candidate += 1;
                "upstream-b"
            } else {
                "upstream-a"
            };
            for _ in 0..2 {
                assert_eq!(served_by(&env, key, "roll-chat").await, expected);
            }
        }
        assert!(
            (1..40).contains(&on_candidate),
            "both sides get keys: {on_candidate} of 40 on the candidate"
        );
        // The routing decision is in the event log, on every call.
        let recorded = eventually(Duration::from_secs(3), || async {
            let events = core
                .db
                .read_events(TailPosition::default(), 100_000)
                .await
                .unwrap();
            let arms: Vec<&Value> = events
                .iter()
                .filter(|e| e.aggregate_type == "InferenceCall")
                .map(|e| &e.payload["Completed"]["rollout"])
                .filter(|arm| arm["rollout_id"] == rollout_id.as_str())
                .collect();
            arms.len() == 80
                && arms.iter().filter(|a| a["candidate"] == true).count() == 2 * on_candidate
        })
        .await;
        assert!(recorded, "every call records its rollout arm");

        // The console shows the rollout; raising the share to 100 % moves every key.
        let page = operator
            .get("/admin/routes/roll-chat")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("50 %") && page.contains("Promote candidate"),
            "{page}"
        );
        let percent = operator
            .form(
                "/admin/routes/roll-chat/rollout/percent",
                &[("csrf", operator.csrf.as_str()), ("percent", "100")],
            )
            .await;
        assert_eq!(percent.status(), StatusCode::SEE_OTHER);
        for (key, _) in &keys {
            assert_eq!(served_by(&env, key, "roll-chat").await, "upstream-b");
        }

        // Rolled back, every key uses the binding again.
        let back = operator
            .form(
                "/admin/routes/roll-chat/rollout/rollback",
                &[("csrf", operator.csrf.as_str())],
            )
            .await;
        assert_eq!(back.status(), StatusCode::SEE_OTHER);
        for (key, _) in &keys {
            assert_eq!(served_by(&env, key, "roll-chat").await, "upstream-a");
        }

        // A new rollout, promoted: the candidate is the binding for every key.
        let candidate = json!([{"provider": "mock-openai", "upstream_model": "upstream-c"}]);
        let (status, _) = operator
            .write(
                "POST",
                "/api/admin/routes/roll-chat/rollout",
                json!({"candidate": candidate, "percent": 10}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, route) = operator
            .write(
                "POST",
                "/api/admin/routes/roll-chat/rollout/promote",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(route["rollout"], Value::Null);
        assert_eq!(route["deployments"][0]["upstream_model"], "upstream-c");
        for (key, _) in &keys {
            assert_eq!(served_by(&env, key, "roll-chat").await, "upstream-c");
        }
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn a_route_change_on_one_replica_is_used_by_another_within_a_second() {
    for store in stores().await {
        let env = env(store).await;
        // A second replica on the same store, where the store allows one (PostgreSQL).
        let second = if env.store.url.is_some() {
            Some(Running::start(env.store.settings()).await.unwrap())
        } else {
            None
        };
        let bases: Vec<String> = std::iter::once(env.url(""))
            .chain(second.iter().map(|s| format!("http://{}", s.addr)))
            .collect();
        let core = env.store.core().await;
        let operator = Visitor::operator(&bases[0], &core, "ops@example.com").await;
        for base in &bases {
            assert_eq!(
                chat_on(base, KEY_AUTO, "test-gpt").await.status(),
                StatusCode::OK
            );
            assert_eq!(last_upstream_model(&env.mock).await, "upstream-gpt");
        }

        bind_json(&operator, "test-gpt", "upstream-moved").await;
        for base in &bases {
            let moved = eventually(Duration::from_secs(1), || async {
                chat_on(base, KEY_AUTO, "test-gpt").await.status() == StatusCode::OK
                    && last_upstream_model(&env.mock).await == "upstream-moved"
            })
            .await;
            assert!(moved, "{base}: still on the old binding after 1 s");
        }
        if let Some(second) = second {
            second.stop().await.unwrap();
        }
        drop(core);
        env.finish().await;
    }
}

#[tokio::test]
async fn the_retry_and_fallback_policy_decides_which_attempts_are_made() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let base = env.url("");
    let core = env.store.core().await;
    let operator = Visitor::operator(&base, &core, "ops@example.com").await;
    publish_json(&operator, "policy-chat", json!({"kind": "everyone"})).await;
    let deployments = json!([
        {"provider": "mock-openai", "upstream_model": "upstream-primary", "priority": 0},
        {"provider": "mock-openai", "upstream_model": "upstream-spare", "priority": 1},
    ]);
    let http = reqwest::Client::new();
    // The upstream models tried by one call whose every attempt gets a 503.
    let attempts = |retry: Value| {
        let (operator, http, env, deployments) = (&operator, &http, &env, &deployments);
        async move {
            let (status, body) = operator
                .write(
                    "POST",
                    "/api/admin/routes/policy-chat",
                    json!({"deployments": deployments, "retry": retry}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let cleared = http
                .delete(format!("http://{}/_mock/requests", env.mock.addr))
                .send()
                .await
                .unwrap();
            assert!(cleared.status().is_success());
            let response = env
                .chat(
                    KEY_AUTO,
                    json!({"model": "policy-chat", "messages": user("[mock:status=503] hi")}),
                )
                .await;
            assert!(response.status().is_server_error(), "{}", response.status());
            env.mock
                .requests()
                .await
                .iter()
                .map(|r| r["body"]["model"].as_str().unwrap().to_string())
                .collect::<Vec<String>>()
        }
    };
    let every = json!({"rate_limit": true, "server_error": true, "timeout": true, "connect": true});
    assert_eq!(
        attempts(json!({"max_attempts": 3, "retry_on": every, "fallback": true})).await,
        ["upstream-primary", "upstream-spare", "upstream-primary"]
    );
    assert_eq!(
        attempts(json!({"max_attempts": 3, "retry_on": every, "fallback": false})).await,
        ["upstream-primary", "upstream-primary", "upstream-primary"]
    );
    let no_5xx =
        json!({"rate_limit": true, "server_error": false, "timeout": true, "connect": true});
    assert_eq!(
        attempts(json!({"max_attempts": 3, "retry_on": no_5xx, "fallback": true})).await,
        ["upstream-primary"]
    );
    drop(core);
    env.finish().await;
}

//! The tenant portal over real HTTP, on every configured store: CSRF on forms and JSON writes,
//! session expiry, sign-in lockout, one account per email under simultaneous sign-ups, API keys
//! never signing a person in, key scopes at the gateway, revocation on every replica within a
//! second, tenant isolation through every URL and API id, and the OpenAPI document.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::visitor::{Visitor, PASSWORD};
use common::*;
use modelrouter::server::Running;
use modelrouter_projections::Db;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn chat(base: &str, key: &str, model: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": user("hi")}))
        .send()
        .await
        .unwrap()
        .status()
}

fn with_credit(settings: &mut modelrouter::config::Settings) {
    settings.signup_credit = modelrouter_domain::Money(10_000_000);
}

#[tokio::test]
async fn every_form_and_json_write_needs_the_csrf_token() {
    for store in stores().await {
        let env = env_with(store, 0, with_credit).await;
        let base = env.url("");
        let alice = Visitor::sign_up(&base, "alice@example.com").await;

        // A form without the token, or with another session's, is refused and changes nothing.
        let mallory = Visitor::sign_up(&base, "mallory@example.com").await;
        for token in ["", mallory.csrf.as_str()] {
            let response = alice
                .form(
                    "/portal/keys",
                    &[("csrf", token), ("name", "forged"), ("scope", "auto")],
                )
                .await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{}",
                env.store.name
            );
            assert!(response.text().await.unwrap().contains("Reload the page"));
        }
        let response = alice.form("/portal/logout", &[("csrf", "nope")]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let (_, keys) = alice.json("/api/portal/keys").await;
        assert_eq!(
            keys.as_array().unwrap().len(),
            0,
            "a forged form created a key"
        );

        // JSON writes need the header.
        let response = alice
            .http
            .post(alice.url("/api/portal/keys"))
            .json(&json!({"name": "no header"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf");

        // With the token, the same form works.
        let response = alice
            .form(
                "/portal/keys",
                &[("csrf", &alice.csrf), ("name", "real"), ("scope", "auto")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(response.text().await.unwrap().contains("sk-mr-"));

        // Before sign-in, the forms carry a double-submit token: none, no sign-in.
        let stranger = Visitor::new(&base);
        let response = stranger
            .form(
                "/portal/login",
                &[
                    ("csrf", "x"),
                    ("email", "alice@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let page = stranger.get("/portal/login").await.text().await.unwrap();
        let token = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string();
        let response = stranger
            .form(
                "/portal/login",
                &[
                    ("csrf", &token),
                    ("email", "alice@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/portal");
        let _store = env.finish().await;
    }
}

async fn backdate_sessions(db: &Db, column: &str, seconds_ago: i64) {
    let at = chrono::Utc::now().timestamp() - seconds_ago;
    // Column names are this test's constants.
    let sql = format!("UPDATE portal_sessions SET {column} = $1");
    match db {
        Db::Sqlite(pool) => {
            sqlx::query(&sql).bind(at).execute(pool).await.unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query(&sql).bind(at).execute(pool).await.unwrap();
        }
    }
}

#[tokio::test]
async fn an_expired_or_idle_session_is_signed_out() {
    for store in stores().await {
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let alice = Visitor::sign_up(&base, "alice@example.com").await;
        assert_eq!(alice.get("/portal").await.status(), StatusCode::OK);

        // Past its absolute end (the clock moved on): pages send the visitor to sign in and
        // come back afterwards; the API says 401.
        backdate_sessions(&core.db, "expires_at", 1).await;
        let response = alice.get("/portal/keys").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/portal/login?next=%2Fportal%2Fkeys");
        let (status, body) = alice.json("/api/portal/session").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "signed_out");

        // Idle for longer than the idle timeout (12 h by default).
        let bob = Visitor::sign_up(&base, "bob@example.com").await;
        assert_eq!(bob.get("/portal").await.status(), StatusCode::OK);
        backdate_sessions(&core.db, "last_seen_at", 13 * 3600).await;
        assert_eq!(bob.get("/portal").await.status(), StatusCode::SEE_OTHER);
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn repeated_failed_sign_ins_lock_the_email_with_one_generic_message() {
    for store in stores().await {
        let env = env(store).await;
        let base = env.url("");
        Visitor::sign_up(&base, "alice@example.com").await;
        let login = |email: &'static str, password: &'static str| {
            let base = base.clone();
            async move {
                let response = Visitor::new(&base)
                    .http
                    .post(format!("{base}/api/portal/login"))
                    .json(&json!({"email": email, "password": password}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let retry = response.headers().get("retry-after").cloned();
                let body: Value = response.json().await.unwrap();
                (status, body, retry)
            }
        };
        // Wrong password and unknown email read the same.
        let (status, wrong, _) = login("alice@example.com", "not-her-password-1").await;
        let (_, unknown, _) = login("nobody@example.com", "not-her-password-1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong["error"]["message"], unknown["error"]["message"]);
        assert_eq!(
            wrong["error"]["message"],
            "The email or password is incorrect."
        );

        for _ in 0..3 {
            login("alice@example.com", "not-her-password-1").await;
        }
        // The fifth failure locks the email…
        let (status, body, retry) = login("alice@example.com", "not-her-password-1").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(retry.is_some());
        // …so even the right password is refused while the lock lasts…
        let (status, body, _) = login("alice@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many failed sign-in attempts."));
        // …while another account signs in as usual.
        Visitor::sign_up(&base, "bob@example.com").await;
        let (status, _, _) = login("bob@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::OK);
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn two_simultaneous_sign_ups_with_one_email_make_one_account() {
    for store in stores().await {
        let env = env(store).await;
        let base = env.url("");
        let attempt = |password: &'static str| {
            let base = base.clone();
            async move {
                Visitor::new(&base)
                    .http
                    .post(format!("{base}/api/portal/signup"))
                    .json(&json!({"email": "Twin@Example.com ", "password": password}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let (a, b) = tokio::join!(attempt("violet-harbor-42"), attempt("amber-meadow-77"));
        let mut statuses = [a, b];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "{}",
            env.store.name
        );
        let core = env.store.core().await;
        core.live.catch_up(&core.db).await.unwrap();
        let twins = core
            .live
            .view()
            .tenants
            .values()
            .filter(|t| t.email == "twin@example.com")
            .count();
        assert_eq!(twins, 1);
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn api_keys_never_sign_a_person_in() {
    for store in stores().await {
        let env = env(store).await;
        let http = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap();
        for (name, value) in [
            ("authorization", format!("Bearer {KEY_AUTO}")),
            ("x-api-key", KEY_AUTO.to_string()),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_str(&value).unwrap());
            let page = http
                .get(env.url("/portal"))
                .headers(headers.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), StatusCode::SEE_OTHER);
            let api = http
                .get(env.url("/api/portal/keys"))
                .headers(headers)
                .send()
                .await
                .unwrap();
            assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
        }
        // Nor does a key as the password of its tenant's email.
        let response = http
            .post(env.url("/api/portal/login"))
            .json(&json!({"email": "acme@example.com", "password": KEY_AUTO}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn tenants_cannot_reach_each_others_keys_usage_or_settings() {
    for store in stores().await {
        let env = env_with(store, 0, with_credit).await;
        let base = env.url("");
        let alice = Visitor::sign_up(&base, "alice@example.com").await;
        let bob = Visitor::sign_up(&base, "bob@example.com").await;
        let (alice_key, alice_key_id) = alice
            .create_key("alice-prod", json!({"kind": "auto"}))
            .await;
        assert_eq!(chat(&base, &alice_key, "test-gpt").await, StatusCode::OK);
        let seen = eventually(Duration::from_secs(10), || async {
            alice.json("/api/portal/usage").await.1["total"] == 1
        })
        .await;
        assert!(seen, "alice's call never reached her usage");

        // Bob sees nothing of Alice's through any URL or API id…
        let (_, bob_keys) = bob.json("/api/portal/keys").await;
        assert_eq!(bob_keys, json!([]));
        for path in [
            format!("/api/portal/keys/{alice_key_id}"),
            format!("/portal/keys/{alice_key_id}"),
        ] {
            assert_eq!(
                bob.get(&path).await.status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let (status, _) = bob
            .write(
                "PATCH",
                &format!("/api/portal/keys/{alice_key_id}"),
                json!({"name": "pwned", "scope": {"kind": "fixed", "model": "test-mini"}}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = bob
            .write(
                "POST",
                &format!("/api/portal/keys/{alice_key_id}/revoke"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let response = bob
            .form(
                &format!("/portal/keys/{alice_key_id}/revoke"),
                &[("csrf", &bob.csrf)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = bob
            .form(
                &format!("/portal/keys/{alice_key_id}"),
                &[("csrf", &bob.csrf), ("name", "pwned"), ("scope", "auto")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let (_, usage) = bob
            .json(&format!("/api/portal/usage?key={alice_key_id}"))
            .await;
        assert_eq!(usage["total"], 0);
        let csv = bob
            .get(&format!("/portal/usage/export.csv?key={alice_key_id}"))
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(csv.lines().count(), 1, "only the header: {csv}");
        let (_, dashboard) = bob.json("/api/portal/dashboard").await;
        assert_eq!(dashboard["month_requests"], 0);
        let bob_pages = bob.get("/portal/usage").await.text().await.unwrap();
        assert!(!bob_pages.contains("alice-prod"));

        // …and Alice's key is untouched and still hers.
        let (status, key) = alice
            .json(&format!("/api/portal/keys/{alice_key_id}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(key["name"], "alice-prod");
        assert_eq!(key["status"], "active");
        assert_eq!(key["scope"], json!({"kind": "auto"}));
        assert_eq!(key["requests"], 1);
        assert_eq!(chat(&base, &alice_key, "test-gpt").await, StatusCode::OK);
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn key_scopes_decide_which_models_a_key_reaches() {
    for store in stores().await {
        let env = env_with(store, 0, with_credit).await;
        let base = env.url("");
        let alice = Visitor::sign_up(&base, "alice@example.com").await;
        let (auto, _) = alice.create_key("auto", json!({"kind": "auto"})).await;
        let (set, set_id) = alice
            .create_key("set", json!({"kind": "models", "models": ["test-gpt"]}))
            .await;
        let (fixed, _) = alice
            .create_key("fixed", json!({"kind": "fixed", "model": "test-mini"}))
            .await;
        assert_eq!(chat(&base, &auto, "test-mini").await, StatusCode::OK);
        assert_eq!(chat(&base, &set, "test-gpt").await, StatusCode::OK);
        assert_eq!(chat(&base, &set, "test-mini").await, StatusCode::FORBIDDEN);
        assert_eq!(chat(&base, &fixed, "test-mini").await, StatusCode::OK);
        assert_eq!(chat(&base, &fixed, "test-gpt").await, StatusCode::FORBIDDEN);

        // A scope naming a model that does not exist is refused with the field.
        let (status, body) = alice
            .write(
                "POST",
                "/api/portal/keys",
                json!({"name": "x", "scope": {"kind": "fixed", "model": "no-such-model"}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["field"], "scope");

        // Widening the set takes effect at once.
        let (status, _) = alice
            .write(
                "PATCH",
                &format!("/api/portal/keys/{set_id}"),
                json!({"scope": {"kind": "models", "models": ["test-gpt", "test-mini"]}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(chat(&base, &set, "test-mini").await, StatusCode::OK);

        // An automatic key reaches a model published after it was made.
        let core = env.store.core().await;
        import_text(
            &core,
            r#"
[[models]]
name = "test-late"
display_name = "Late"
input_price = 1
output_price = 1
cached_input_price = 1

[[routes]]
model = "test-late"
deployments = [ { provider = "mock-openai", upstream_model = "late", weight = 100, priority = 0 } ]
"#,
        )
        .await;
        let reached = eventually(Duration::from_secs(5), || async {
            chat(&base, &auto, "test-late").await == StatusCode::OK
        })
        .await;
        assert!(reached, "the automatic key did not reach the new model");
        assert_eq!(chat(&base, &set, "test-late").await, StatusCode::FORBIDDEN);
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn a_revoked_key_stops_on_every_replica_within_a_second() {
    for store in stores().await {
        let env = env_with(store, 0, with_credit).await;
        // A second replica on the same store, where the store allows one (PostgreSQL).
        let second = if env.store.url.is_some() {
            let mut settings = env.store.settings();
            with_credit(&mut settings);
            Some(Running::start(settings).await.unwrap())
        } else {
            None
        };
        let bases: Vec<String> = std::iter::once(env.url(""))
            .chain(second.iter().map(|s| format!("http://{}", s.addr)))
            .collect();
        let alice = Visitor::sign_up(&bases[0], "alice@example.com").await;
        let (key, key_id) = alice.create_key("doomed", json!({"kind": "auto"})).await;
        for base in &bases {
            let works = eventually(Duration::from_secs(5), || async {
                chat(base, &key, "test-gpt").await == StatusCode::OK
            })
            .await;
            assert!(works, "{base}: the new key never worked");
        }

        let (status, body) = alice
            .write(
                "POST",
                &format!("/api/portal/keys/{key_id}/revoke"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "revoked");
        for base in &bases {
            let refused = eventually(Duration::from_secs(1), || async {
                chat(base, &key, "test-gpt").await == StatusCode::UNAUTHORIZED
            })
            .await;
            assert!(refused, "{base}: still served a revoked key after 1 s");
        }
        // Revoked keys stay listed, as revoked, and can no longer change.
        let (status, body) = alice
            .write(
                "PATCH",
                &format!("/api/portal/keys/{key_id}"),
                json!({"name": "again"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        if let Some(second) = second {
            second.stop().await.unwrap();
        }
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions() {
    for store in stores().await {
        let env = env(store).await;
        let base = env.url("");
        let laptop = Visitor::sign_up(&base, "alice@example.com").await;
        let phone = Visitor::new(&base);
        let response = phone
            .http
            .post(phone.url("/api/portal/login"))
            .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        let (status, body) = laptop
            .write(
                "POST",
                "/api/portal/password",
                json!({"current_password": "wrong-password-1", "new_password": "amber-meadow-77"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["field"], "current_password");
        let (status, body) = laptop
            .write(
                "POST",
                "/api/portal/password",
                json!({"current_password": PASSWORD, "new_password": "short"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["field"], "password");

        let (status, _) = laptop
            .write(
                "POST",
                "/api/portal/password",
                json!({"current_password": PASSWORD, "new_password": "amber-meadow-77"}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(laptop.json("/api/portal/session").await.0, StatusCode::OK);
        assert_eq!(
            phone.json("/api/portal/session").await.0,
            StatusCode::UNAUTHORIZED
        );
        let login = |password: &'static str| {
            let base = base.clone();
            async move {
                reqwest::Client::new()
                    .post(format!("{base}/api/portal/login"))
                    .json(&json!({"email": "alice@example.com", "password": password}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(login(PASSWORD).await, StatusCode::UNAUTHORIZED);
        assert_eq!(login("amber-meadow-77").await, StatusCode::OK);
        let _store = env.finish().await;
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_portal_api() {
    let store = stores().await.remove(0);
    let env = env(store).await;
    let document: Value = reqwest::get(env.url("/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let portal: Vec<(String, String)> = documented
        .iter()
        .filter(|(_, path)| path.starts_with("/api/portal/"))
        .cloned()
        .collect();
    let expected = [
        ("GET", "/api/portal/dashboard"),
        ("GET", "/api/portal/keys"),
        ("GET", "/api/portal/keys/{id}"),
        ("GET", "/api/portal/mail"),
        ("GET", "/api/portal/models"),
        ("GET", "/api/portal/receipts/verify"),
        ("GET", "/api/portal/recharge/orders"),
        ("GET", "/api/portal/recharge/orders/{id}"),
        ("GET", "/api/portal/session"),
        ("GET", "/api/portal/statements"),
        ("GET", "/api/portal/usage"),
        ("PATCH", "/api/portal/keys/{id}"),
        ("POST", "/api/portal/keys"),
        ("POST", "/api/portal/keys/{id}/revoke"),
        ("POST", "/api/portal/login"),
        ("POST", "/api/portal/logout"),
        ("POST", "/api/portal/password"),
        ("POST", "/api/portal/recharge/orders"),
        ("POST", "/api/portal/recharge/redeem"),
        ("POST", "/api/portal/signup"),
        ("POST", "/api/portal/verify-email"),
        ("POST", "/api/portal/verify-email/resend"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(portal, expected);
    for (method, path) in &documented {
        assert!(
            ["/api/portal/", "/api/admin/", "/api/agent/"]
                .iter()
                .any(|prefix| path.starts_with(prefix)),
            "{method} {path} is under no site's API"
        );
    }

    // Every documented operation — the portal's, the console's and the agents' — is served:
    // without a session it answers 401 (or, for the sign-up and sign-in bodies, 4xx about the
    // body), never 404 or 405.
    let http = reqwest::Client::new();
    for (method, path) in &documented {
        let url = env.url(&path.replace("{id}", "some-id"));
        let request = match method.as_str() {
            "GET" => http.get(url),
            "PATCH" => http.patch(url).json(&json!({})),
            _ => http.post(url).json(&json!({})),
        };
        let status = request.send().await.unwrap().status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status}"
        );
        assert!(status.is_client_error(), "{method} {path}: {status}");
    }
    let _store = env.finish().await;
}

//! A browser for HTTP tests of the portal: its own cookie jar, no automatic redirects.
#![allow(dead_code, clippy::unwrap_used)]

use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};

pub const PASSWORD: &str = "violet-harbor-42";

/// A browser: its own cookie jar, no automatic redirects (tests look at them).
pub struct Visitor {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: String,
}

impl Visitor {
    pub fn new(base: &str) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            csrf: String::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A tenant who signs up and verifies its email (with the link from the portal's outbox),
    /// so the sign-up credit, if any, is on its balance.
    pub async fn sign_up(base: &str, email: &str) -> Visitor {
        let visitor = Visitor::sign_up_unverified(base, email).await;
        visitor.verify_email().await;
        visitor
    }

    /// Follows the newest verification link in the tenant's outbox (the test settings show
    /// the outbox in the portal); returns the verification's answer.
    pub async fn verify_email(&self) -> Value {
        let (status, mail) = self.json("/api/portal/mail").await;
        assert_eq!(status, StatusCode::OK, "{mail}");
        let link = mail[0]["action_url"].as_str().expect("a verification mail");
        let token = link.split("token=").nth(1).unwrap();
        let response = self
            .http
            .post(self.url("/api/portal/verify-email"))
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// A tenant who signs up and has not verified its email yet.
    pub async fn sign_up_unverified(base: &str, email: &str) -> Visitor {
        let mut visitor = Visitor::new(base);
        let response = visitor
            .http
            .post(visitor.url("/api/portal/signup"))
            .json(&json!({"email": email, "password": PASSWORD, "name": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        visitor.csrf = body["csrf_token"].as_str().unwrap().to_string();
        visitor
    }

    /// Creates an operator in the store and signs it in to the console (its own cookie).
    pub async fn operator(base: &str, core: &modelrouter::server::Core, email: &str) -> Visitor {
        use modelrouter_domain::operator::OperatorRole;
        Visitor::operator_as(base, core, email, OperatorRole::Admin).await
    }

    /// An operator of `role`, created and signed in.
    pub async fn operator_as(
        base: &str,
        core: &modelrouter::server::Core,
        email: &str,
        role: modelrouter_domain::operator::OperatorRole,
    ) -> Visitor {
        modelrouter::admin::create_operator(
            &core.commands,
            email,
            role,
            PASSWORD,
            &modelrouter_domain::metadata::Actor::Cli,
        )
        .await
        .unwrap();
        let mut visitor = Visitor::new(base);
        let response = visitor
            .http
            .post(visitor.url("/api/admin/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "the operator signs in");
        let body: Value = response.json().await.unwrap();
        visitor.csrf = body["csrf_token"].as_str().unwrap().to_string();
        visitor
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A JSON write with the session's CSRF header.
    pub async fn write(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let request = match method {
            "PATCH" => self.http.patch(self.url(path)),
            _ => self.http.post(self.url(path)),
        };
        let response = request
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_key(&self, name: &str, scope: Value) -> (String, String) {
        let (status, body) = self
            .write(
                "POST",
                "/api/portal/keys",
                json!({"name": name, "scope": scope}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["key"].as_str().unwrap().to_string(),
            body["id"].as_str().unwrap().to_string(),
        )
    }

    /// The balance the dashboard shows, micro-units.
    pub async fn balance(&self) -> i64 {
        let (_, dashboard) = self.json("/api/portal/dashboard").await;
        dashboard["balance"].as_i64().unwrap()
    }

    /// Whether the balance reaches `expected` within five seconds (it settles asynchronously).
    pub async fn balance_becomes(&self, expected: i64) -> bool {
        super::eventually(std::time::Duration::from_secs(5), || async {
            self.balance().await == expected
        })
        .await
    }
}

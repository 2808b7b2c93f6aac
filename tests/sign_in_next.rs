//! `next=` after sign-in, on every site for people (the portal, the console, the agent portal):
//! a `next` that carries CR, LF or NUL — which no `Location` header may hold — is ignored for
//! the site's home page instead of failing the signed-in visitor with a 500.
#![allow(clippy::unwrap_used)]

mod common;

use common::visitor::{Visitor, PASSWORD};
use common::*;
use modelrouter_domain::agent::AgentCommand;
use modelrouter_domain::metadata::{Actor, Metadata};
use reqwest::StatusCode;

/// `next` values (after the site's home) that must never reach a `Location` header: CR/LF, LF,
/// NUL, right after the home, in a path below it and in its query.
const HOSTILE: [&str; 5] = [
    "%0d%0aSet-Cookie:x",
    "/%0d%0aSet-Cookie:x",
    "/keys%0aX:y",
    "?q=%00",
    "/%00",
];

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The pre-sign-in CSRF token of a sign-in page (its double-submit cookie is now in the jar).
async fn form_token(visitor: &Visitor, page: &str) -> String {
    let html = visitor.get(page).await.text().await.unwrap();
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_next_with_control_characters_is_ignored_after_sign_in_on_every_site() {
    for store in stores().await {
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        Visitor::sign_up(&base, "tenant@example.com").await;
        modelrouter::admin::create_operator(
            &core.commands,
            "ops@example.com",
            modelrouter_domain::operator::OperatorRole::Admin,
            PASSWORD,
            &Actor::Cli,
        )
        .await
        .unwrap();
        let agent_id = uuid::Uuid::new_v4().to_string();
        assert!(modelrouter::store::reserve_email(
            &core.db,
            "agent@example.com",
            modelrouter::store::LoginKind::Agent,
            &agent_id
        )
        .await
        .unwrap());
        let register = AgentCommand::Register {
            email: "agent@example.com".into(),
            name: "Agent".into(),
            password_hash: modelrouter::crypto::hash_password(PASSWORD).unwrap(),
            commission_bps: 1000,
            referral_code: "AGENT-NEXT".into(),
            temporary: false,
            expires_at: None,
        };
        core.commands
            .agents
            .execute(&agent_id, register, &Metadata::new(&Actor::Cli))
            .await
            .unwrap();

        let sites = [
            ("/portal", "tenant@example.com"),
            ("/admin", "ops@example.com"),
            ("/agent", "agent@example.com"),
        ];
        for (home, email) in sites {
            for hostile in HOSTILE {
                let visitor = Visitor::new(&base);
                let login = format!("{home}/login?next={home}{hostile}");
                let token = form_token(&visitor, &login).await;
                // The form posts `next` as the page received it, decoded.
                let next = format!("{home}{}", percent_decode(hostile));
                let response = visitor
                    .form(
                        &format!("{home}/login"),
                        &[
                            ("csrf", token.as_str()),
                            ("email", email),
                            ("password", PASSWORD),
                            ("next", next.as_str()),
                        ],
                    )
                    .await;
                assert_eq!(
                    response.status(),
                    StatusCode::SEE_OTHER,
                    "{}: {home} {hostile}",
                    env.store.name
                );
                assert_eq!(location(&response), home, "{}: {hostile}", env.store.name);
                assert!(
                    response.headers().get("x").is_none() && response.headers().get("y").is_none()
                );

                // Signed in now, the sign-in page itself sends the visitor on: home as well.
                let response = visitor.get(&login).await;
                assert_eq!(response.status(), StatusCode::SEE_OTHER, "{home} {hostile}");
                assert_eq!(location(&response), home);
            }
        }
        env.finish().await;
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

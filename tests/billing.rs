//! Money through real HTTP on every configured store: calls are charged at the price version in
//! effect when they start, and price changes never re-price past calls.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use modelrouter_projections::sql::{self, usage, Projection};
use serde_json::json;

fn reprice(input: i64, output: i64, effective_at: Option<&str>) -> String {
    let effective = effective_at
        .map(|at| format!("price_effective_at = \"{at}\""))
        .unwrap_or_default();
    format!(
        r#"
[[models]]
name = "test-gpt"
display_name = "Test GPT"
input_price = {input}
output_price = {output}
cached_input_price = 500_000
{effective}
"#
    )
}

#[tokio::test]
async fn calls_are_charged_at_the_price_version_in_effect_when_they_start() {
    for store in stores().await {
        let env = env(store).await;
        let body = json!({"model": "test-gpt", "messages": user("[mock:words=20] price me")});
        assert_eq!(env.chat(KEY_AUTO, body.clone()).await.status(), 200);

        // A change announced for tomorrow leaves today's calls at version 1…
        let core = env.store.core().await;
        let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
        import_text(&core, &reprice(4_000_000, 16_000_000, Some(&tomorrow))).await;
        assert_eq!(env.chat(KEY_AUTO, body.clone()).await.status(), 200);
        // …while one effective now (version 3) doubles the price of the calls after it. The
        // replica learns of it through the log: call until a call is charged at version 3.
        import_text(&core, &reprice(4_000_000, 16_000_000, None)).await;
        let newest_version = || async {
            sql::catch_up(&core.db, Projection::Usage, 1000)
                .await
                .unwrap();
            let mut calls = usage::calls(&core.db, None, 100).await.unwrap();
            calls.sort_by(|a, b| a.started_at.cmp(&b.started_at));
            calls.last().map(|c| c.price_version)
        };
        let repriced = eventually(Duration::from_secs(5), || async {
            assert_eq!(env.chat(KEY_AUTO, body.clone()).await.status(), 200);
            eventually(Duration::from_secs(2), || async {
                newest_version().await.is_some_and(|v| v != 0)
            })
            .await;
            newest_version().await == Some(3)
        })
        .await;
        assert!(repriced, "the new price never reached the replica");
        drop(core);

        let (_store, db) = env.finish().await;
        let mut calls = usage::calls(&db, None, 100).await.unwrap();
        calls.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        let versions: Vec<i64> = calls.iter().map(|c| c.price_version).collect();
        assert_eq!(versions[..2], [1, 1], "{calls:?}");
        assert_eq!(versions.last(), Some(&3));
        assert!(versions.iter().all(|v| *v == 1 || *v == 3), "{versions:?}");
        // The same request costs the same at one version and twice that at the doubled one;
        // the earlier calls keep what they were charged.
        let last = calls.last().unwrap();
        assert!(calls[0].cost > 0);
        assert_eq!(calls[0].cost, calls[1].cost);
        assert_eq!(last.cost, 2 * calls[0].cost);
    }
}

//! Amounts past the stated maximums (`Money::MAX_AMOUNT`, `Money::MAX_BALANCE`) are refused at
//! every entry point with nothing stored, and an overflowing event that an older version did
//! store is left out of the balances, reported by `/health/ready` and the console, and holds
//! back no other tenant — on every configured store.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::visitor::Visitor;
use common::*;
use modelrouter_projections::{on_db, Db};
use serde_json::{json, Value};

const ABSURD: &str = "9223372036854775807";

async fn event_count(db: &Db) -> i64 {
    on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap())
}

#[tokio::test]
async fn an_absurd_amount_is_refused_at_every_entry_point_and_nothing_is_stored() {
    for store in stores().await {
        let name = store.name;
        let env = env(store).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "finance@example.com").await;
        let acme = tenant_id(&core.db, "acme@example.com").await;
        let before = event_count(&core.db).await;

        // The console's adjust form: the form's error, the typed amount kept.
        let response = operator
            .form(
                &format!("/admin/tenants/{acme}/adjust"),
                &[
                    ("csrf", &operator.csrf),
                    ("amount", "9223372036854.775807"),
                    ("reason", "fat finger"),
                ],
            )
            .await;
        assert_eq!(response.status(), 422, "{name}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("Must be at most 1000000000.000000 in size"),
            "{name}: {page}"
        );
        // Its JSON twin.
        let (status, body) = operator
            .write(
                "POST",
                &format!("/api/admin/tenants/{acme}/adjust"),
                json!({"amount": i64::MAX, "reason": "fat finger"}),
            )
            .await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(body["error"]["field"], "amount");
        // Prepaid codes and prices in the console.
        let (status, body) = operator
            .write(
                "POST",
                "/api/admin/vouchers",
                json!({"amount": i64::MAX, "count": 1}),
            )
            .await;
        assert_eq!(status, 422, "{name}: {body}");
        let (status, body) = operator
            .write(
                "POST",
                "/api/admin/models/test-gpt/prices",
                json!({"input": i64::MAX, "output": 1, "cached_input": 1}),
            )
            .await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(body["error"]["field"], "input_price", "{body}");
        // A tenant's order.
        let alice = Visitor::sign_up(&base, "alice@example.com").await;
        let (status, body) = alice
            .write(
                "POST",
                "/api/portal/recharge/orders",
                json!({"amount": i64::MAX, "method": "sandbox"}),
            )
            .await;
        assert!(matches!(status.as_u16(), 400 | 422), "{name}: {body}");
        let after_web = event_count(&core.db).await;
        drop(core);
        let (_store, db) = env.finish().await;

        // The command line: a message and a non-zero exit.
        let (code, out, err) = cli(
            &_store,
            &[
                "ledger",
                "adjust",
                "--tenant",
                &acme,
                "--amount",
                ABSURD,
                "--reason",
                "fat finger",
                "--operator",
                "finance@example.com",
            ],
        )
        .await;
        assert_ne!(code, 0, "{name}: {out}");
        assert!(
            err.contains("invalid amount: must be at most 1000000000.000000 in size"),
            "{name}: {err}"
        );
        let (code, _, err) = cli(
            &_store,
            &[
                "vouchers",
                "issue",
                "--amount",
                ABSURD,
                "--operator",
                "finance@example.com",
            ],
        )
        .await;
        assert_ne!(code, 0, "{name}");
        assert!(err.contains("must be at most"), "{name}: {err}");
        let file = _store.dir.path().join("absurd.toml");
        std::fs::write(
            &file,
            "[[models]]\nname = \"absurd\"\ndisplay_name = \"Absurd\"\n\
             input_price = 9223372036854775807\noutput_price = 1\ncached_input_price = 1\n",
        )
        .unwrap();
        let (code, _, err) = cli(&_store, &["import", file.to_str().unwrap()]).await;
        assert_ne!(code, 0, "{name}");
        assert!(err.contains("must be at most"), "{name}: {err}");

        // Nothing of it was stored (alice's sign-up is the only new thing).
        assert_eq!(event_count(&db).await, after_web, "{name}");
        assert!(after_web > before);
        let (code, out, _) = cli(&_store, &["ledger", "verify", "--all"]).await;
        assert_eq!(code, 0, "{name}: {out}");
    }
}

/// Stores an Account adjustment as a version before the limits did: straight into the log.
async fn store_old_adjustment(db: &Db, tenant: &str, amount: i64) -> i64 {
    let sequence: i64 = on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COALESCE(MAX(sequence), 0) + 1 FROM events
          WHERE aggregate_type = 'Account' AND aggregate_id = $1",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await
    .unwrap());
    let payload = json!({"Adjusted": {"amount": amount, "reason": "fat finger"}});
    let metadata = json!({"actor": "operator:old-version"});
    let insert = "INSERT INTO events
         (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Account', $1, $2, 'Adjusted', '1', $3, $4)";
    match db {
        Db::Sqlite(pool) => sqlx::query(insert)
            .bind(tenant)
            .bind(sequence)
            .bind(payload.to_string())
            .bind(metadata.to_string())
            .execute(pool)
            .await
            .map(|_| ()),
        Db::Postgres(pool) => sqlx::query(insert)
            .bind(tenant)
            .bind(sequence)
            .bind(sqlx::types::Json(payload))
            .bind(sqlx::types::Json(metadata))
            .execute(pool)
            .await
            .map(|_| ()),
    }
    .unwrap();
    on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT global_position FROM events
          WHERE aggregate_type = 'Account' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(tenant)
    .bind(sequence)
    .fetch_one(pool)
    .await
    .unwrap())
}

async fn ready(env: &Env) -> (u16, Value) {
    let response = reqwest::get(env.url("/health/ready")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_overflowing_event_already_stored_is_reported_and_holds_back_no_other_tenant() {
    for store in stores().await {
        let name = store.name;
        let env = env_with(store, 0, |settings| settings.payments.sandbox = true).await;
        let base = env.url("");
        let core = env.store.core().await;
        let operator = Visitor::operator(&base, &core, "ops@example.com").await;
        let acme = tenant_id(&core.db, "acme@example.com").await;
        assert_eq!(ready(&env).await.0, 200, "{name}");

        let position = store_old_adjustment(&core.db, &acme, i64::MAX).await;
        // The balances projection leaves the event out and reports it; readiness says so.
        let reported = eventually(Duration::from_secs(10), || async {
            ready(&env).await.0 == 503
        })
        .await;
        assert!(reported, "{name}: ready never reported the bad event");
        let (_, body) = ready(&env).await;
        let reason = body["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!(
                "projection balances could not apply the event at position {position}"
            )),
            "{name}: {reason}"
        );
        assert!(
            reason.contains("beyond the largest single amount"),
            "{reason}"
        );
        assert_eq!(
            body["projection_failures"][0]["aggregate_id"],
            acme.as_str()
        );

        // Everyone else goes on: a new tenant tops up and sees it, calls are served and
        // charged, and Acme's balance is what it was (the event is left out).
        let carol = Visitor::sign_up(&base, "carol@example.com").await;
        let (status, placed) = carol
            .write(
                "POST",
                "/api/portal/recharge/orders",
                json!({"amount": 25_000_000, "method": "sandbox"}),
            )
            .await;
        assert_eq!(status, 201, "{name}: {placed}");
        let paid = carol
            .form(
                placed["pay_url"].as_str().unwrap(),
                &[("csrf", &carol.csrf), ("outcome", "pay")],
            )
            .await;
        assert_eq!(paid.status(), 303, "{name}");
        assert_eq!(carol.balance().await, 25_000_000, "{name}");
        let (status, dashboard) = carol.json("/api/portal/dashboard").await;
        assert_eq!(status, 200, "{name}: {dashboard}");
        let response = env
            .chat(
                KEY_AUTO,
                json!({"model": "test-gpt", "messages": user("still served")}),
            )
            .await;
        assert_eq!(response.status(), 200, "{name}");
        let (status, tenant) = operator.json(&format!("/api/admin/tenants/{acme}")).await;
        assert_eq!(status, 200, "{name}: {tenant}");
        assert_eq!(tenant["balance"]["balance"], 100_000_000, "{name}");

        // The console shows the failure on its health page, with a way to acknowledge it.
        let page = operator.get("/admin/health").await.text().await.unwrap();
        assert!(
            page.contains(&format!("could not apply the event at position {position}")),
            "{name}: {page}"
        );
        let (status, failures) = operator.json("/api/admin/health/failures").await;
        assert_eq!(status, 200);
        assert_eq!(failures[0]["position"], position, "{failures}");
        assert!(failures[0]["acknowledged_at"].is_null());

        // Finance's replay names the event instead of summing it.
        let check = modelrouter::ledger::check(&core.db, &acme).await;
        let error = check.unwrap_err().to_string();
        assert!(
            error.contains(&format!("position {position}")) && error.contains("beyond"),
            "{name}: {error}"
        );

        // Acknowledged, the replica is ready again; the failure stays listed.
        let acknowledged = operator
            .form(
                "/admin/health/failures/acknowledge",
                &[
                    ("csrf", &operator.csrf),
                    ("projection", "balances"),
                    ("position", &position.to_string()),
                ],
            )
            .await;
        assert_eq!(acknowledged.status(), 303, "{name}");
        assert_eq!(ready(&env).await.0, 200, "{name}");
        let (_, failures) = operator.json("/api/admin/health/failures").await;
        assert!(failures[0]["acknowledged_by"]
            .as_str()
            .unwrap()
            .starts_with("operator:"));
        drop(core);
        let (_store, db) = env.finish().await;

        // A rebuild replays everything else and lists the event it still leaves out; the
        // rebuilt table equals the incrementally built one.
        let before = modelrouter_projections::sql::dump(
            &db,
            modelrouter_projections::sql::Projection::Balances,
        )
        .await
        .unwrap();
        let (code, out, err) = cli(&_store, &["projections", "rebuild", "balances"]).await;
        assert!(out.contains("rebuilt balances"), "{name}: {out}{err}");
        assert_eq!(code, 0, "{name}: acknowledged failures are not news: {err}");
        let after = modelrouter_projections::sql::dump(
            &db,
            modelrouter_projections::sql::Projection::Balances,
        )
        .await
        .unwrap();
        assert_eq!(before, after, "{name}");
        let (code, out, _) = cli(&_store, &["projections", "failures"]).await;
        assert_eq!(code, 0);
        assert!(out.contains(&format!("position {position}")), "{out}");
        assert!(out.contains("acknowledged by operator:"), "{out}");
    }
}

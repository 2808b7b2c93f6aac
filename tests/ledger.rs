//! Finance's ledger tools against real traffic, on every configured store: the replay agrees
//! with the balances read model and the Account aggregate to the micro-unit, a tampered read
//! model is caught by field, and the `modelrouter ledger` commands exit accordingly.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use modelrouter::ledger::{self, Against, Difference, Field, LineKind};
use modelrouter_domain::account::AccountCommand;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::Money;
use modelrouter_projections::sql::balances;
use modelrouter_projections::{on_db, Db};
use serde_json::{json, Value};

async fn execute(db: &Db, sql: &str, tenant: &str) {
    let affected = on_db!(db, pool => sqlx::query(sql).bind(tenant).execute(pool).await.unwrap().rows_affected());
    assert_eq!(affected, 1, "{sql}");
}

/// Calls on both tenants, settled every 50 ms on small leases so the accounts see many grants,
/// settlements and releases; then an operator's adjustment the projection has not seen yet.
async fn traffic(store: Store) -> (Store, Db) {
    let env = env_with(store, 60_000, |s| {
        s.settle_every = std::time::Duration::from_millis(50);
        s.lease_chunk = Money(50_000);
    })
    .await;
    for i in 0..10 {
        let (key, model) = match i % 3 {
            0 => (KEY_FIXED, "test-mini"),
            _ => (KEY_AUTO, "test-gpt"),
        };
        let response = env
            .chat(
                key,
                json!({"model": model, "stream": i % 2 == 0, "messages": user(&format!("ledger call {i}"))}),
            )
            .await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    // The broke tenant can afford small calls only: some pass, then 402.
    let mut broke_ok = 0;
    for i in 0..6 {
        let response = env
            .chat(
                KEY_BROKE,
                json!({"model": "test-gpt", "max_tokens": 1000, "messages": user(&format!("small {i}"))}),
            )
            .await;
        assert!(matches!(response.status().as_u16(), 200 | 402));
        broke_ok += usize::from(response.status() == 200);
    }
    assert!(broke_ok > 0);
    let (_store, db) = env.finish().await;
    let acme = tenant_id(&db, "acme@example.com").await;
    let core = _store.core().await;
    core.commands
        .accounts
        .execute(
            &acme,
            AccountCommand::Adjust {
                amount: Money(-1_234_567),
                reason: "refund reversal".into(),
            },
            &Metadata::new(&Actor::Operator("op-finance".into())),
        )
        .await
        .unwrap();
    (_store, db)
}

#[tokio::test]
async fn replay_matches_the_read_model_and_the_aggregate_after_real_traffic() {
    for store in stores().await {
        let (_store, db) = traffic(store).await;
        let name = _store.name;
        let tenants = ledger::tenants(&db).await.unwrap();
        assert_eq!(tenants.len(), 2, "{name}: {tenants:?}");
        for tenant in &tenants {
            // The adjustment is not in the read model yet: check catches it up, not reports it.
            let check = ledger::check(&db, tenant).await.unwrap();
            assert!(check.is_clean(), "{name}: {:?}", check.differences);
            let statement = &check.statement;
            assert_eq!(
                statement.balance.micros(),
                statement.credited.micros() + statement.adjusted.micros()
                    - statement.charged.micros(),
                "{name}"
            );
            let row = balances::balance_of(&db, tenant).await.unwrap().unwrap();
            assert_eq!(statement.balance.micros(), row.balance, "{name}");
            assert_eq!(statement.charged.micros(), row.settled, "{name}");
            assert_eq!(statement.calls as i64, row.calls, "{name}");
            assert_eq!(statement.outstanding_allowance, Money::ZERO, "released");
            assert!(statement.charged.is_positive(), "{name}");
            let last = statement.lines.last().unwrap();
            assert_eq!(last.balance_after, statement.balance);
        }

        let acme = tenant_id(&db, "acme@example.com").await;
        let statement = ledger::check(&db, &acme).await.unwrap().statement;
        assert_eq!(statement.calls, 10, "{name}");
        assert_eq!(statement.credited, Money(100_000_000));
        assert_eq!(statement.adjusted, Money(-1_234_567));
        let count =
            |pick: fn(&LineKind) -> bool| statement.lines.iter().filter(|l| pick(&l.kind)).count();
        assert!(count(|k| matches!(k, LineKind::AllowanceGranted { .. })) >= 1);
        assert!(
            count(|k| matches!(k, LineKind::Charge { .. })) >= 2,
            "{name}"
        );
        assert!(count(|k| matches!(k, LineKind::AllowanceReleased { .. })) >= 1);
        let adjustment = statement.lines.last().unwrap();
        assert_eq!(adjustment.actor.as_deref(), Some("operator:op-finance"));
        assert_eq!(adjustment.amount, Money(-1_234_567));
        let positions: Vec<i64> = statement.lines.iter().map(|l| l.position).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{name}");

        // Tamper with the read model: exactly that difference is reported.
        execute(
            &db,
            "UPDATE balances SET balance = balance + 1 WHERE tenant_id = $1",
            &acme,
        )
        .await;
        let check = ledger::check(&db, &acme).await.unwrap();
        assert_eq!(
            check.differences,
            vec![Difference::Field {
                against: Against::ReadModel,
                field: Field::Balance,
                replayed: statement.balance.micros(),
                found: statement.balance.micros() + 1,
            }],
            "{name}"
        );
        assert!(!check.is_clean());
    }
}

#[tokio::test]
async fn the_ledger_commands_exit_zero_on_a_clean_store_and_non_zero_on_a_tampered_one() {
    for store in stores().await {
        let (_store, db) = traffic(store).await;
        let name = _store.name;
        let acme = tenant_id(&db, "acme@example.com").await;

        let (code, out, err) = cli(&_store, &["ledger", "verify", "--all"]).await;
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert_eq!(out.lines().filter(|l| l.starts_with("OK ")).count(), 2);
        assert!(out.contains("(acme@example.com)"), "{out}");
        assert!(out.contains("2 tenant(s) checked: 2 OK, 0 with differences"));

        let (code, out, err) = cli(
            &_store,
            &["ledger", "replay", "--tenant", "ACME@example.com"],
        )
        .await;
        assert_eq!(code, 0, "{name}: {out}{err}");
        let row = balances::balance_of(&db, &acme).await.unwrap().unwrap();
        let balance_line = out
            .lines()
            .find(|l| l.starts_with("balance "))
            .unwrap_or_else(|| panic!("{out}"));
        assert_eq!(
            balance_line.split_whitespace().nth(1),
            Some(Money(row.balance).to_string().as_str()),
            "{name}: {out}"
        );
        assert!(out.contains("adjustment \"refund reversal\""), "{out}");
        assert!(out.contains("-1.234567"), "{out}");
        assert!(out.contains("check: OK"), "{out}");

        let (code, out, _) = cli(&_store, &["ledger", "replay", "--tenant", &acme, "--json"]).await;
        assert_eq!(code, 0, "{name}");
        let document: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(document["statement"]["balance"], row.balance);
        assert_eq!(document["check"]["clean"], true);
        assert_eq!(document["email"], "acme@example.com");

        execute(
            &db,
            "UPDATE balances SET balance = balance + 1 WHERE tenant_id = $1",
            &acme,
        )
        .await;
        let (code, out, _) = cli(&_store, &["ledger", "verify", "--all"]).await;
        assert_eq!(code, 1, "{name}: {out}");
        let diff = out.lines().find(|l| l.starts_with("DIFF")).unwrap();
        assert!(diff.contains(&acme), "{diff}");
        assert!(diff.contains("read model balance: replayed"), "{diff}");
        assert!(out.contains("2 tenant(s) checked: 1 OK, 1 with differences"));
        let (code, out, _) = cli(&_store, &["ledger", "replay", "--tenant", &acme]).await;
        assert_eq!(code, 1, "{name}");
        assert!(out.contains("check: 1 difference(s)"), "{out}");

        // A read-model row with no events behind it is a difference too.
        execute(
            &db,
            "INSERT INTO balances
               (tenant_id, balance, credited, adjusted, settled, outstanding, calls, updated_at)
             VALUES ($1, 0, 0, 0, 0, 0, 0, '')",
            "ghost",
        )
        .await;
        let check = ledger::check(&db, "ghost").await.unwrap();
        assert_eq!(
            check.differences,
            vec![Difference::ReadModelRowWithoutEvents]
        );
        let (code, out, _) = cli(&_store, &["ledger", "verify", "--all"]).await;
        assert_eq!(code, 1);
        assert!(
            out.contains("3 tenant(s) checked: 1 OK, 2 with differences"),
            "{out}"
        );

        // Rebuilding the projection from the events repairs both.
        let (code, _, err) = cli(&_store, &["projections", "rebuild", "balances"]).await;
        assert_eq!(code, 0, "{err}");
        let (code, out, _) = cli(&_store, &["ledger", "verify", "--all"]).await;
        assert_eq!(code, 0, "{name}: {out}");

        let (code, _, err) = cli(
            &_store,
            &["ledger", "replay", "--tenant", "nobody@example.com"],
        )
        .await;
        assert_eq!(code, 2);
        assert!(
            err.contains("no tenant signs in as nobody@example.com"),
            "{err}"
        );
        let (code, _, err) = cli(&_store, &["ledger", "replay", "--tenant", "no-such-id"]).await;
        assert_eq!(code, 2);
        assert!(err.contains("no tenant no-such-id"), "{err}");
    }
}

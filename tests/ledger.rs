//! Finance's ledger tools against real traffic, on every configured store: the replay agrees
//! with the balances read model, the Account aggregate and the recorded calls to the micro-unit;
//! a tampered read model is caught by field, a settlement without calls and calls without a
//! settlement by lease and request id; the `modelrouter ledger` commands exit accordingly.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use modelrouter::ledger::{self, Against, CallRef, Difference, Field, LineKind};
use modelrouter::store::{spool, MeteringRecord};
use modelrouter_domain::account::AccountCommand;
use modelrouter_domain::inference::{CallRecord, Usage};
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::Money;
use modelrouter_projections::sql::balances;
use modelrouter_projections::{on_db, Db};
use serde_json::{json, Value};
use sqlx::Row;

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

/// Runs an Account command as a replica's allowance code does.
async fn account(db: &Db, tenant: &str, command: AccountCommand) {
    modelrouter::store::Commands::new(db.clone())
        .accounts
        .execute(tenant, command, &Metadata::new(&Actor::System))
        .await
        .unwrap();
}

/// Writes calls into the log as the metering spool of a replica does.
async fn record_calls(db: &Db, calls: Vec<(&str, &str, Option<&str>, i64)>) {
    let mut records = Vec::new();
    for (request_id, tenant, lease, cost) in calls {
        let record = CallRecord {
            tenant_id: tenant.into(),
            key_id: "k".into(),
            model: "test-gpt".into(),
            inbound_protocol: "openai".into(),
            stream: false,
            status: 200,
            usage: Usage::default(),
            cost: Money(cost),
            price_version: 1,
            latency_ms: 5,
            ttft_ms: None,
            attempts: vec![],
            started_at: chrono::Utc::now(),
            lease_id: lease.map(str::to_string),
            rollout: None,
        };
        records.push(MeteringRecord {
            request_id: request_id.to_string(),
            client_ip: None,
            record,
        });
    }
    spool::write(db, &records).await.unwrap();
}

/// The line `ledger verify` prints for one tenant.
fn line_of<'a>(out: &'a str, tenant: &str) -> &'a str {
    out.lines()
        .find(|line| line.contains(tenant))
        .unwrap_or_else(|| panic!("no line for {tenant}: {out}"))
}

#[tokio::test]
async fn a_settlement_without_recorded_calls_fails_verify_naming_the_lease() {
    for store in stores().await {
        let (_store, db) = traffic(store).await;
        let name = _store.name;
        let acme = tenant_id(&db, "acme@example.com").await;
        let (code, out, err) = cli(&_store, &["ledger", "verify", "--tenant", &acme]).await;
        assert_eq!(code, 0, "{name}: {out}{err}");

        // A lease granted and settled for calls no replica recorded.
        let lease = format!("node-ghost/{acme}");
        let grant = AccountCommand::GrantAllowance {
            lease_id: lease.clone(),
            node: "node-ghost".into(),
            requested: Money(1_000_000),
        };
        account(&db, &acme, grant).await;
        let settle = AccountCommand::SettleUsage {
            lease_id: lease.clone(),
            used_total: Money(250_000),
            calls_total: 2,
        };
        account(&db, &acme, settle).await;

        let check = ledger::check(&db, &acme).await.unwrap();
        let settlement = check.statement.lines.last().unwrap().position;
        assert_eq!(
            check.differences,
            vec![Difference::ChargedWithoutRecord {
                lease_id: lease.clone(),
                settlements: vec![settlement],
                settled: Money(250_000),
                settled_calls: 2,
                recorded: Money::ZERO,
                recorded_calls: 0,
            }],
            "{name}"
        );
        let named = format!("lease {lease} charged without a record");
        for which in [
            &["--all"][..],
            &["--tenant", "acme@example.com"],
            &["--tenant", &acme],
        ] {
            let args = [&["ledger", "verify"][..], which].concat();
            let (code, out, err) = cli(&_store, &args).await;
            assert_eq!(code, 1, "{name} {which:?}: {out}{err}");
            let line = line_of(&out, &acme);
            assert!(line.starts_with("DIFF"), "{line}");
            assert!(line.contains(&named), "{line}");
            assert!(line.contains(&format!("positions {settlement}")), "{line}");
            assert!(
                line.contains("0.250000 and 2 call(s) charged beyond"),
                "{line}"
            );
        }
        let (_, out, _) = cli(&_store, &["ledger", "verify", "--all"]).await;
        assert!(
            line_of(&out, "broke@example.com").starts_with("OK "),
            "{out}"
        );
        assert!(
            out.contains("2 tenant(s) checked: 1 OK, 1 with differences"),
            "{out}"
        );
        let (code, out, _) = cli(&_store, &["ledger", "replay", "--tenant", &acme]).await;
        assert_eq!(code, 1, "{name}");
        assert!(out.contains(&named), "{out}");

        // Released, the lease is still charged without a record.
        let release = AccountCommand::ReleaseAllowance {
            lease_id: lease.clone(),
        };
        account(&db, &acme, release).await;
        let (code, out, _) = cli(&_store, &["ledger", "verify", "--tenant", &acme]).await;
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains(&named), "{out}");
    }
}

#[tokio::test]
async fn calls_recorded_under_a_released_lease_and_never_settled_fail_verify_naming_them() {
    for store in stores().await {
        let (_store, db) = traffic(store).await;
        let name = _store.name;
        let acme = tenant_id(&db, "acme@example.com").await;
        let statement = ledger::check(&db, &acme).await.unwrap().statement;
        let released = statement
            .lines
            .iter()
            .find_map(|line| match &line.kind {
                LineKind::AllowanceReleased { lease_id } => Some(lease_id.clone()),
                _ => None,
            })
            .unwrap();

        // Two calls under the replica's lease after it was released, one with a cost under no
        // lease, and one that cost nothing under no lease (it needs no charge).
        let calls = vec![
            ("late-call-1", acme.as_str(), Some(released.as_str()), 1_234),
            ("late-call-2", acme.as_str(), Some(released.as_str()), 0),
            ("stray-call", acme.as_str(), None, 99),
            ("free-call", acme.as_str(), None, 0),
        ];
        record_calls(&db, calls).await;

        let check = ledger::check(&db, &acme).await.unwrap();
        assert_eq!(check.recorded_calls, 10 + 4, "{name}");
        let named: Vec<&CallRef> = check
            .differences
            .iter()
            .flat_map(|difference| match difference {
                Difference::RecordedWithoutCharge {
                    lease_id, calls, ..
                } if *lease_id == released => calls.iter().collect(),
                Difference::CallWithoutLease {
                    lease_id: None,
                    call,
                } => vec![call],
                other => panic!("{name}: unexpected {other:?}"),
            })
            .collect();
        let ids: Vec<&str> = named.iter().map(|call| call.request_id.as_str()).collect();
        assert_eq!(ids, ["late-call-1", "late-call-2", "stray-call"], "{name}");
        assert_eq!(named[0].cost, Money(1_234));

        for which in [&["--all"][..], &["--tenant", &acme]] {
            let args = [&["ledger", "verify"][..], which].concat();
            let (code, out, err) = cli(&_store, &args).await;
            assert_eq!(code, 1, "{name} {which:?}: {out}{err}");
            let line = line_of(&out, &acme);
            assert!(line.starts_with("DIFF"), "{line}");
            assert!(
                line.contains(&format!(
                    "lease {released} (closed) recorded without a charge"
                )),
                "{line}"
            );
            for id in ["late-call-1", "late-call-2", "stray-call"] {
                assert!(line.contains(&format!("{id} (position ")), "{id}: {line}");
            }
            assert!(line.contains("cost 0.001234"), "{line}");
            assert!(!line.contains("free-call"), "{line}");
        }
    }
}

#[tokio::test]
async fn calls_not_yet_settled_on_an_open_lease_are_pending_not_a_difference() {
    for store in stores().await {
        // Settlement only at shutdown: while the replica serves, its lease is open and unsettled.
        let env = env_with(store, 0, |s| s.settle_every = Duration::from_secs(3600)).await;
        for i in 0..2 {
            let body = json!({"model": "test-gpt", "messages": user(&format!("pending {i}"))});
            let response = env.chat(KEY_AUTO, body).await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }
        let name = env.store.name;
        let db = env.store.core().await.db;
        let acme = tenant_id(&db, "acme@example.com").await;
        let recorded = eventually(Duration::from_secs(10), || async {
            ledger::check(&db, &acme).await.unwrap().recorded_calls == 2
        })
        .await;
        assert!(recorded, "{name}: the calls were never recorded");

        let (code, out, err) = cli(&env.store, &["ledger", "verify", "--tenant", &acme]).await;
        assert_eq!(code, 0, "{name}: {out}{err}");
        let line = line_of(&out, &acme);
        assert!(line.starts_with("OK "), "{line}");
        assert!(
            line.contains("(2 call(s) pending settlement on open leases)"),
            "{line}"
        );
        let (code, out, _) = cli(&env.store, &["ledger", "replay", "--tenant", &acme]).await;
        assert_eq!(code, 0, "{name}: {out}");
        assert!(out.contains("check: OK"), "{out}");
        assert!(out.contains("pending: lease node-"), "{out}");

        // At shutdown the replica settles and releases: nothing is pending any more.
        let (_store, _db) = env.finish().await;
        let (code, out, _) = cli(&_store, &["ledger", "verify", "--tenant", &acme]).await;
        assert_eq!(code, 0, "{name}: {out}");
        assert!(!out.contains("pending"), "{out}");
    }
}

#[tokio::test]
async fn verify_takes_exactly_one_of_all_and_tenant() {
    let store = stores().await.remove(0);
    for args in [
        &["ledger", "verify"][..],
        &["ledger", "verify", "--all", "--tenant", "t"],
    ] {
        let (code, _, err) = cli(&store, args).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("--all") && err.contains("--tenant"), "{err}");
    }
    let (code, _, err) = cli(&store, &["ledger", "verify", "--tenant", "no-such-id"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no tenant no-such-id"), "{err}");
}

/// `ledger verify --tenant` must stay fast on a log of millions of calls: the planner must read
/// a tenant's calls (and, for `--all`, the tenants with calls) through migration 0015's index.
/// A query whose expression drifted from the index's would scan the log; its plan says so.
#[tokio::test]
async fn the_calls_of_a_tenant_are_read_through_the_index_never_by_scanning_the_log() {
    use modelrouter_projections::call_log;
    for store in stores().await {
        let db = store.core().await.db;
        let plans: Vec<String> = match &db {
            Db::Sqlite(pool) => {
                let calls = sqlx::query(&format!(
                    "EXPLAIN QUERY PLAN {}",
                    call_log::SQLITE_CALLS_OF_TENANT
                ))
                .bind("t-1")
                .bind(0_i64)
                .bind(100_i64)
                .fetch_all(pool)
                .await
                .unwrap();
                let tenants = sqlx::query(&format!(
                    "EXPLAIN QUERY PLAN {}",
                    call_log::SQLITE_TENANTS_WITH_CALLS
                ))
                .fetch_all(pool)
                .await
                .unwrap();
                [calls, tenants]
                    .iter()
                    .map(|rows| {
                        let details = rows.iter().map(|row| row.get::<String, _>("detail"));
                        details.collect::<Vec<_>>().join("\n")
                    })
                    .collect()
            }
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await.unwrap();
                // On a near-empty table a scan is cheapest; forbid it to see whether the index
                // can serve the query at all.
                sqlx::query("SET enable_seqscan = off")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                let calls = sqlx::query(&format!("EXPLAIN {}", call_log::POSTGRES_CALLS_OF_TENANT))
                    .bind("t-1")
                    .bind(0_i64)
                    .bind(100_i64)
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
                let tenants = sqlx::query(&format!(
                    "EXPLAIN {}",
                    call_log::POSTGRES_TENANTS_WITH_CALLS
                ))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
                [calls, tenants]
                    .iter()
                    .map(|rows| {
                        let lines = rows.iter().map(|row| row.get::<String, _>(0));
                        lines.collect::<Vec<_>>().join("\n")
                    })
                    .collect()
            }
        };
        // The index is searched by tenant, not read whole with the tenant as a filter.
        let by_tenant = |plan: &str| match &db {
            Db::Sqlite(_) => {
                plan.contains("SEARCH events USING INDEX events_calls_by_tenant (<expr>")
            }
            Db::Postgres(_) => {
                let on_tenant = |what: &str| {
                    plan.lines()
                        .any(|line| line.contains(what) && line.contains("tenant_id"))
                };
                on_tenant("Index Cond") && !on_tenant("Filter")
            }
        };
        for plan in plans {
            assert!(by_tenant(&plan), "{}: {plan}", store.name);
            assert!(!plan.contains("Seq Scan"), "{}: {plan}", store.name);
            assert!(!plan.contains("SCAN events"), "{}: {plan}", store.name);
        }
    }
}

//! A rebuild never shows wrong numbers: while `projections rebuild` replays the log, the portal
//! and the console keep reading the old complete read model, and then the new complete one — a
//! tenant's balance never disappears and never shows a partial sum. On every configured store.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use modelrouter::server::Core;
use modelrouter::store::{spool, MeteringRecord};
use modelrouter_domain::account::{AccountCommand, CreditKind, CreditSource};
use modelrouter_domain::inference::{Attempt, CallRecord, Usage};
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::Money;
use modelrouter_projections::sql::usage_report::{self, UsageFilter};
use modelrouter_projections::sql::{self, balances, BalanceRow, Projection};
use modelrouter_projections::Db;

const TENANTS: [&str; 3] = ["tenant-rebuild-a", "tenant-rebuild-b", "tenant-rebuild-c"];
/// A tenant credited while the rebuild runs.
const LIVE_TENANT: &str = "tenant-rebuild-live";
/// Account events per tenant: enough that replaying them takes a while.
const CREDITS: i64 = 250;
/// Metered calls per tenant.
const CALLS: i64 = 500;
/// Reads while the rebuild runs, at the least, for the test to prove anything.
const MIN_READS: usize = 20;

/// What the portal shows a tenant: the balance row and how many calls the usage page counts.
type Seen = (Option<BalanceRow>, i64);

async fn seen(db: &Db, tenant: &str) -> Seen {
    let filter = UsageFilter {
        tenant_id: tenant,
        from: None,
        until: None,
        key_id: None,
        model: None,
    };
    (
        balances::balance_of(db, tenant).await.unwrap(),
        usage_report::count(db, &filter).await.unwrap(),
    )
}

fn call(tenant: &str, i: i64) -> CallRecord {
    CallRecord {
        tenant_id: tenant.into(),
        key_id: "k".into(),
        model: "gpt".into(),
        inbound_protocol: "openai".into(),
        stream: false,
        status: 200,
        usage: Usage {
            input_total: Some(10),
            output_total: Some(5),
            ..Usage::default()
        },
        cost: Money(60),
        price_version: 1,
        latency_ms: 100,
        ttft_ms: None,
        attempts: vec![Attempt {
            provider: "mock-openai".into(),
            upstream_model: "upstream-gpt".into(),
            status: Some(200),
            error: None,
            latency_ms: 90,
        }],
        started_at: Utc::now() - chrono::Duration::milliseconds(i),
        lease_id: None,
        rollout: None,
    }
}

/// A log with `CREDITS` credits of growing amounts (so every partial sum differs from the
/// total) and `CALLS` metered calls per tenant, projected.
async fn seeded(store: &Store) -> Arc<Core> {
    let core = Arc::new(store.core().await);
    let mut writers = Vec::new();
    for tenant in TENANTS {
        let core = core.clone();
        writers.push(tokio::spawn(async move {
            for i in 1..=CREDITS {
                credit(&core, tenant, i).await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let mut records = Vec::new();
    for tenant in TENANTS {
        for i in 0..CALLS {
            let record = MeteringRecord {
                request_id: format!("{tenant}-call-{i}"),
                client_ip: None,
                record: call(tenant, i),
            };
            records.push(record);
        }
    }
    for batch in records.chunks(256) {
        spool::write(&core.db, batch).await.unwrap();
    }
    let db = core.db.clone();
    // On PostgreSQL the tail holds back events while any older transaction on the server is
    // open (other tests' databases share it), so one catch-up may not see them all yet.
    let projected = eventually(Duration::from_secs(10), || async {
        sql::catch_up(&db, Projection::Balances, 1000)
            .await
            .unwrap();
        sql::catch_up(&db, Projection::Usage, 1000).await.unwrap();
        let mut complete = true;
        for tenant in TENANTS {
            let (row, calls) = seen(&db, tenant).await;
            complete &= row.is_some_and(|row| row.balance == CREDITS * (CREDITS + 1) / 2);
            complete &= calls == CALLS;
        }
        complete
    })
    .await;
    assert!(projected, "{}: the log was never projected", store.name);
    core
}

/// Credits `tenant` with `i` micro-units, as a paid order would.
async fn credit(core: &Core, tenant: &str, i: i64) {
    let credit = AccountCommand::Credit {
        amount: Money(i),
        source: CreditSource {
            kind: CreditKind::RechargeOrder,
            reference: format!("order-{i}"),
        },
    };
    core.commands
        .accounts
        .execute(tenant, credit, &Metadata::new(&Actor::Cli))
        .await
        .unwrap();
}

/// The rebuild runs while readers read every tenant's balance and call count, as the portal
/// does, and while another tenant is credited and a tailer applies those credits to the live
/// tables, as a serving replica does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_the_whole_old_or_the_whole_new_read_model_throughout_a_rebuild() {
    for store in stores().await {
        let core = seeded(&store).await;
        let db = core.db.clone();
        let mut expected = Vec::new();
        for tenant in TENANTS {
            expected.push(seen(&db, tenant).await);
        }

        let started = Instant::now();
        let rebuild = tokio::spawn({
            let db = db.clone();
            async move {
                let balances = sql::rebuild(&db, Projection::Balances).await.unwrap();
                let usage = sql::rebuild(&db, Projection::Usage).await.unwrap();
                (balances, usage)
            }
        });
        let done = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn({
            let (core, done) = (core.clone(), done.clone());
            async move {
                let mut credited = 0;
                let mut i = 0;
                while !done.load(Ordering::Relaxed) {
                    i += 1;
                    credit(&core, LIVE_TENANT, i).await;
                    credited += i;
                }
                (i, credited)
            }
        });
        let tailer = tokio::spawn({
            let (db, done) = (db.clone(), done.clone());
            async move {
                while !done.load(Ordering::Relaxed) {
                    sql::advance(&db, Projection::Balances, 100).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        let mut reads = 0;
        let mut wrong = Vec::new();
        while !rebuild.is_finished() {
            for (tenant, want) in TENANTS.iter().zip(&expected) {
                let got = seen(&db, tenant).await;
                reads += 1;
                if got != *want {
                    wrong.push((tenant, got));
                }
            }
        }
        let (balance_events, usage_events) = rebuild.await.unwrap();
        let took = started.elapsed();
        done.store(true, Ordering::Relaxed);
        let (live_credits, live_credited) = writer.await.unwrap();
        tailer.await.unwrap();
        assert!(
            wrong.is_empty(),
            "{}: {} of {reads} reads during the rebuild showed something other than the complete \
             read model, first {:?} (expected {:?})",
            store.name,
            wrong.len(),
            wrong[0],
            expected[TENANTS.iter().position(|t| t == wrong[0].0).unwrap()],
        );
        assert!(
            reads >= MIN_READS,
            "{}: only {reads} reads in the {took:?} the rebuild took; the test proves nothing",
            store.name
        );
        // Each projection reads only its own aggregate types: the credits, or the calls.
        let tenants = TENANTS.len() as i64;
        assert!(balance_events >= (tenants * CREDITS) as usize);
        assert!(usage_events >= (tenants * CALLS) as usize);

        // The credits made during the rebuild count once each, and the read models the tailer
        // goes on with equal a rebuild made with nothing running.
        sql::catch_up(&db, Projection::Balances, 1000)
            .await
            .unwrap();
        let live = balances::balance_of(&db, LIVE_TENANT).await.unwrap();
        assert_eq!(
            live.map(|row| row.balance),
            Some(live_credited),
            "{}: {live_credits} credits during the rebuild",
            store.name
        );
        for projection in [Projection::Balances, Projection::Usage] {
            sql::catch_up(&db, projection, 1000).await.unwrap();
            let incremental = sql::dump(&db, projection).await.unwrap();
            sql::rebuild(&db, projection).await.unwrap();
            let rebuilt = sql::dump(&db, projection).await.unwrap();
            assert_eq!(incremental, rebuilt, "{} {}", store.name, projection.name());
        }
        eprintln!(
            "{}: {reads} reads and {live_credits} credits while the rebuild ran {took:?}",
            store.name
        );
    }
}

//! Top-ups on every configured store: a payment confirmed by two replicas at once is recorded
//! once, a confirmation for the wrong amount is stored but not paid, a voucher code is redeemed
//! once when two tenants try at the same moment, `load` reads what the aggregates decided, and an
//! account read through its snapshot counts every credit once.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use modelrouter::server::Core;
use modelrouter::store::CommandError;
use modelrouter_domain::account::{AccountCommand, CreditKind, CreditSource};
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::prepaid::{code_id, PrepaidCommand};
use modelrouter_domain::recharge::{OrderState, PaymentMethod, RechargeCommand};
use modelrouter_domain::{aggregate_types, DomainError, Money};
use modelrouter_projections::{on_db, Db};
use tokio::sync::Barrier;

const ORDER_AMOUNT: Money = Money(20_000_000);

fn placed_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().unwrap()
}

fn webhook() -> Metadata {
    Metadata::new(&Actor::System)
}

/// How many events of `event_type` the aggregate has in the events table.
async fn count_events(db: &Db, aggregate_type: &str, id: &str, event_type: &str) -> i64 {
    on_db!(db, pool => {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_type = $3",
        )
        .bind(aggregate_type)
        .bind(id)
        .bind(event_type)
        .fetch_one(pool)
        .await
        .unwrap()
    })
}

async fn place(core: &Core, order: &str) {
    core.commands
        .recharges
        .execute(
            order,
            RechargeCommand::Place {
                tenant_id: "tenant-1".into(),
                amount: ORDER_AMOUNT,
                currency: "usd".into(),
                method: PaymentMethod::Stripe,
                placed_at: placed_at(),
                expires_at: placed_at() + Duration::minutes(30),
            },
            &webhook(),
        )
        .await
        .unwrap();
    core.commands
        .recharges
        .execute(
            order,
            RechargeCommand::AttachCheckout {
                provider_ref: format!("cs_{order}"),
                pay_url: Some(format!("https://pay.example/cs_{order}")),
            },
            &webhook(),
        )
        .await
        .unwrap();
}

fn confirm(order: &str, amount: Money, provider_event: &str) -> RechargeCommand {
    RechargeCommand::ConfirmPayment {
        amount,
        currency: "USD".into(),
        provider_ref: format!("cs_{order}"),
        provider_event: provider_event.into(),
        paid_at: placed_at() + Duration::minutes(3),
        confirmed_by: "stripe-webhook".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_confirming_one_payment_at_once_record_one_paid_event() {
    for store in stores().await {
        // Two cores on one store: two replicas, each with its own command bus and pool.
        let replicas = [Arc::new(store.core().await), Arc::new(store.core().await)];
        // Several rounds, so that the commands really overlap in some of them. Even rounds are
        // the same webhook delivered to both replicas; odd rounds are two different provider
        // events for one payment (say, a session completed and a payment intent succeeded).
        for round in 0..6 {
            let order = format!("order-{round}");
            place(&replicas[0], &order).await;
            let barrier = Arc::new(Barrier::new(2));
            let mut tasks = Vec::new();
            for (i, replica) in replicas.iter().enumerate() {
                let (replica, barrier, order) = (replica.clone(), barrier.clone(), order.clone());
                let event = if round % 2 == 0 {
                    "evt_same".to_string()
                } else {
                    format!("evt_{i}")
                };
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    replica
                        .commands
                        .recharges
                        .execute(&order, confirm(&order, ORDER_AMOUNT, &event), &webhook())
                        .await
                }));
            }
            for task in tasks {
                let result = task.await.unwrap();
                assert!(
                    result.is_ok(),
                    "{} round {round}: both confirmations succeed: {result:?}",
                    store.name
                );
            }
            let db = &replicas[0].db;
            assert_eq!(
                count_events(db, aggregate_types::RECHARGE_ORDER, &order, "Paid").await,
                1,
                "{} round {round}: exactly one Paid event",
                store.name
            );
            for replica in &replicas {
                let loaded = replica.commands.recharges.load(&order).await.unwrap();
                assert_eq!(loaded.state(), OrderState::Paid, "{}", store.name);
                assert_eq!(loaded.amount(), ORDER_AMOUNT);
                assert_eq!(loaded.currency(), "USD");
                assert_eq!(loaded.tenant_id(), "tenant-1");
                assert_eq!(loaded.method(), Some(PaymentMethod::Stripe));
                assert_eq!(loaded.provider_ref(), Some(format!("cs_{order}").as_str()));
            }
            // A redelivery long after changes nothing either.
            replicas[1]
                .commands
                .recharges
                .execute(
                    &order,
                    confirm(&order, ORDER_AMOUNT, "evt_same"),
                    &webhook(),
                )
                .await
                .unwrap();
            assert_eq!(
                count_events(db, aggregate_types::RECHARGE_ORDER, &order, "Paid").await,
                1,
                "{}",
                store.name
            );
        }
    }
}

#[tokio::test]
async fn a_confirmation_with_the_wrong_amount_is_recorded_and_leaves_the_order_pending() {
    for store in stores().await {
        let core = store.core().await;
        place(&core, "order-short").await;
        core.commands
            .recharges
            .execute(
                "order-short",
                confirm("order-short", Money(2_000_000), "evt_short"),
                &webhook(),
            )
            .await
            .unwrap();
        let db = &core.db;
        let id = "order-short";
        let order_type = aggregate_types::RECHARGE_ORDER;
        assert_eq!(
            count_events(db, order_type, id, "PaymentMismatch").await,
            1,
            "{}",
            store.name
        );
        assert_eq!(count_events(db, order_type, id, "Paid").await, 0);
        let loaded = core.commands.recharges.load(id).await.unwrap();
        assert_eq!(loaded.state(), OrderState::Pending, "{}", store.name);
        assert!(loaded.has_seen_provider_event("evt_short"));

        // The same short payment redelivered is not recorded twice; the right amount still pays.
        let commands = &core.commands.recharges;
        commands
            .execute(id, confirm(id, Money(2_000_000), "evt_short"), &webhook())
            .await
            .unwrap();
        assert_eq!(count_events(db, order_type, id, "PaymentMismatch").await, 1);
        commands
            .execute(id, confirm(id, ORDER_AMOUNT, "evt_full"), &webhook())
            .await
            .unwrap();
        assert_eq!(commands.load(id).await.unwrap().state(), OrderState::Paid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tenants_redeeming_one_code_at_once_only_one_succeeds() {
    for store in stores().await {
        let replicas = [Arc::new(store.core().await), Arc::new(store.core().await)];
        for round in 0..6 {
            let id = code_id(&format!("GIFT-2025-{round:04}"));
            replicas[0]
                .commands
                .prepaid
                .execute(
                    &id,
                    PrepaidCommand::Issue {
                        amount: Money(5_000_000),
                        currency: "USD".into(),
                        expires_at: None,
                        note: "launch promotion".into(),
                        issued_at: placed_at(),
                        prefix: None,
                    },
                    &Metadata::new(&Actor::Operator("op-1".into())),
                )
                .await
                .unwrap();
            let barrier = Arc::new(Barrier::new(2));
            let mut tasks = Vec::new();
            for (i, replica) in replicas.iter().enumerate() {
                let (replica, barrier, id) = (replica.clone(), barrier.clone(), id.clone());
                let tenant = format!("tenant-{i}");
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let result = replica
                        .commands
                        .prepaid
                        .execute(
                            &id,
                            PrepaidCommand::Redeem {
                                tenant_id: tenant.clone(),
                                now: placed_at() + Duration::days(1),
                            },
                            &Metadata::new(&Actor::Tenant(tenant.clone())),
                        )
                        .await;
                    (tenant, result)
                }));
            }
            let mut winners = Vec::new();
            for task in tasks {
                match task.await.unwrap() {
                    (tenant, Ok(())) => winners.push(tenant),
                    (_, Err(CommandError::Domain(DomainError::Invalid { reason, .. }))) => {
                        assert_eq!(reason, "this code has already been redeemed")
                    }
                    (_, Err(other)) => panic!("{}: unexpected {other:?}", store.name),
                }
            }
            assert_eq!(winners.len(), 1, "{} round {round}", store.name);
            let db = &replicas[0].db;
            assert_eq!(
                count_events(db, aggregate_types::PREPAID_CODE, &id, "Redeemed").await,
                1,
                "{}",
                store.name
            );
            let code = replicas[1].commands.prepaid.load(&id).await.unwrap();
            assert!(code.is_redeemed());
            assert_eq!(code.redeemed_by(), Some(winners[0].as_str()));
            assert_eq!(code.amount(), Money(5_000_000));
        }
    }
}

#[tokio::test]
async fn loading_an_aggregate_without_events_gives_its_default_state() {
    for store in stores().await {
        let core = store.core().await;
        let missing = core.commands.recharges.load("no-such-order").await.unwrap();
        assert!(!missing.is_placed(), "{}", store.name);
        let missing = core.commands.prepaid.load(&code_id("nope")).await.unwrap();
        assert!(!missing.is_issued(), "{}", store.name);
        let missing = core.commands.accounts.load("no-such-tenant").await.unwrap();
        assert_eq!(missing.balance(), Money::ZERO, "{}", store.name);
    }
}

#[tokio::test]
async fn an_account_past_its_snapshot_counts_every_credit_once() {
    for store in stores().await {
        let core = store.core().await;
        // Top-ups credit the account one order at a time; 60 of them take a snapshot at the
        // 50th, so the account is then read from the snapshot plus the events after it.
        for n in 0..60 {
            core.commands
                .accounts
                .execute(
                    "tenant-1",
                    AccountCommand::Credit {
                        amount: Money(1_000),
                        source: CreditSource {
                            kind: CreditKind::RechargeOrder,
                            reference: format!("order-{n}"),
                        },
                    },
                    &webhook(),
                )
                .await
                .unwrap();
        }
        let account = core.commands.accounts.load("tenant-1").await.unwrap();
        assert_eq!(account.balance(), Money(60_000), "{}", store.name);
        // The framework's own view agrees: no allowance beyond what was credited.
        let grant = |requested: i64| AccountCommand::GrantAllowance {
            lease_id: format!("lease-{requested}"),
            node: "n1".into(),
            requested: Money(requested),
        };
        let refused = core
            .commands
            .accounts
            .execute("tenant-1", grant(60_001), &webhook())
            .await;
        assert!(
            matches!(
                refused,
                Err(CommandError::Domain(DomainError::InsufficientBalance { available }))
                    if available == Money(60_000)
            ),
            "{}: {refused:?}",
            store.name
        );
        core.commands
            .accounts
            .execute("tenant-1", grant(60_000), &webhook())
            .await
            .unwrap();
    }
}

//! Tests of `ledger`.

#![allow(clippy::unwrap_used)]

use super::*;
use modelrouter_domain::account::CreditSource;
use modelrouter_projections::LoggedCall;
use serde_json::json;

/// Events as the store hands them back: positions spread out (other aggregates' events
/// sit between them), sequences 1, 2, 3, ….
fn stored(events: Vec<AccountEvent>) -> Vec<StoredEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let sequence = i as i64 + 1;
            let payload = serde_json::to_value(&event).unwrap();
            let event_type = payload
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap();
            StoredEvent {
                tx: 0,
                position: sequence * 10,
                aggregate_type: ACCOUNT.to_string(),
                aggregate_id: "t1".to_string(),
                sequence,
                event_type,
                payload,
                metadata: json!({"actor": if sequence == 3 { "operator:o1" } else { "system" }}),
                recorded_at: format!("2025-01-01T00:00:{sequence:02}.000Z"),
            }
        })
        .collect()
}

fn credit(amount: i64, kind: CreditKind, reference: &str) -> AccountEvent {
    AccountEvent::Credited {
        amount: Money(amount),
        source: CreditSource {
            kind,
            reference: reference.to_string(),
        },
    }
}
fn grant(lease: &str, amount: i64) -> AccountEvent {
    AccountEvent::AllowanceGranted {
        lease_id: lease.to_string(),
        node: "node-a".to_string(),
        amount: Money(amount),
    }
}
fn settle(lease: &str, used: i64, calls: u64) -> AccountEvent {
    AccountEvent::UsageSettled {
        lease_id: lease.to_string(),
        used: Money(used),
        calls,
    }
}
fn release(lease: &str, amount: i64) -> AccountEvent {
    AccountEvent::AllowanceReleased {
        lease_id: lease.to_string(),
        amount: Money(amount),
    }
}

/// The life of an account: two credits, an operator's adjustment, a lease, usage on it, its
/// release, and usage a replica settled after its lease was already released.
fn life() -> Vec<StoredEvent> {
    stored(vec![
        credit(100_000_000, CreditKind::Import, "import:100000000"),
        credit(12_500_000, CreditKind::Voucher, "v-1"),
        AccountEvent::Adjusted {
            amount: Money(-2_000_001),
            reason: "goodwill reversal".to_string(),
        },
        grant("L1", 1_000_000),
        settle("L1", 333_333, 3),
        release("L1", 666_667),
        settle("L1", 17, 1),
    ])
}

#[test]
fn replay_runs_the_balance_to_the_micro_unit() {
    let statement = replay("t1", &life()).unwrap();
    let after: Vec<i64> = statement.lines.iter().map(|l| l.balance_after.0).collect();
    assert_eq!(
        after,
        vec![
            100_000_000,
            112_500_000,
            110_499_999,
            110_499_999,
            110_166_666,
            110_166_666,
            110_166_649
        ]
    );
    let amounts: Vec<i64> = statement.lines.iter().map(|l| l.amount.0).collect();
    assert_eq!(
        amounts,
        vec![100_000_000, 12_500_000, -2_000_001, 0, -333_333, 0, -17]
    );
    assert_eq!(statement.credited, Money(112_500_000));
    assert_eq!(statement.adjusted, Money(-2_000_001));
    assert_eq!(statement.charged, Money(333_350));
    assert_eq!(statement.balance, Money(110_166_649));
    assert_eq!(
        statement.balance.0,
        statement.credited.0 + statement.adjusted.0 - statement.charged.0
    );
    assert_eq!(statement.outstanding_allowance, Money::ZERO);
    assert_eq!(statement.calls, 4);
    assert_eq!(statement.lines[2].actor.as_deref(), Some("operator:o1"));
    assert_eq!(
        statement.lines[2].kind,
        LineKind::Adjustment {
            reason: "goodwill reversal".into(),
            actor: Some("operator:o1".into())
        }
    );
    assert_eq!(statement.lines[4].position, 50);
    assert_eq!(statement.lines[4].at, "2025-01-01T00:00:05.000Z");
}

#[test]
fn open_leases_are_outstanding_and_usage_beyond_a_lease_empties_it() {
    let events = stored(vec![
        credit(10_000, CreditKind::RechargeOrder, "o-1"),
        grant("A", 3_000),
        grant("B", 2_000),
        settle("A", 1_000, 2),
        grant("A", 500),
        settle("B", 2_500, 1),
    ]);
    let statement = replay("t1", &events).unwrap();
    // A: 3000 − 1000 + 500 = 2500; B: 2000 − 2500 → 0 (never below zero).
    assert_eq!(statement.outstanding_allowance, Money(2_500));
    assert_eq!(statement.balance, Money(10_000 - 1_000 - 2_500));
    assert_eq!(statement.calls, 3);
}

#[test]
fn a_refund_leaves_the_balance_and_is_counted_apart() {
    let events = stored(vec![
        credit(10_000, CreditKind::RechargeOrder, "order:R-1"),
        AccountEvent::Refunded {
            order_id: "R-1".into(),
            refund_id: "f1".into(),
            amount: Money(4_000),
        },
    ]);
    let statement = replay("t1", &events).unwrap();
    assert_eq!(statement.refunded, Money(4_000));
    assert_eq!(statement.balance, Money(6_000));
    assert_eq!(statement.lines[1].amount, Money(-4_000));
    assert_eq!(statement.lines[1].kind.to_string(), "refund of order R-1");
    let mut row = row_of(&statement);
    let aggregate = AggregateState {
        balance: statement.balance,
        outstanding: Money::ZERO,
    };
    assert_eq!(differences(&statement, Some(&row), aggregate), vec![]);
    row.refunded = 0;
    assert_eq!(
        differences(&statement, Some(&row), aggregate),
        vec![Difference::Field {
            against: Against::ReadModel,
            field: Field::Refunded,
            replayed: 4_000,
            found: 0
        }]
    );
}

#[test]
fn replay_agrees_with_the_aggregate_on_the_same_events() {
    let refunded = stored(vec![
        credit(10_000, CreditKind::RechargeOrder, "order:R-1"),
        AccountEvent::Refunded {
            order_id: "R-1".into(),
            refund_id: "f1".into(),
            amount: Money(4_000),
        },
    ]);
    for events in [
        life(),
        stored(vec![grant("X", 5), settle("X", 9, 1)]),
        refunded,
    ] {
        let statement = replay("t1", &events).unwrap();
        let mut account = Account::default();
        for event in decode("t1", &events).unwrap() {
            account.apply(event);
        }
        assert_eq!(statement.balance, account.balance());
        assert_eq!(statement.outstanding_allowance, account.outstanding());
    }
}

#[test]
fn an_undecodable_event_is_an_error_naming_its_position() {
    let mut events = life();
    events[3].payload = json!({"AllowanceGranted": {"lease_id": "L1"}});
    let error = replay("t1", &events).unwrap_err();
    assert!(matches!(
        error,
        LedgerError::Undecodable { position: 40, .. }
    ));
    assert!(error.to_string().contains("position 40"), "{error}");
    assert!(error.is_finding());
}

#[test]
fn a_missing_or_foreign_event_is_an_error() {
    let mut events = life();
    events.remove(2);
    let error = replay("t1", &events).unwrap_err();
    assert!(
        matches!(
            error,
            LedgerError::OutOfSequence {
                position: 40,
                expected: 3,
                found: 4
            }
        ),
        "{error}"
    );
    let error = replay("t2", &life()).unwrap_err();
    assert!(matches!(
        error,
        LedgerError::ForeignEvent { position: 10, .. }
    ));
}

fn row_of(statement: &Statement) -> BalanceRow {
    BalanceRow {
        tenant_id: statement.tenant_id.clone(),
        balance: statement.balance.0,
        credited: statement.credited.0,
        adjusted: statement.adjusted.0,
        refunded: statement.refunded.0,
        settled: statement.charged.0,
        outstanding: statement.outstanding_allowance.0,
        calls: statement.calls as i64,
        updated_at: String::new(),
    }
}

#[test]
fn differences_are_reported_by_field() {
    let statement = replay("t1", &life()).unwrap();
    let aggregate = AggregateState {
        balance: statement.balance,
        outstanding: Money::ZERO,
    };
    let row = row_of(&statement);
    assert_eq!(differences(&statement, Some(&row), aggregate), vec![]);

    let tampered = BalanceRow {
        balance: row.balance + 1,
        calls: row.calls - 1,
        ..row.clone()
    };
    let found = differences(&statement, Some(&tampered), aggregate);
    assert_eq!(
        found,
        vec![
            Difference::Field {
                against: Against::ReadModel,
                field: Field::Balance,
                replayed: 110_166_649,
                found: 110_166_650
            },
            Difference::Field {
                against: Against::ReadModel,
                field: Field::Calls,
                replayed: 4,
                found: 3
            }
        ]
    );
    assert_eq!(
        found[0].to_string(),
        "read model balance: replayed 110.166649, found 110.166650"
    );

    let wrong_aggregate = AggregateState {
        outstanding: Money(7),
        ..aggregate
    };
    assert_eq!(
        differences(&statement, Some(&row), wrong_aggregate),
        vec![Difference::Field {
            against: Against::Aggregate,
            field: Field::Outstanding,
            replayed: 0,
            found: 7
        }]
    );
    assert_eq!(
        differences(&statement, None, aggregate),
        vec![Difference::MissingReadModelRow]
    );

    let empty = replay("t1", &[]).unwrap();
    let zero = AggregateState {
        balance: Money::ZERO,
        outstanding: Money::ZERO,
    };
    assert_eq!(differences(&empty, None, zero), vec![]);
    let orphan = BalanceRow {
        balance: 5,
        ..row_of(&empty)
    };
    assert_eq!(
        differences(&empty, Some(&orphan), zero),
        vec![
            Difference::ReadModelRowWithoutEvents,
            Difference::Field {
                against: Against::ReadModel,
                field: Field::Balance,
                replayed: 0,
                found: 5
            }
        ]
    );
}

#[test]
fn the_statement_prints_micro_units_as_whole_units_with_six_decimals() {
    let text = replay("t1", &life()).unwrap().to_string();
    let credit = text
        .lines()
        .find(|l| l.contains("credit voucher v-1"))
        .unwrap();
    assert!(credit.starts_with("2025-01-01T00:00:02.000Z"), "{credit}");
    assert!(credit.contains("12.500000"), "{credit}");
    assert!(credit.contains("112.500000"), "{credit}");
    assert!(credit.ends_with("system"), "{credit}");
    let adjustment = text.lines().find(|l| l.contains("adjustment")).unwrap();
    assert!(adjustment.contains("-2.000001"), "{adjustment}");
    assert!(adjustment.ends_with("operator:o1"), "{adjustment}");
    let last = text.lines().find(|l| l.contains("   -0.000017")).unwrap();
    assert!(last.contains("charge 1 call on lease L1"), "{last}");
    assert!(
        text.contains("\nbalance               110.166649\n"),
        "{text}"
    );
    assert!(
        text.contains("\ncalls                          4\n"),
        "{text}"
    );
}

/// A call as the log returns it, at `position`.
fn call(id: &str, position: i64, lease: Option<&str>, cost: i64) -> LoggedCall {
    LoggedCall {
        request_id: id.to_string(),
        position,
        cost: Some(cost),
        lease_id: lease.map(str::to_string),
        status: Some(200),
    }
}

fn reconcile(events: &[AccountEvent], calls: &[LoggedCall]) -> calls::Reconciliation {
    let stored = stored(events.to_vec());
    let decoded = decode("t1", &stored).unwrap();
    let mut reconciler = calls::Reconciler::new(&stored, &decoded).unwrap();
    for call in calls {
        reconciler.add(call).unwrap();
    }
    reconciler.finish()
}

fn reference(id: &str, position: i64, cost: i64) -> CallRef {
    CallRef {
        request_id: id.to_string(),
        position,
        status: Some(200),
        cost: Money(cost),
    }
}

#[test]
fn settlements_that_match_the_recorded_calls_are_clean() {
    let events = [
        grant("L1", 1_000),
        settle("L1", 250, 2),
        settle("L1", 50, 2),
        release("L1", 700),
    ];
    let calls = [
        call("r1", 11, Some("L1"), 100),
        call("r2", 12, Some("L1"), 150),
        call("r3", 31, Some("L1"), 50),
        call("r4", 32, Some("L1"), 0),
        // A call that cost nothing needs no charge, lease or not.
        call("r5", 33, None, 0),
    ];
    let found = reconcile(&events, &calls);
    assert_eq!(found.differences, vec![]);
    assert_eq!(found.pending, vec![]);
    assert_eq!(found.recorded_calls, 5);
}

#[test]
fn a_settlement_without_recorded_calls_is_charged_without_a_record() {
    let events = [grant("L1", 1_000), settle("L1", 300, 2), settle("L1", 5, 1)];
    let found = reconcile(&events, &[call("r1", 21, Some("L1"), 5)]);
    let expected = Difference::ChargedWithoutRecord {
        lease_id: "L1".into(),
        settlements: vec![20, 30],
        settled: Money(305),
        settled_calls: 3,
        recorded: Money(5),
        recorded_calls: 1,
    };
    assert_eq!(found.differences, vec![expected.clone()]);
    assert_eq!(
        expected.to_string(),
        "lease L1 charged without a record: settled 0.000305 over 3 call(s) (settlements at \
         positions 20, 30), but the log records 0.000005 over 1 call(s) under it: 0.000300 and \
         2 call(s) charged beyond the records"
    );
}

#[test]
fn calls_beyond_the_settlements_of_a_closed_lease_are_named_in_log_order() {
    let events = [grant("L1", 1_000), settle("L1", 100, 1), release("L1", 900)];
    let calls = [
        call("r1", 11, Some("L1"), 100),
        call("r2", 41, Some("L1"), 70),
        call("r3", 42, Some("L1"), 0),
    ];
    let found = reconcile(&events, &calls);
    let expected = Difference::RecordedWithoutCharge {
        lease_id: "L1".into(),
        settled_calls: 1,
        calls: vec![reference("r2", 41, 70), reference("r3", 42, 0)],
    };
    assert_eq!(found.differences, vec![expected.clone()]);
    assert_eq!(
        expected.to_string(),
        "lease L1 (closed) recorded without a charge: 2 call(s) beyond the 1 settled: \
         r2 (position 41, status 200, cost 0.000070), r3 (position 42, status 200, cost 0.000000)"
    );

    // The same calls on a lease still open are pending settlement, not a difference.
    let found = reconcile(&events[..2], &calls);
    assert_eq!(found.differences, vec![]);
    assert_eq!(
        found.pending,
        vec![Pending {
            lease_id: "L1".into(),
            calls: 2,
            amount: Money(70),
        }]
    );

    // A lease granted again after its release is open again.
    let reopened = [events.to_vec(), vec![grant("L1", 500)]].concat();
    assert_eq!(reconcile(&reopened, &calls).differences, vec![]);
}

#[test]
fn a_closed_lease_whose_calls_cost_more_than_was_settled_is_reported() {
    let events = [grant("L1", 1_000), settle("L1", 100, 2), release("L1", 900)];
    let calls = [
        call("r1", 11, Some("L1"), 100),
        call("r2", 12, Some("L1"), 1),
    ];
    assert_eq!(
        reconcile(&events, &calls).differences,
        vec![Difference::RecordedAmountNotCharged {
            lease_id: "L1".into(),
            calls: 2,
            settled: Money(100),
            recorded: Money(101),
        }]
    );
}

#[test]
fn calls_with_a_cost_under_no_lease_or_one_never_granted_are_named() {
    let events = [grant("L1", 1_000), release("L1", 1_000)];
    let calls = [
        call("r1", 11, None, 9),
        call("r2", 12, Some("ghost"), 7),
        call("r3", 13, Some("ghost"), 0),
        call("r4", 14, None, 0),
    ];
    let found = reconcile(&events, &calls);
    assert_eq!(
        found.differences,
        vec![
            Difference::CallWithoutLease {
                lease_id: None,
                call: reference("r1", 11, 9),
            },
            Difference::CallWithoutLease {
                lease_id: Some("ghost".into()),
                call: reference("r2", 12, 7),
            },
        ]
    );
    assert_eq!(
        found.differences[1].to_string(),
        "call r2 (position 12, status 200, cost 0.000007) recorded under lease ghost, which the \
         Account never granted"
    );
}

#[test]
fn a_call_without_a_valid_cost_stops_the_check_naming_it() {
    let stored = stored(vec![grant("L1", 1_000)]);
    let decoded = decode("t1", &stored).unwrap();
    let mut reconciler = calls::Reconciler::new(&stored, &decoded).unwrap();
    for cost in [None, Some(-1)] {
        let mut bad = call("r9", 99, Some("L1"), 0);
        bad.cost = cost;
        let error = reconciler.add(&bad).unwrap_err();
        assert!(matches!(error, LedgerError::BadCall { position: 99, .. }));
        assert!(error.to_string().contains("r9"), "{error}");
    }
}

use super::*;
use cqrs_es::test::TestFramework;

type Given = TestFramework<Account>;

fn credited(amount: i64, reference: &str) -> AccountEvent {
    AccountEvent::Credited {
        amount: Money(amount),
        source: CreditSource {
            kind: CreditKind::RechargeOrder,
            reference: reference.into(),
        },
    }
}

fn granted(lease: &str, amount: i64) -> AccountEvent {
    AccountEvent::AllowanceGranted {
        lease_id: lease.into(),
        node: "n1".into(),
        amount: Money(amount),
    }
}

fn grant(lease: &str, requested: i64) -> AccountCommand {
    AccountCommand::GrantAllowance {
        lease_id: lease.into(),
        node: "n1".into(),
        requested: Money(requested),
    }
}

#[test]
fn a_reference_credits_at_most_once() {
    Given::with(())
        .given(vec![credited(500, "order-1")])
        .when(AccountCommand::Credit {
            amount: Money(500),
            source: CreditSource {
                kind: CreditKind::RechargeOrder,
                reference: "order-1".into(),
            },
        })
        .then_expect_events(vec![]);
}

#[test]
fn grant_beyond_what_is_available_is_refused_and_says_what_is() {
    Given::with(())
        .given(vec![credited(1000, "o1"), granted("a", 700)])
        .when(grant("b", 500))
        .then_expect_error(DomainError::InsufficientBalance {
            available: Money(300),
        });
    Given::with(())
        .given(vec![credited(1000, "o1"), granted("a", 700)])
        .when(grant("b", 300))
        .then_expect_events(vec![granted("b", 300)]);
}

#[test]
fn no_grant_when_everything_is_leased_or_spent() {
    Given::with(())
        .given(vec![credited(1000, "o1"), granted("a", 1000)])
        .when(grant("b", 1))
        .then_expect_error(DomainError::InsufficientBalance {
            available: Money(0),
        });
    Given::with(())
        .given_no_previous_events()
        .when(grant("a", 1))
        .then_expect_error(DomainError::InsufficientBalance {
            available: Money(0),
        });
}

#[test]
fn settled_usage_frees_the_lease_and_lowers_the_balance() {
    // 1000 credited, 600 leased, 400 used and settled: balance 600, lease holds 200,
    // so 400 more can be granted.
    Given::with(())
        .given(vec![
            credited(1000, "o1"),
            granted("a", 600),
            AccountEvent::UsageSettled {
                lease_id: "a".into(),
                used: Money(400),
                calls: 4,
            },
        ])
        .when(grant("b", 400))
        .then_expect_events(vec![granted("b", 400)]);
}

#[test]
fn release_returns_the_unused_allowance() {
    Given::with(())
        .given(vec![credited(1000, "o1"), granted("a", 600)])
        .when(AccountCommand::ReleaseAllowance {
            lease_id: "a".into(),
        })
        .then_expect_events(vec![AccountEvent::AllowanceReleased {
            lease_id: "a".into(),
            amount: Money(600),
        }]);
    Given::with(())
        .given(vec![credited(1000, "o1")])
        .when(AccountCommand::ReleaseAllowance {
            lease_id: "gone".into(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn usage_on_a_released_lease_still_settles() {
    Given::with(())
        .given(vec![
            credited(1000, "o1"),
            granted("a", 600),
            AccountEvent::AllowanceReleased {
                lease_id: "a".into(),
                amount: Money(600),
            },
        ])
        .when(AccountCommand::SettleUsage {
            lease_id: "a".into(),
            used_total: Money(50),
            calls_total: 1,
        })
        .then_expect_events(vec![AccountEvent::UsageSettled {
            lease_id: "a".into(),
            used: Money(50),
            calls: 1,
        }]);
}

fn settled(lease: &str, used: i64, calls: u64) -> AccountEvent {
    AccountEvent::UsageSettled {
        lease_id: lease.into(),
        used: Money(used),
        calls,
    }
}

#[test]
fn settlements_are_totals_so_a_repeated_one_charges_nothing_twice() {
    // The replica reports 80 in total after 50 were settled: 30 more are due.
    Given::with(())
        .given(vec![
            credited(1000, "o1"),
            granted("a", 600),
            settled("a", 50, 1),
        ])
        .when(AccountCommand::SettleUsage {
            lease_id: "a".into(),
            used_total: Money(80),
            calls_total: 2,
        })
        .then_expect_events(vec![settled("a", 30, 1)]);
    // The same total again (a retry after a timeout) changes nothing.
    Given::with(())
        .given(vec![
            credited(1000, "o1"),
            granted("a", 600),
            settled("a", 50, 1),
            settled("a", 30, 1),
        ])
        .when(AccountCommand::SettleUsage {
            lease_id: "a".into(),
            used_total: Money(80),
            calls_total: 2,
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_dead_replicas_lease_is_settled_from_its_metered_calls_and_released_once() {
    let given = vec![credited(1000, "o1"), granted("a", 600), settled("a", 50, 1)];
    Given::with(())
        .given(given.clone())
        .when(AccountCommand::ReclaimLease {
            lease_id: "a".into(),
            used_total: Money(120),
            calls_total: 3,
        })
        .then_expect_events(vec![
            settled("a", 70, 2),
            AccountEvent::AllowanceReleased {
                lease_id: "a".into(),
                // 600 granted − 120 used
                amount: Money(480),
            },
        ]);
    // Two replicas reclaiming at once: the second finds nothing left to do.
    let mut after = given;
    after.push(settled("a", 70, 2));
    after.push(AccountEvent::AllowanceReleased {
        lease_id: "a".into(),
        amount: Money(480),
    });
    Given::with(())
        .given(after)
        .when(AccountCommand::ReclaimLease {
            lease_id: "a".into(),
            used_total: Money(120),
            calls_total: 3,
        })
        .then_expect_events(vec![]);
}

#[test]
fn import_total_credits_only_the_difference() {
    let first = AccountEvent::Credited {
        amount: Money(100),
        source: CreditSource {
            kind: CreditKind::Import,
            reference: "import:100".into(),
        },
    };
    Given::with(())
        .given(vec![first.clone()])
        .when(AccountCommand::SetImportedTotal { total: Money(100) })
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![first.clone()])
        .when(AccountCommand::SetImportedTotal { total: Money(150) })
        .then_expect_events(vec![AccountEvent::Credited {
            amount: Money(50),
            source: CreditSource {
                kind: CreditKind::Import,
                reference: "import:150".into(),
            },
        }]);
    Given::with(())
        .given(vec![first])
        .when(AccountCommand::SetImportedTotal { total: Money(40) })
        .then_expect_events(vec![AccountEvent::Adjusted {
            amount: Money(-60),
            reason: "import: balance lowered".into(),
        }]);
}

#[test]
fn credit_must_be_positive_and_adjustment_needs_a_reason() {
    Given::with(())
        .given_no_previous_events()
        .when(AccountCommand::Credit {
            amount: Money(0),
            source: CreditSource {
                kind: CreditKind::Voucher,
                reference: "v".into(),
            },
        })
        .then_expect_error_message("invalid amount: must be positive");
    Given::with(())
        .given_no_previous_events()
        .when(AccountCommand::Adjust {
            amount: Money(5),
            reason: " ".into(),
        })
        .then_expect_error_message("invalid reason: must be given");
}

fn refund(refund_id: &str, amount: i64) -> AccountCommand {
    AccountCommand::Refund {
        order_id: "o1".into(),
        refund_id: refund_id.into(),
        amount: Money(amount),
        paid: Money(1000),
    }
}

fn refunded(refund_id: &str, amount: i64) -> AccountEvent {
    AccountEvent::Refunded {
        order_id: "o1".into(),
        refund_id: refund_id.into(),
        amount: Money(amount),
    }
}

#[test]
fn a_debit_adjustment_takes_only_what_no_replica_holds() {
    let adjust = |amount: i64| AccountCommand::Adjust {
        amount: Money(amount),
        reason: "correction".into(),
    };
    Given::with(())
        .given(vec![credited(1000, "o1"), granted("a", 700)])
        .when(adjust(-301))
        .then_expect_error(DomainError::InsufficientBalance {
            available: Money(300),
        });
    Given::with(())
        .given(vec![credited(1000, "o1"), granted("a", 700)])
        .when(adjust(-300))
        .then_expect_events(vec![AccountEvent::Adjusted {
            amount: Money(-300),
            reason: "correction".into(),
        }]);
    // A credit adjustment needs nothing available.
    Given::with(())
        .given_no_previous_events()
        .when(adjust(5))
        .then_expect_events(vec![AccountEvent::Adjusted {
            amount: Money(5),
            reason: "correction".into(),
        }]);
}

#[test]
fn a_refund_debits_once_per_refund_id() {
    Given::with(())
        .given(vec![credited(1000, "order:o1")])
        .when(refund("r1", 400))
        .then_expect_events(vec![refunded("r1", 400)]);
    Given::with(())
        .given(vec![credited(1000, "order:o1"), refunded("r1", 400)])
        .when(refund("r1", 400))
        .then_expect_events(vec![]);
}

#[test]
fn refunds_of_an_order_never_exceed_what_it_paid() {
    Given::with(())
        .given(vec![credited(5000, "order:o1"), refunded("r1", 600)])
        .when(refund("r2", 401))
        .then_expect_error_message(
            "invalid amount: at most 0.000400 of this order can still be refunded",
        );
    Given::with(())
        .given(vec![credited(5000, "order:o1"), refunded("r1", 600)])
        .when(refund("r2", 400))
        .then_expect_events(vec![refunded("r2", 400)]);
}

#[test]
fn spent_or_leased_money_is_not_refunded() {
    // 1000 paid, 700 of it spent: 300 is left to refund.
    Given::with(())
        .given(vec![credited(1000, "order:o1"), settled("a", 700, 7)])
        .when(refund("r1", 301))
        .then_expect_error(DomainError::InsufficientBalance {
            available: Money(300),
        });
    Given::with(())
        .given(vec![credited(1000, "order:o1"), granted("a", 900)])
        .when(refund("r1", 200))
        .then_expect_error(DomainError::InsufficientBalance {
            available: Money(100),
        });
}

#[test]
fn an_adjustment_beyond_the_maximum_amount_is_refused_and_nothing_is_stored() {
    let adjust = |amount: i64| AccountCommand::Adjust {
        amount: Money(amount),
        reason: "fat finger".into(),
    };
    for amount in [i64::MAX, i64::MIN, Money::MAX_AMOUNT.0 + 1] {
        Given::with(())
            .given(vec![credited(5_000_000, "o1")])
            .when(adjust(amount))
            .then_expect_error_message("invalid amount: must be at most 1000000000.000000 in size");
    }
    Given::with(())
        .given(vec![credited(5_000_000, "o1")])
        .when(adjust(Money::MAX_AMOUNT.0))
        .then_expect_events(vec![AccountEvent::Adjusted {
            amount: Money::MAX_AMOUNT,
            reason: "fat finger".into(),
        }]);
}

#[test]
fn no_credit_takes_the_balance_past_the_maximum_balance() {
    // 100 credits of the largest amount make the largest balance; one micro-unit more is
    // refused, whatever brings it.
    let full: Vec<AccountEvent> = (0..100)
        .map(|n| credited(Money::MAX_AMOUNT.0, &format!("o{n}")))
        .collect();
    let refused = "invalid amount: would take the balance past the largest allowed, \
                   100000000000.000000";
    Given::with(())
        .given(full.clone())
        .when(AccountCommand::Credit {
            amount: Money(1),
            source: CreditSource {
                kind: CreditKind::Voucher,
                reference: "v".into(),
            },
        })
        .then_expect_error_message(refused);
    Given::with(())
        .given(full.clone())
        .when(AccountCommand::Adjust {
            amount: Money(1),
            reason: "bonus".into(),
        })
        .then_expect_error_message(refused);
    Given::with(())
        .given(full)
        .when(AccountCommand::Adjust {
            amount: Money(-1),
            reason: "correction".into(),
        })
        .then_expect_events(vec![AccountEvent::Adjusted {
            amount: Money(-1),
            reason: "correction".into(),
        }]);
    Given::with(())
        .given_no_previous_events()
        .when(AccountCommand::SetImportedTotal {
            total: Money(i64::MAX),
        })
        .then_expect_error_message("invalid balance: must be at most 1000000000.000000 in size");
}

#[test]
fn an_old_event_beyond_the_maximum_moves_no_balance() {
    // Written by a version before the limit, which answered 500 for it.
    let mut account = Account::default();
    account.apply(credited(5_000_000, "o1"));
    account.apply(AccountEvent::Adjusted {
        amount: Money(i64::MAX),
        reason: "fat finger".into(),
    });
    account.apply(credited(1_000_000, "o2"));
    assert_eq!(account.balance(), Money(6_000_000));
}

#[test]
fn a_refund_lowers_the_balance() {
    let mut account = Account::default();
    account.apply(credited(1000, "order:o1"));
    account.apply(refunded("r1", 250));
    assert_eq!(account.balance(), Money(750));
    assert_eq!(account.refunded_of("o1"), Money(250));
    assert!(account.has_refund("r1"));
}

fn recall(lease: &str, needed: i64) -> AccountCommand {
    AccountCommand::RecallAllowances {
        lease_id: lease.into(),
        needed: Money(needed),
    }
}

#[test]
fn a_recall_asks_the_other_leases_only_when_they_hold_what_is_missing() {
    // Another lease holds most of the balance: the recall goes out.
    Given::with(())
        .given(vec![credited(1000, "o1"), granted("a", 900)])
        .when(recall("b", 500))
        .then_expect_events(vec![AccountEvent::AllowanceRecalled {
            by_lease: "b".into(),
            needed: Money(500),
        }]);
    // Enough came back meanwhile: nothing to recall, the asker's grant can be tried again.
    Given::with(())
        .given(vec![credited(1000, "o1"), granted("a", 200)])
        .when(recall("b", 500))
        .then_expect_events(vec![]);
    // Nobody else holds anything: the balance is spent.
    Given::with(())
        .given(vec![credited(1000, "o1"), granted("b", 800)])
        .when(recall("b", 500))
        .then_expect_error(DomainError::InsufficientBalance {
            available: Money(200),
        });
}

#[test]
fn a_lease_returns_at_most_what_it_holds_and_stays_open() {
    Given::with(())
        .given(vec![
            credited(1000, "o1"),
            granted("a", 600),
            AccountEvent::AllowanceReturned {
                lease_id: "a".into(),
                amount: Money(500),
            },
        ])
        .when(AccountCommand::ReturnAllowance {
            lease_id: "a".into(),
            amount: Money(300),
        })
        .then_expect_events(vec![AccountEvent::AllowanceReturned {
            lease_id: "a".into(),
            amount: Money(100),
        }]);
    // After returning, the lease can still be granted to and the rest is available.
    Given::with(())
        .given(vec![
            credited(1000, "o1"),
            granted("a", 600),
            AccountEvent::AllowanceReturned {
                lease_id: "a".into(),
                amount: Money(600),
            },
        ])
        .when(grant("b", 1000))
        .then_expect_events(vec![granted("b", 1000)]);
}

//! Given/when/then tests of the RechargeOrder rules.

use super::*;
use chrono::TimeZone;
use cqrs_es::test::TestFramework;

type Given = TestFramework<RechargeOrder>;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, minute, 0)
        .single()
        .expect("a valid time")
}

fn placed() -> RechargeEvent {
    RechargeEvent::Placed {
        tenant_id: "t1".into(),
        amount: Money(10_000_000),
        currency: "USD".into(),
        method: PaymentMethod::Stripe,
        placed_at: at(0),
        expires_at: at(30),
    }
}

fn place(amount: i64, currency: &str) -> RechargeCommand {
    RechargeCommand::Place {
        tenant_id: "t1".into(),
        amount: Money(amount),
        currency: currency.into(),
        method: PaymentMethod::Stripe,
        placed_at: at(0),
        expires_at: at(30),
    }
}

fn confirm(amount: i64, currency: &str, event: &str) -> RechargeCommand {
    RechargeCommand::ConfirmPayment {
        amount: Money(amount),
        currency: currency.into(),
        provider_ref: "cs_1".into(),
        provider_event: event.into(),
        paid_at: at(5),
        confirmed_by: "stripe".into(),
    }
}

fn paid(event: &str) -> RechargeEvent {
    RechargeEvent::Paid {
        amount: Money(10_000_000),
        currency: "USD".into(),
        provider_ref: "cs_1".into(),
        provider_event: event.into(),
        paid_at: at(5),
        confirmed_by: "stripe".into(),
    }
}

fn mismatch(received: i64, currency: &str, event: &str) -> RechargeEvent {
    RechargeEvent::PaymentMismatch {
        expected: Money(10_000_000),
        received: Money(received),
        currency: currency.into(),
        provider_ref: "cs_1".into(),
        provider_event: event.into(),
        at: at(5),
    }
}

fn failed(event: Option<&str>) -> RechargeEvent {
    RechargeEvent::Failed {
        reason: "card declined".into(),
        provider_event: event.map(String::from),
    }
}

fn fail(event: Option<&str>) -> RechargeCommand {
    RechargeCommand::Fail {
        reason: "card declined".into(),
        provider_event: event.map(String::from),
    }
}

#[test]
fn place_stores_the_currency_upper_case_and_trimmed() {
    Given::with(())
        .given_no_previous_events()
        .when(place(10_000_000, " usd "))
        .then_expect_events(vec![placed()]);
}

#[test]
fn an_order_is_placed_only_once() {
    Given::with(())
        .given(vec![placed()])
        .when(place(10_000_000, "USD"))
        .then_expect_error(DomainError::AlreadyExists("recharge order"));
}

#[test]
fn place_refuses_a_non_positive_amount_an_empty_currency_or_tenant_and_a_past_expiry() {
    Given::with(())
        .given_no_previous_events()
        .when(place(0, "USD"))
        .then_expect_error_message("invalid amount: must be positive");
    Given::with(())
        .given_no_previous_events()
        .when(place(-5, "USD"))
        .then_expect_error_message("invalid amount: must be positive");
    Given::with(())
        .given_no_previous_events()
        .when(place(10, "  "))
        .then_expect_error_message("invalid currency: must be given");
    Given::with(())
        .given_no_previous_events()
        .when(RechargeCommand::Place {
            tenant_id: " ".into(),
            amount: Money(10),
            currency: "USD".into(),
            method: PaymentMethod::Manual,
            placed_at: at(0),
            expires_at: at(30),
        })
        .then_expect_error_message("invalid tenant_id: must be given");
    Given::with(())
        .given_no_previous_events()
        .when(RechargeCommand::Place {
            tenant_id: "t1".into(),
            amount: Money(10),
            currency: "USD".into(),
            method: PaymentMethod::Sandbox,
            placed_at: at(10),
            expires_at: at(10),
        })
        .then_expect_error_message("invalid expires_at: must be after placed_at");
}

#[test]
fn every_other_command_needs_a_placed_order() {
    for command in [
        RechargeCommand::AttachCheckout {
            provider_ref: "cs_1".into(),
            pay_url: None,
        },
        confirm(10_000_000, "USD", "evt_1"),
        fail(None),
        RechargeCommand::Expire { now: at(40) },
    ] {
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(DomainError::NotFound("recharge order"));
    }
}

#[test]
fn a_checkout_is_attached_once_and_only_while_pending() {
    let created = RechargeEvent::CheckoutCreated {
        provider_ref: "cs_1".into(),
        pay_url: Some("https://pay.example/cs_1".into()),
    };
    let attach = RechargeCommand::AttachCheckout {
        provider_ref: "cs_1".into(),
        pay_url: Some("https://pay.example/cs_1".into()),
    };
    Given::with(())
        .given(vec![placed()])
        .when(attach.clone())
        .then_expect_events(vec![created.clone()]);
    Given::with(())
        .given(vec![placed(), created])
        .when(attach.clone())
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![placed(), paid("evt_1")])
        .when(attach)
        .then_expect_error_message("invalid state: order is not pending");
    Given::with(())
        .given(vec![placed()])
        .when(RechargeCommand::AttachCheckout {
            provider_ref: " ".into(),
            pay_url: None,
        })
        .then_expect_error_message("invalid provider_ref: must be given");
}

#[test]
fn a_matching_confirmation_pays_the_order_and_the_currency_is_compared_case_insensitively() {
    Given::with(())
        .given(vec![placed()])
        .when(confirm(10_000_000, "usd", "evt_1"))
        .then_expect_events(vec![paid("evt_1")]);
}

#[test]
fn a_confirmation_of_a_paid_order_changes_nothing_whatever_its_event_id() {
    Given::with(())
        .given(vec![placed(), paid("evt_1")])
        .when(confirm(10_000_000, "USD", "evt_1"))
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![placed(), paid("evt_1")])
        .when(confirm(10_000_000, "USD", "evt_2"))
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![placed(), paid("evt_1")])
        .when(confirm(1, "EUR", "evt_3"))
        .then_expect_events(vec![]);
}

#[test]
fn a_wrong_amount_or_currency_is_recorded_as_a_mismatch_and_not_paid() {
    Given::with(())
        .given(vec![placed()])
        .when(confirm(9_000_000, "USD", "evt_1"))
        .then_expect_events(vec![mismatch(9_000_000, "USD", "evt_1")]);
    Given::with(())
        .given(vec![placed()])
        .when(confirm(10_000_000, " eur", "evt_1"))
        .then_expect_events(vec![mismatch(10_000_000, "EUR", "evt_1")]);
}

#[test]
fn a_mismatch_leaves_the_order_payable_and_its_event_is_not_recorded_twice() {
    Given::with(())
        .given(vec![placed(), mismatch(9_000_000, "USD", "evt_1")])
        .when(confirm(9_000_000, "USD", "evt_1"))
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![placed(), mismatch(9_000_000, "USD", "evt_1")])
        .when(confirm(10_000_000, "USD", "evt_2"))
        .then_expect_events(vec![paid("evt_2")]);
}

#[test]
fn money_that_arrives_after_a_failure_or_expiry_is_still_credited() {
    Given::with(())
        .given(vec![placed(), failed(Some("evt_f"))])
        .when(confirm(10_000_000, "USD", "evt_1"))
        .then_expect_events(vec![paid("evt_1")]);
    Given::with(())
        .given(vec![placed(), RechargeEvent::Expired { at: at(30) }])
        .when(confirm(10_000_000, "USD", "evt_1"))
        .then_expect_events(vec![paid("evt_1")]);
}

#[test]
fn a_confirmation_needs_a_provider_event_id() {
    Given::with(())
        .given(vec![placed()])
        .when(confirm(10_000_000, "USD", " "))
        .then_expect_error_message("invalid provider_event: must be given");
}

#[test]
fn a_confirmation_reusing_the_failure_event_id_changes_nothing() {
    Given::with(())
        .given(vec![placed(), failed(Some("evt_f"))])
        .when(confirm(10_000_000, "USD", "evt_f"))
        .then_expect_events(vec![]);
}

#[test]
fn fail_applies_only_to_a_pending_order() {
    Given::with(())
        .given(vec![placed()])
        .when(fail(Some("evt_f")))
        .then_expect_events(vec![failed(Some("evt_f"))]);
    for given in [
        vec![placed(), paid("evt_1")],
        vec![placed(), failed(None)],
        vec![placed(), RechargeEvent::Expired { at: at(30) }],
    ] {
        Given::with(())
            .given(given)
            .when(fail(Some("evt_late")))
            .then_expect_events(vec![]);
    }
}

#[test]
fn a_failure_whose_event_was_already_seen_changes_nothing() {
    Given::with(())
        .given(vec![placed(), mismatch(9_000_000, "USD", "evt_1")])
        .when(fail(Some("evt_1")))
        .then_expect_events(vec![]);
}

#[test]
fn expire_applies_only_to_a_pending_order_whose_time_has_come() {
    Given::with(())
        .given(vec![placed()])
        .when(RechargeCommand::Expire { now: at(29) })
        .then_expect_error_message("invalid expires_at: the order has not expired yet");
    Given::with(())
        .given(vec![placed()])
        .when(RechargeCommand::Expire { now: at(30) })
        .then_expect_events(vec![RechargeEvent::Expired { at: at(30) }]);
    for given in [
        vec![placed(), paid("evt_1")],
        vec![placed(), failed(None)],
        vec![placed(), RechargeEvent::Expired { at: at(30) }],
    ] {
        Given::with(())
            .given(given)
            .when(RechargeCommand::Expire { now: at(45) })
            .then_expect_events(vec![]);
    }
}

#[test]
fn the_state_follows_the_events() {
    let mut order = RechargeOrder::default();
    assert!(!order.is_placed());
    assert_eq!(order.method(), None);
    order.apply(placed());
    order.apply(RechargeEvent::CheckoutCreated {
        provider_ref: "cs_1".into(),
        pay_url: None,
    });
    order.apply(mismatch(1, "USD", "evt_0"));
    assert!(order.is_placed());
    assert_eq!(order.state(), OrderState::Pending);
    assert!(order.has_seen_provider_event("evt_0"));
    order.apply(paid("evt_1"));
    assert_eq!(order.state(), OrderState::Paid);
    assert_eq!(order.tenant_id(), "t1");
    assert_eq!(order.amount(), Money(10_000_000));
    assert_eq!(order.currency(), "USD");
    assert_eq!(order.method(), Some(PaymentMethod::Stripe));
    assert_eq!(order.provider_ref(), Some("cs_1"));
    assert_eq!(order.expires_at(), Some(at(30)));
}

fn refund(refund_id: &str, amount: i64) -> RechargeCommand {
    RechargeCommand::Refund {
        refund_id: refund_id.into(),
        amount: Money(amount),
        reason: "customer asked".into(),
        refunded_at: at(20),
    }
}

fn refunded(refund_id: &str, amount: i64) -> RechargeEvent {
    RechargeEvent::Refunded {
        refund_id: refund_id.into(),
        amount: Money(amount),
        reason: "customer asked".into(),
        at: at(20),
    }
}

#[test]
fn a_paid_order_is_refunded_at_most_what_it_received() {
    Given::with(())
        .given(vec![placed(), paid("evt_1")])
        .when(refund("r1", 4_000_000))
        .then_expect_events(vec![refunded("r1", 4_000_000)]);
    Given::with(())
        .given(vec![placed(), paid("evt_1"), refunded("r1", 4_000_000)])
        .when(refund("r2", 6_000_001))
        .then_expect_error_message(
            "invalid amount: at most 6.000000 of this order can still be refunded",
        );
    Given::with(())
        .given(vec![placed(), paid("evt_1"), refunded("r1", 4_000_000)])
        .when(refund("r2", 6_000_000))
        .then_expect_events(vec![refunded("r2", 6_000_000)]);
}

#[test]
fn a_refund_is_recorded_once_and_only_on_a_paid_order() {
    Given::with(())
        .given(vec![placed(), paid("evt_1"), refunded("r1", 10_000_000)])
        .when(refund("r1", 10_000_000))
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![placed()])
        .when(refund("r1", 1))
        .then_expect_error_message("invalid state: only a paid order can be refunded");
    Given::with(())
        .given(vec![placed(), paid("evt_1")])
        .when(RechargeCommand::Refund {
            refund_id: "r1".into(),
            amount: Money(1),
            reason: " ".into(),
            refunded_at: at(20),
        })
        .then_expect_error_message("invalid reason: must be given");
}

#[test]
fn events_keep_their_wire_form() {
    let json = serde_json::to_value(failed(None)).expect("serializable");
    assert_eq!(
        json,
        serde_json::json!({"Failed": {"reason": "card declined"}})
    );
    let back: RechargeEvent =
        serde_json::from_value(json).expect("a failure without an event id reads back");
    assert_eq!(back, failed(None));
    let json = serde_json::to_value(placed()).expect("serializable");
    assert_eq!(json["Placed"]["method"], "stripe");
    assert_eq!(cqrs_es::DomainEvent::event_type(&paid("e")), "Paid");
}

#[test]
fn an_order_beyond_the_maximum_amount_is_refused() {
    Given::with(())
        .given_no_previous_events()
        .when(place(i64::MAX, "USD"))
        .then_expect_error_message("invalid amount: must be at most 1000000000.000000 in size");
}

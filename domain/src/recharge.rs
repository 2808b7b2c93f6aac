//! RechargeOrder: a tenant's order to add money to its balance, paid through one payment method.
//! The aggregate id is the order number, chosen by whoever places the order.
//!
//! The order records what the payment provider told us and decides whether that is a payment to
//! credit. It never credits the account itself: whoever sees the `Paid` event credits the tenant's
//! Account with the order number as the credit's reference, which makes that credit idempotent.
//!
//! Rules that matter for money:
//! - A confirmation is idempotent. Webhooks are delivered at least once and may reach several
//!   replicas at the same moment, so a confirmation for an order that is already paid, or one
//!   whose provider event was already recorded, changes nothing and is not an error.
//! - A confirmation whose amount or currency differs from the order is recorded as
//!   `PaymentMismatch` for finance to look at, and never credited.
//! - Money that arrives after the order expired or after an earlier attempt failed is still the
//!   customer's money: such an order becomes `Paid` and is credited.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::{DomainError, Money};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Stripe,
    /// A bank transfer or similar that an operator confirms by hand.
    Manual,
    /// A pretend provider for demos and tests: no money moves.
    Sandbox,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    #[default]
    Pending,
    /// Terminal: the order's amount was received and is to be credited.
    Paid,
    Failed,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RechargeCommand {
    Place {
        tenant_id: String,
        amount: Money,
        currency: String,
        method: PaymentMethod,
        placed_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    /// The payment provider's checkout was created (e.g. a Stripe Checkout Session).
    AttachCheckout {
        provider_ref: String,
        pay_url: Option<String>,
    },
    /// A payment confirmation: from a verified webhook, the sandbox, or an operator confirming a
    /// manual transfer. Idempotent; accepted from Pending, Failed and Expired (see the module
    /// documentation).
    ConfirmPayment {
        amount: Money,
        currency: String,
        provider_ref: String,
        /// The provider's id for this notification (e.g. a Stripe event id); a repeated id
        /// changes nothing.
        provider_event: String,
        paid_at: DateTime<Utc>,
        confirmed_by: String,
    },
    /// The provider reported the payment failed. Harmless on an order that is no longer pending.
    Fail {
        reason: String,
        provider_event: Option<String>,
    },
    Expire {
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RechargeEvent {
    Placed {
        tenant_id: String,
        amount: Money,
        /// Upper-case, trimmed.
        currency: String,
        method: PaymentMethod,
        placed_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    CheckoutCreated {
        provider_ref: String,
        pay_url: Option<String>,
    },
    Paid {
        amount: Money,
        currency: String,
        provider_ref: String,
        provider_event: String,
        paid_at: DateTime<Utc>,
        confirmed_by: String,
    },
    /// A confirmation whose amount or currency differs from the order: refused, flagged for
    /// finance, never credited. `currency` is the one received (upper-case, trimmed).
    PaymentMismatch {
        expected: Money,
        received: Money,
        currency: String,
        provider_ref: String,
        provider_event: String,
        at: DateTime<Utc>,
    },
    Failed {
        reason: String,
        /// The provider event that reported the failure, remembered so that it is not applied
        /// twice. Absent for failures no provider event reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_event: Option<String>,
    },
    Expired {
        at: DateTime<Utc>,
    },
}
crate::domain_event!(RechargeEvent, "1");

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RechargeOrder {
    placed: bool,
    state: OrderState,
    tenant_id: String,
    amount: Money,
    currency: String,
    method: Option<PaymentMethod>,
    provider_ref: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    /// Provider event ids that produced an event on this order (Paid, PaymentMismatch or
    /// Failed): a redelivered notification is recognised by its id.
    seen_provider_events: BTreeSet<String>,
}

impl RechargeOrder {
    pub fn is_placed(&self) -> bool {
        self.placed
    }
    pub fn state(&self) -> OrderState {
        self.state
    }
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
    pub fn amount(&self) -> Money {
        self.amount
    }
    /// Upper-case, trimmed.
    pub fn currency(&self) -> &str {
        &self.currency
    }
    /// `None` only before the order is placed.
    pub fn method(&self) -> Option<PaymentMethod> {
        self.method
    }
    /// The reference of the provider's checkout, once one was created.
    pub fn provider_ref(&self) -> Option<&str> {
        self.provider_ref.as_deref()
    }
    /// `None` only before the order is placed.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }
    /// Whether a provider event already produced an event on this order. After a confirmation
    /// that left the order unpaid, this tells a recorded mismatch from an unknown order.
    pub fn has_seen_provider_event(&self, provider_event: &str) -> bool {
        self.seen_provider_events.contains(provider_event)
    }
}

fn normalize_currency(currency: &str) -> String {
    currency.trim().to_ascii_uppercase()
}

impl Aggregate for RechargeOrder {
    const TYPE: &'static str = crate::aggregate_types::RECHARGE_ORDER;
    type Command = RechargeCommand;
    type Event = RechargeEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: RechargeCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            RechargeCommand::Place {
                tenant_id,
                amount,
                currency,
                method,
                placed_at,
                expires_at,
            } => {
                if self.placed {
                    return Err(DomainError::AlreadyExists("recharge order"));
                }
                if tenant_id.trim().is_empty() {
                    return Err(DomainError::invalid("tenant_id", "must be given"));
                }
                if !amount.is_positive() {
                    return Err(DomainError::invalid("amount", "must be positive"));
                }
                let currency = normalize_currency(&currency);
                if currency.is_empty() {
                    return Err(DomainError::invalid("currency", "must be given"));
                }
                if expires_at <= placed_at {
                    return Err(DomainError::invalid(
                        "expires_at",
                        "must be after placed_at",
                    ));
                }
                RechargeEvent::Placed {
                    tenant_id,
                    amount,
                    currency,
                    method,
                    placed_at,
                    expires_at,
                }
            }
            _ if !self.placed => return Err(DomainError::NotFound("recharge order")),
            RechargeCommand::AttachCheckout {
                provider_ref,
                pay_url,
            } => {
                if self.state != OrderState::Pending {
                    return Err(DomainError::invalid("state", "order is not pending"));
                }
                if provider_ref.trim().is_empty() {
                    return Err(DomainError::invalid("provider_ref", "must be given"));
                }
                if self.provider_ref.as_deref() == Some(provider_ref.as_str()) {
                    return Ok(());
                }
                RechargeEvent::CheckoutCreated {
                    provider_ref,
                    pay_url,
                }
            }
            RechargeCommand::ConfirmPayment {
                amount,
                currency,
                provider_ref,
                provider_event,
                paid_at,
                confirmed_by,
            } => {
                // Paid is terminal: any later confirmation, of this payment or another, is a
                // redelivery or a second payment for finance to refund; it never credits again.
                if self.state == OrderState::Paid {
                    return Ok(());
                }
                if provider_event.trim().is_empty() {
                    return Err(DomainError::invalid("provider_event", "must be given"));
                }
                if self.seen_provider_events.contains(&provider_event) {
                    return Ok(());
                }
                let currency = normalize_currency(&currency);
                if amount != self.amount || currency != self.currency {
                    // Not an error: the fact that money arrived must be stored.
                    RechargeEvent::PaymentMismatch {
                        expected: self.amount,
                        received: amount,
                        currency,
                        provider_ref,
                        provider_event,
                        at: paid_at,
                    }
                } else {
                    RechargeEvent::Paid {
                        amount,
                        currency,
                        provider_ref,
                        provider_event,
                        paid_at,
                        confirmed_by,
                    }
                }
            }
            RechargeCommand::Fail {
                reason,
                provider_event,
            } => {
                // Failure webhooks may arrive late or out of order; on a settled order they
                // change nothing.
                if self.state != OrderState::Pending {
                    return Ok(());
                }
                if let Some(id) = &provider_event {
                    if self.seen_provider_events.contains(id) {
                        return Ok(());
                    }
                }
                if reason.trim().is_empty() {
                    return Err(DomainError::invalid("reason", "must be given"));
                }
                RechargeEvent::Failed {
                    reason,
                    provider_event,
                }
            }
            RechargeCommand::Expire { now } => {
                if self.state != OrderState::Pending {
                    return Ok(());
                }
                if self.expires_at.is_some_and(|expires_at| now < expires_at) {
                    return Err(DomainError::invalid(
                        "expires_at",
                        "the order has not expired yet",
                    ));
                }
                RechargeEvent::Expired { at: now }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: RechargeEvent) {
        match event {
            RechargeEvent::Placed {
                tenant_id,
                amount,
                currency,
                method,
                expires_at,
                ..
            } => {
                self.placed = true;
                self.state = OrderState::Pending;
                self.tenant_id = tenant_id;
                self.amount = amount;
                self.currency = currency;
                self.method = Some(method);
                self.expires_at = Some(expires_at);
            }
            RechargeEvent::CheckoutCreated { provider_ref, .. } => {
                self.provider_ref = Some(provider_ref);
            }
            RechargeEvent::Paid { provider_event, .. } => {
                self.state = OrderState::Paid;
                self.seen_provider_events.insert(provider_event);
            }
            RechargeEvent::PaymentMismatch { provider_event, .. } => {
                self.seen_provider_events.insert(provider_event);
            }
            RechargeEvent::Failed { provider_event, .. } => {
                self.state = OrderState::Failed;
                self.seen_provider_events.extend(provider_event);
            }
            RechargeEvent::Expired { .. } => self.state = OrderState::Expired,
        }
    }
}

#[cfg(test)]
mod tests {
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
}

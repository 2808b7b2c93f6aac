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
    /// Records a refund of part or all of a paid order, after the tenant's Account was debited
    /// with the same `refund_id`. Idempotent by `refund_id`; the refunds of an order never add up
    /// to more than it received.
    Refund {
        refund_id: String,
        amount: Money,
        reason: String,
        refunded_at: DateTime<Utc>,
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
    Refunded {
        refund_id: String,
        amount: Money,
        reason: String,
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
    /// What the order received, once paid.
    #[serde(default)]
    paid: Money,
    #[serde(default)]
    refunded: Money,
    #[serde(default)]
    refund_ids: BTreeSet<String>,
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
    /// What the order received; zero unless paid.
    pub fn paid(&self) -> Money {
        self.paid
    }
    /// What has been refunded of the order so far.
    pub fn refunded(&self) -> Money {
        self.refunded
    }
    /// Whether a refund with this id is recorded.
    pub fn has_refund(&self, refund_id: &str) -> bool {
        self.refund_ids.contains(refund_id)
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
                amount.check_amount("amount")?;
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
            RechargeCommand::Refund {
                refund_id,
                amount,
                reason,
                refunded_at,
            } => {
                if self.refund_ids.contains(&refund_id) {
                    return Ok(());
                }
                if self.state != OrderState::Paid {
                    return Err(DomainError::invalid(
                        "state",
                        "only a paid order can be refunded",
                    ));
                }
                if refund_id.trim().is_empty() {
                    return Err(DomainError::invalid("refund_id", "must be given"));
                }
                if reason.trim().is_empty() {
                    return Err(DomainError::invalid("reason", "must be given"));
                }
                if !amount.is_positive() {
                    return Err(DomainError::invalid("amount", "must be positive"));
                }
                let refundable = self.paid - self.refunded;
                if amount > refundable {
                    return Err(DomainError::invalid(
                        "amount",
                        format!("at most {refundable} of this order can still be refunded"),
                    ));
                }
                RechargeEvent::Refunded {
                    refund_id,
                    amount,
                    reason,
                    at: refunded_at,
                }
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
            RechargeEvent::Paid {
                provider_event,
                amount,
                ..
            } => {
                self.state = OrderState::Paid;
                self.paid = amount;
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
            RechargeEvent::Refunded {
                refund_id, amount, ..
            } => {
                self.refunded = self.refunded + amount;
                self.refund_ids.insert(refund_id);
            }
        }
    }
}

#[cfg(test)]
#[path = "recharge_tests.rs"]
mod tests;

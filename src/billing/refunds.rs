//! Refunds of paid top-up orders, decided by an operator.
//!
//! A refund is two commands, in this order:
//! 1. `Account::Refund` debits the tenant's balance. The Account decides everything that can
//!    refuse a refund — the order's refunds never exceed what it received, and only money not
//!    yet spent (nor held by replicas for calls in flight) goes back — in one optimistic-locked
//!    command, so two submissions racing each other cannot both pass. The refund id makes the
//!    debit idempotent: a form submitted twice debits once.
//! 2. `RechargeOrder::Refund` records the refund on the order (its history and records), with the
//!    same refund id, so it is recorded once too.
//!
//! For an order paid by card, between the two the money goes back through Stripe's refund API
//! (`payments::stripe::refund`), with the refund id as the idempotency key. Manual transfers
//! (the operator sends the money back) and sandbox orders have no such step.
//!
//! If the process stops (or Stripe does not answer) after the debit, running the same refund
//! again (same refund id) finds the debit done, asks Stripe again — which replays rather than
//! repeats the refund — and records it on the order. While such a refund is [`unfinished`], a
//! refund with another id is refused with the unfinished one's id, so the balance is never
//! debited twice for one refund the operator meant.

use chrono::Utc;
use modelrouter_domain::account::{AccountCommand, AccountEvent};
use modelrouter_domain::aggregate_types::ACCOUNT;
use modelrouter_domain::metadata::Metadata;
use modelrouter_domain::recharge::{OrderState, PaymentMethod, RechargeCommand, RechargeOrder};
use modelrouter_domain::{DomainError, Money};

use super::orders::TopUpError;
use crate::payments::stripe::{RefundOrder, Stripe};
use crate::store::{CommandError, Commands};

/// A refund an operator asks for.
pub struct RefundRequest<'a> {
    pub order_id: &'a str,
    /// Chosen by the form or the API client; a repeated id is the same refund.
    pub refund_id: &'a str,
    pub amount: Money,
    pub reason: &'a str,
}

/// What the order has been refunded in all, after this refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refunded {
    pub paid: Money,
    pub refunded: Money,
}

fn invalid(field: &'static str, message: impl Into<String>) -> TopUpError {
    TopUpError::Invalid {
        field,
        message: message.into(),
    }
}

/// Refunds part or all of a paid order (see the module documentation). `stripe` is the
/// configured Stripe account, needed for orders paid by card.
pub async fn refund(
    commands: &Commands,
    stripe: Option<&Stripe>,
    request: RefundRequest<'_>,
    currency: &str,
    metadata: &Metadata,
) -> Result<Refunded, TopUpError> {
    let RefundRequest {
        order_id,
        refund_id,
        amount,
        reason,
    } = request;
    let order = commands.recharges.load(order_id).await?;
    if !order.is_placed() {
        return Err(TopUpError::NotFound);
    }
    if order.state() != OrderState::Paid {
        return Err(invalid("order", "Only a paid order can be refunded."));
    }
    let card = match (order.method(), stripe, order.provider_ref()) {
        (Some(PaymentMethod::Stripe), Some(stripe), Some(session)) => {
            Some((stripe, session.to_string()))
        }
        (Some(PaymentMethod::Stripe), None, _) => {
            return Err(invalid(
                "order",
                "This order was paid by card, and Stripe is not configured on this gateway.",
            ))
        }
        (Some(PaymentMethod::Stripe), _, None) => {
            return Err(invalid(
                "order",
                "This card payment has no Stripe reference.",
            ))
        }
        _ => None,
    };
    if refund_id.trim().is_empty() || refund_id.len() > 100 {
        return Err(invalid(
            "refund_id",
            "Send a refund id of 1 to 100 characters.",
        ));
    }
    if reason.trim().is_empty() {
        return Err(invalid("reason", "Give the reason for the refund."));
    }
    if !amount.is_positive() {
        return Err(invalid("amount", "Enter the amount to refund."));
    }
    if let Some(unfinished) = unfinished(commands, &order, order_id).await? {
        if unfinished.refund_id != refund_id {
            return Err(invalid(
                "refund_id",
                format!(
                    "Refund {} of {} {currency} was taken from the balance but is not finished \
                     (Stripe did not confirm it). Send that refund again to finish it first.",
                    unfinished.refund_id,
                    crate::portal::format_money(unfinished.amount.0)
                ),
            ));
        }
    }
    let debit = AccountCommand::Refund {
        order_id: order_id.to_string(),
        refund_id: refund_id.to_string(),
        amount,
        paid: order.paid(),
    };
    match commands
        .accounts
        .execute(order.tenant_id(), debit, metadata)
        .await
    {
        Err(CommandError::Domain(DomainError::InsufficientBalance { available })) => {
            return Err(invalid(
                "amount",
                format!(
                    "Only {} {currency} of the tenant's balance is unspent: money already spent \
                     cannot be refunded.",
                    crate::portal::format_money(available.max(Money::ZERO).0)
                ),
            ));
        }
        Err(CommandError::Domain(DomainError::Invalid { field, reason })) => {
            return Err(invalid(field, capitalized(&reason)));
        }
        other => other?,
    }
    if let Some((stripe, session_id)) = card {
        let card_refund = RefundOrder {
            session_id: &session_id,
            amount,
            currency: order.currency(),
            order_id,
            refund_id,
        };
        stripe.refund(&card_refund).await.map_err(|error| {
            invalid(
                "order",
                format!(
                    "The balance was debited, but Stripe did not confirm the refund ({error}). \
                     Send the same refund again to finish it."
                ),
            )
        })?;
    }
    let record = RechargeCommand::Refund {
        refund_id: refund_id.to_string(),
        amount,
        reason: reason.trim().to_string(),
        refunded_at: Utc::now(),
    };
    commands
        .recharges
        .execute(order_id, record, metadata)
        .await?;
    let order = commands.recharges.load(order_id).await?;
    Ok(Refunded {
        paid: order.paid(),
        refunded: order.refunded(),
    })
}

/// A refund the tenant's Account took that the order does not record yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub refund_id: String,
    pub amount: Money,
}

/// The order's refund that was debited but not recorded — the process stopped, or Stripe did
/// not answer, between the two steps — if there is one.
pub async fn unfinished(
    commands: &Commands,
    order: &RechargeOrder,
    order_id: &str,
) -> Result<Option<Unfinished>, TopUpError> {
    let tenant = order.tenant_id();
    let account = commands.accounts.load(tenant).await?;
    if account.refunded_of(order_id) <= order.refunded() {
        return Ok(None);
    }
    // Rare (a refund interrupted), so reading the Account's events is affordable here.
    for event in commands.db.events_of(ACCOUNT, tenant).await?.iter().rev() {
        let Ok(AccountEvent::Refunded {
            order_id: of,
            refund_id,
            amount,
        }) = serde_json::from_value::<AccountEvent>(event.payload.clone())
        else {
            continue;
        };
        if of == order_id && !order.has_refund(&refund_id) {
            return Ok(Some(Unfinished { refund_id, amount }));
        }
    }
    Ok(None)
}

fn capitalized(reason: &str) -> String {
    let mut text = reason.to_string();
    if let Some(first) = text.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{text}.")
}

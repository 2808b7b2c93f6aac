//! Top-up orders from placing to crediting, whatever the payment method:
//!
//! 1. `place` records the order (`RechargeOrder::Placed`) and, for Stripe, creates the hosted
//!    checkout (`CheckoutCreated`); the sandbox points at the built-in pay page; a manual
//!    transfer waits for an operator.
//! 2. `confirm` records a payment (`ConfirmPayment`): the aggregate decides — paid, or refused
//!    and flagged when the amount or currency differs, or nothing when it already knew. Only a
//!    paid order is credited.
//! 3. `credit` credits the Account with the order's reference; the Account credits a reference
//!    once, so two replicas confirming the same webhook at the same moment credit it once.
//! 4. `reconcile` finishes what a crash interrupted (paid but not credited, redeemed but not
//!    credited); `expire_due` expires pending orders past their time.

use chrono::{DateTime, Utc};
use modelrouter_domain::account::{AccountCommand, CreditKind, CreditSource};
use modelrouter_domain::metadata::Metadata;
use modelrouter_domain::prepaid::{code_id, PrepaidCommand};
use modelrouter_domain::recharge::{OrderState, PaymentMethod, RechargeCommand};
use modelrouter_domain::{DomainError, Money};
use modelrouter_projections::sql::recharges::{self, code_reference, order_reference, OrderQuery};
use modelrouter_projections::sql::{self, Projection};
use rand::Rng;

use crate::gateway::AppState;
use crate::payments::{CheckoutRequest, PaymentError};
use crate::store::{CommandError, Commands};

#[derive(Debug, thiserror::Error)]
pub enum TopUpError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no such order")]
    NotFound,
    #[error("{0}")]
    Payment(#[from] PaymentError),
    #[error("{0}")]
    Command(#[from] CommandError),
    #[error("database: {0}")]
    Store(#[from] sqlx::Error),
}

impl TopUpError {
    fn invalid(field: &'static str, message: impl Into<String>) -> TopUpError {
        TopUpError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// A new order number: `R-` the UTC date and six random Crockford base32 characters.
pub fn new_order_id(now: DateTime<Utc>) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..6)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("R-{}-{suffix}", now.format("%Y%m%d"))
}

/// The methods this platform offers, in the order the recharge page lists them.
pub fn methods(state: &AppState) -> Vec<PaymentMethod> {
    let settings = &state.settings.payments;
    let mut methods = Vec::new();
    if settings.stripe.is_some() {
        methods.push(PaymentMethod::Stripe);
    }
    if settings.manual_instructions.is_some() {
        methods.push(PaymentMethod::Manual);
    }
    if settings.sandbox {
        methods.push(PaymentMethod::Sandbox);
    }
    methods
}

pub fn method_name(method: &str) -> &'static str {
    match method {
        "stripe" => "Card (Stripe)",
        "manual" => "Bank transfer",
        "sandbox" => "Sandbox (test payment)",
        _ => "Other",
    }
}

/// An order's state as people read it: a paid order says when it was refunded in part or whole.
pub fn state_text(order: &recharges::OrderRow) -> String {
    let paid = order.paid_amount.unwrap_or(order.amount);
    match order.refunded {
        0 => order.state.clone(),
        refunded if refunded >= paid => "refunded".into(),
        _ => "partly refunded".into(),
    }
}

/// A placed order and where to send the customer to pay it.
pub struct Placed {
    pub order_id: String,
    /// The provider's hosted page, or the sandbox pay page; None for a manual transfer.
    pub pay_url: Option<String>,
}

/// Places an order of `amount` paid by `method`. `base_url` is how the customer reaches this
/// gateway (for the provider's return links).
pub async fn place(
    state: &AppState,
    tenant_id: &str,
    email: &str,
    amount: Money,
    method: PaymentMethod,
    base_url: &str,
    metadata: &Metadata,
) -> Result<Placed, TopUpError> {
    let settings = &state.settings.payments;
    if !methods(state).contains(&method) {
        return Err(TopUpError::invalid(
            "method",
            "This payment method is not offered.",
        ));
    }
    if amount < settings.min_order || amount > settings.max_order {
        return Err(TopUpError::invalid(
            "amount",
            format!(
                "Enter an amount from {} to {} {}.",
                crate::portal::format_money(settings.min_order.0),
                crate::portal::format_money(settings.max_order.0),
                state.settings.currency
            ),
        ));
    }
    let now = Utc::now();
    let order_id = new_order_id(now);
    let expires_at =
        now + chrono::Duration::from_std(settings.order_ttl).unwrap_or(chrono::Duration::hours(1));
    let place = RechargeCommand::Place {
        tenant_id: tenant_id.to_string(),
        amount,
        currency: state.settings.currency.clone(),
        method,
        placed_at: now,
        expires_at,
    };
    state
        .commands
        .recharges
        .execute(&order_id, place, metadata)
        .await?;
    let pay_url = match method {
        PaymentMethod::Manual => None,
        PaymentMethod::Sandbox => Some(format!("/portal/recharge/sandbox/{order_id}")),
        PaymentMethod::Stripe => {
            let stripe = state
                .stripe
                .as_ref()
                .ok_or_else(|| TopUpError::invalid("method", "Stripe is not configured."))?;
            let order_page = format!("{base_url}/portal/recharge/orders/{order_id}");
            let checkout = stripe
                .create_checkout(&CheckoutRequest {
                    order_id: order_id.clone(),
                    tenant_id: tenant_id.to_string(),
                    customer_email: email.to_string(),
                    amount,
                    currency: state.settings.currency.clone(),
                    description: format!("Model Router balance top-up {order_id}"),
                    success_url: format!("{order_page}?returned=1"),
                    cancel_url: format!("{order_page}?cancelled=1"),
                    expires_at,
                })
                .await;
            let checkout = match checkout {
                Ok(checkout) => checkout,
                Err(error) => {
                    // The order cannot be paid: say so in its history rather than leave it open.
                    let fail = RechargeCommand::Fail {
                        reason: format!("checkout could not be created: {error}"),
                        provider_event: None,
                    };
                    state
                        .commands
                        .recharges
                        .execute(&order_id, fail, metadata)
                        .await?;
                    return Err(error.into());
                }
            };
            let attach = RechargeCommand::AttachCheckout {
                provider_ref: checkout.provider_ref,
                pay_url: Some(checkout.redirect_url.clone()),
            };
            state
                .commands
                .recharges
                .execute(&order_id, attach, metadata)
                .await?;
            Some(checkout.redirect_url)
        }
    };
    Ok(Placed { order_id, pay_url })
}

/// A payment someone says was made for an order.
pub struct Confirmation {
    pub amount: Money,
    pub currency: String,
    pub provider_ref: String,
    pub provider_event: String,
    pub paid_at: DateTime<Utc>,
    pub confirmed_by: String,
}

/// What a confirmation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// The order is paid and its amount credited (now or before).
    Paid,
    /// The amount or currency differed: refused and flagged, nothing credited.
    Refused,
}

/// Records a payment and, when the order is paid, credits it.
pub async fn confirm(
    commands: &Commands,
    order_id: &str,
    confirmation: Confirmation,
    metadata: &Metadata,
) -> Result<Confirmed, TopUpError> {
    let command = RechargeCommand::ConfirmPayment {
        amount: confirmation.amount,
        currency: confirmation.currency,
        provider_ref: confirmation.provider_ref,
        provider_event: confirmation.provider_event,
        paid_at: confirmation.paid_at,
        confirmed_by: confirmation.confirmed_by,
    };
    match commands
        .recharges
        .execute(order_id, command, metadata)
        .await
    {
        Err(CommandError::Domain(DomainError::NotFound(_))) => return Err(TopUpError::NotFound),
        other => other?,
    }
    // The aggregate decided; read what.
    let order = commands.recharges.load(order_id).await?;
    if order.state() != OrderState::Paid {
        return Ok(Confirmed::Refused);
    }
    credit(
        commands,
        order_id,
        order.tenant_id(),
        order.amount(),
        metadata,
    )
    .await?;
    Ok(Confirmed::Paid)
}

/// Credits a paid order to its tenant's account; a second credit of the same order is nothing.
pub async fn credit(
    commands: &Commands,
    order_id: &str,
    tenant_id: &str,
    amount: Money,
    metadata: &Metadata,
) -> Result<(), TopUpError> {
    let credit = AccountCommand::Credit {
        amount,
        source: CreditSource {
            kind: CreditKind::RechargeOrder,
            reference: order_reference(order_id),
        },
    };
    commands
        .accounts
        .execute(tenant_id, credit, metadata)
        .await?;
    Ok(())
}

/// Records a failed payment; harmless for an order that is no longer pending.
pub async fn fail(
    commands: &Commands,
    order_id: &str,
    reason: String,
    provider_event: Option<String>,
    metadata: &Metadata,
) -> Result<(), TopUpError> {
    let command = RechargeCommand::Fail {
        reason,
        provider_event,
    };
    match commands
        .recharges
        .execute(order_id, command, metadata)
        .await
    {
        Err(CommandError::Domain(DomainError::NotFound(_))) => Err(TopUpError::NotFound),
        other => Ok(other?),
    }
}

/// Expires one order (a provider said its checkout expired, or its time passed).
pub async fn expire(
    commands: &Commands,
    order_id: &str,
    now: DateTime<Utc>,
    metadata: &Metadata,
) -> Result<(), TopUpError> {
    match commands
        .recharges
        .execute(order_id, RechargeCommand::Expire { now }, metadata)
        .await
    {
        Err(CommandError::Domain(DomainError::NotFound(_))) => Err(TopUpError::NotFound),
        Err(CommandError::Domain(DomainError::Invalid { .. })) => Ok(()),
        other => Ok(other?),
    }
}

/// Redeems a prepaid code for a tenant and credits it; returns the amount credited.
pub async fn redeem(
    commands: &Commands,
    tenant_id: &str,
    code: &str,
    metadata: &Metadata,
) -> Result<Money, TopUpError> {
    let id = code_id(code);
    let redeem = PrepaidCommand::Redeem {
        tenant_id: tenant_id.to_string(),
        now: Utc::now(),
    };
    match commands.prepaid.execute(&id, redeem, metadata).await {
        Err(CommandError::Domain(DomainError::NotFound(_))) => {
            return Err(TopUpError::invalid("code", "This code is not valid."))
        }
        Err(CommandError::Domain(DomainError::Invalid { reason, .. })) => {
            let mut message = reason;
            if let Some(first) = message.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            return Err(TopUpError::invalid("code", format!("{message}.")));
        }
        other => other?,
    }
    let code = commands.prepaid.load(&id).await?;
    if code.redeemed_by() != Some(tenant_id) {
        return Err(TopUpError::invalid(
            "code",
            "This code has already been redeemed.",
        ));
    }
    let credit = AccountCommand::Credit {
        amount: code.amount(),
        source: CreditSource {
            kind: CreditKind::Voucher,
            reference: code_reference(&id),
        },
    };
    commands
        .accounts
        .execute(tenant_id, credit, metadata)
        .await?;
    Ok(code.amount())
}

/// Expires pending orders past their time, and credits paid orders and redeemed codes whose
/// credit a crash interrupted. Runs on every replica; every step is idempotent.
pub async fn housekeeping(state: &AppState) -> Result<(), TopUpError> {
    let metadata = Metadata::new(&modelrouter_domain::metadata::Actor::System);
    sql::catch_up(&state.db, Projection::Recharges, 1000).await?;
    let now = Utc::now();
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for order in recharges::orders(&state.db, OrderQuery::DueToExpire(&stamp(now))).await? {
        expire(&state.commands, &order.order_id, now, &metadata).await?;
    }
    // Give the request that confirmed a payment time to credit it itself.
    let settled_before = stamp(now - chrono::Duration::seconds(30));
    for order in recharges::orders(&state.db, OrderQuery::PaidNotCredited(&settled_before)).await? {
        let amount = Money(order.paid_amount.unwrap_or(order.amount));
        tracing::warn!(
            order = order.order_id,
            "crediting a paid order whose credit was interrupted"
        );
        credit(
            &state.commands,
            &order.order_id,
            &order.tenant_id,
            amount,
            &metadata,
        )
        .await?;
    }
    for code in recharges::codes(&state.db, None).await? {
        let stale = code
            .redeemed_at
            .as_deref()
            .is_some_and(|at| at < settled_before.as_str());
        if let (Some(tenant), None, true) = (&code.redeemed_by, &code.credited_at, stale) {
            let credit = AccountCommand::Credit {
                amount: Money(code.amount),
                source: CreditSource {
                    kind: CreditKind::Voucher,
                    reference: code_reference(&code.code_id),
                },
            };
            state
                .commands
                .accounts
                .execute(tenant, credit, &metadata)
                .await?;
        }
    }
    Ok(())
}

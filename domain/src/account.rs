//! Account: a tenant's prepaid balance and the allowances gateway replicas lease from it.
//!
//! Rule: a grant never makes `balance − outstanding allowances` negative. Replicas spend leased
//! allowance in memory and settle what they used; the balance can only go below zero when a
//! replica settles more than it was granted, which the gateway bounds (docs/architecture.md).
//!
//! Rule: no credit, adjustment or refund exceeds `Money::MAX_AMOUNT` in size, and none takes the
//! balance past `±Money::MAX_BALANCE` (checked arithmetic), so no sum over the events — here or
//! in a read model — can overflow. Versions before this rule could store such an event (an
//! adjustment of `i64::MAX`); `apply` leaves those out, as the balances projection does (it
//! reports them instead), so the aggregate and the read model agree (docs/ledger.md).

use std::collections::{BTreeMap, BTreeSet};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::{DomainError, Money};

/// Where a credit came from. `reference` makes a credit idempotent: an order or voucher credits
/// an account at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditSource {
    pub kind: CreditKind,
    pub reference: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    Import,
    Demo,
    RechargeOrder,
    Voucher,
    /// The trial credit a new tenant gets at sign-up, when the platform offers one.
    Signup,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountCommand {
    Credit {
        amount: Money,
        source: CreditSource,
    },
    /// Makes the total credited by `modelrouter import` equal `total`, crediting or adjusting
    /// the difference, so that importing the same file twice changes nothing.
    SetImportedTotal {
        total: Money,
    },
    /// An operator's correction of the balance, with the reason. A debit never takes more than
    /// is available (the balance less what replicas hold).
    Adjust {
        amount: Money,
        reason: String,
    },
    /// Takes back from the balance what is refunded of a paid recharge order. `paid` is what the
    /// order received (a paid order's amount never changes); `refund_id` makes the debit
    /// idempotent, so a refund submitted twice debits once. Refused when the refunds of the order
    /// would exceed `paid`, or when less than `amount` is available: money already spent (or
    /// held by replicas for calls in flight) cannot be refunded.
    Refund {
        order_id: String,
        refund_id: String,
        amount: Money,
        paid: Money,
    },
    GrantAllowance {
        lease_id: String,
        node: String,
        requested: Money,
    },
    /// What a lease has used **in total** since it was granted. The aggregate settles only the
    /// part not settled before, so a settlement repeated after a timeout — or reported both by
    /// the replica and by a reclaim — is never charged twice.
    SettleUsage {
        lease_id: String,
        used_total: Money,
        calls_total: u64,
    },
    ReleaseAllowance {
        lease_id: String,
    },
    /// Gives back part of a lease that its replica is not using (an idle lease, or one asked
    /// for by another replica): the lease stays open with less.
    ReturnAllowance {
        lease_id: String,
        amount: Money,
    },
    /// A replica cannot fit a call of `needed` in its lease, and the account's available
    /// amount cannot either, while other leases hold allowance: asks them to give back what
    /// they are not using. Refused (insufficient balance) when the whole balance cannot cover
    /// `needed` or no other lease holds anything.
    RecallAllowances {
        lease_id: String,
        needed: Money,
    },
    /// Closes the lease of a replica that died: settles the calls it metered (totals counted
    /// from the log by another replica) and releases what it still held.
    ReclaimLease {
        lease_id: String,
        used_total: Money,
        calls_total: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    Credited {
        amount: Money,
        source: CreditSource,
    },
    Adjusted {
        amount: Money,
        reason: String,
    },
    /// Part or all of a recharge order was refunded: `amount` leaves the balance.
    Refunded {
        order_id: String,
        refund_id: String,
        amount: Money,
    },
    AllowanceGranted {
        lease_id: String,
        node: String,
        amount: Money,
    },
    UsageSettled {
        lease_id: String,
        used: Money,
        calls: u64,
    },
    AllowanceReleased {
        lease_id: String,
        amount: Money,
    },
    /// Part of a lease went back to the account; the lease stays open.
    AllowanceReturned {
        lease_id: String,
        amount: Money,
    },
    /// The replica holding `by_lease` asked the others to give back unused allowance.
    AllowanceRecalled {
        by_lease: String,
        needed: Money,
    },
}
crate::domain_event!(AccountEvent, "1");

impl AccountEvent {
    /// Whether the event's amount is within `±Money::MAX_AMOUNT`: always, for events stored
    /// since the limit; an event beyond it (stored by an older version) moves no balance.
    pub fn within_limits(&self) -> bool {
        match self {
            AccountEvent::Credited { amount, .. }
            | AccountEvent::Adjusted { amount, .. }
            | AccountEvent::Refunded { amount, .. }
            | AccountEvent::AllowanceGranted { amount, .. }
            | AccountEvent::AllowanceReturned { amount, .. } => amount.is_within_max_amount(),
            AccountEvent::UsageSettled { .. }
            | AccountEvent::AllowanceReleased { .. }
            | AccountEvent::AllowanceRecalled { .. } => true,
        }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Account {
    balance: Money,
    imported_total: Money,
    credited_references: Vec<String>,
    /// lease id → allowance still outstanding on that lease.
    leases: BTreeMap<String, Money>,
    /// lease id → usage and calls settled on that lease so far.
    #[serde(default)]
    settled: BTreeMap<String, (Money, u64)>,
    /// order id → total refunded of that order.
    #[serde(default)]
    refunded: BTreeMap<String, Money>,
    /// Every refund id applied, so a repeated refund debits nothing.
    #[serde(default)]
    refund_ids: BTreeSet<String>,
}

impl Account {
    pub fn balance(&self) -> Money {
        self.balance
    }
    pub fn outstanding(&self) -> Money {
        self.leases.values().fold(Money::ZERO, |sum, m| sum + *m)
    }
    /// What may still be granted: balance minus what replicas already hold.
    pub fn available(&self) -> Money {
        self.balance - self.outstanding()
    }
    /// What has been refunded of one recharge order so far.
    pub fn refunded_of(&self, order_id: &str) -> Money {
        self.refunded.get(order_id).copied().unwrap_or_default()
    }
    /// Whether a refund with this id was already applied.
    pub fn has_refund(&self, refund_id: &str) -> bool {
        self.refund_ids.contains(refund_id)
    }
}

impl Account {
    /// The settlement still due on a lease that has used `used_total` over `calls_total` calls.
    fn unsettled(
        &self,
        lease_id: &str,
        used_total: Money,
        calls_total: u64,
    ) -> Result<Option<AccountEvent>, DomainError> {
        if used_total.micros() < 0 {
            return Err(DomainError::invalid("used", "must not be negative"));
        }
        let (used, calls) = self.settled.get(lease_id).copied().unwrap_or_default();
        let more_used = (used_total - used).max(Money::ZERO);
        let more_calls = calls_total.saturating_sub(calls);
        if more_used == Money::ZERO && more_calls == 0 {
            return Ok(None);
        }
        Ok(Some(AccountEvent::UsageSettled {
            lease_id: lease_id.to_string(),
            used: more_used,
            calls: more_calls,
        }))
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = crate::aggregate_types::ACCOUNT;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AccountCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            AccountCommand::Credit { amount, source } => {
                if !amount.is_positive() {
                    return Err(DomainError::invalid("amount", "must be positive"));
                }
                if self.credited_references.contains(&source.reference) {
                    return Ok(());
                }
                amount.check_amount("amount")?;
                self.balance.balance_plus(amount)?;
                AccountEvent::Credited { amount, source }
            }
            AccountCommand::SetImportedTotal { total } => {
                if total.micros() < 0 {
                    return Err(DomainError::invalid("balance", "must not be negative"));
                }
                total.check_amount("balance")?;
                let difference = total - self.imported_total;
                self.balance.balance_plus(difference)?;
                if difference == Money::ZERO {
                    return Ok(());
                }
                if difference.is_positive() {
                    AccountEvent::Credited {
                        amount: difference,
                        source: CreditSource {
                            kind: CreditKind::Import,
                            reference: format!("import:{}", total.micros()),
                        },
                    }
                } else {
                    AccountEvent::Adjusted {
                        amount: difference,
                        reason: "import: balance lowered".to_string(),
                    }
                }
            }
            AccountCommand::Adjust { amount, reason } => {
                if reason.trim().is_empty() {
                    return Err(DomainError::invalid("reason", "must be given"));
                }
                if amount == Money::ZERO {
                    return Err(DomainError::invalid("amount", "must not be zero"));
                }
                amount.check_amount("amount")?;
                // A debit may take only what no replica holds: leased allowance is being spent
                // on calls right now, and those calls will settle against the balance.
                let available = self.available();
                if amount.micros() < 0 && Money::ZERO - amount > available {
                    return Err(DomainError::InsufficientBalance { available });
                }
                self.balance.balance_plus(amount)?;
                AccountEvent::Adjusted { amount, reason }
            }
            AccountCommand::Refund {
                order_id,
                refund_id,
                amount,
                paid,
            } => {
                if self.refund_ids.contains(&refund_id) {
                    return Ok(());
                }
                if refund_id.trim().is_empty() {
                    return Err(DomainError::invalid("refund_id", "must be given"));
                }
                if !amount.is_positive() {
                    return Err(DomainError::invalid("amount", "must be positive"));
                }
                amount.check_amount("amount")?;
                let refundable = (paid - self.refunded_of(&order_id)).max(Money::ZERO);
                if amount > refundable {
                    return Err(DomainError::invalid(
                        "amount",
                        format!("at most {refundable} of this order can still be refunded"),
                    ));
                }
                let available = self.available();
                if amount > available {
                    return Err(DomainError::InsufficientBalance { available });
                }
                AccountEvent::Refunded {
                    order_id,
                    refund_id,
                    amount,
                }
            }
            AccountCommand::GrantAllowance {
                lease_id,
                node,
                requested,
            } => {
                if !requested.is_positive() {
                    return Err(DomainError::invalid("requested", "must be positive"));
                }
                // All or nothing, so the replica knows exactly what it holds; the error says what
                // is available, so it can ask again for less.
                let available = self.available();
                if requested > available {
                    return Err(DomainError::InsufficientBalance { available });
                }
                AccountEvent::AllowanceGranted {
                    lease_id,
                    node,
                    amount: requested,
                }
            }
            AccountCommand::SettleUsage {
                lease_id,
                used_total,
                calls_total,
            } => match self.unsettled(&lease_id, used_total, calls_total)? {
                // Usage is never refused: the calls happened. A lease that was already released
                // or reclaimed still settles against the balance.
                Some(event) => event,
                None => return Ok(()),
            },
            AccountCommand::ReclaimLease {
                lease_id,
                used_total,
                calls_total,
            } => {
                if let Some(event) = self.unsettled(&lease_id, used_total, calls_total)? {
                    sink.write(event, self).await;
                }
                match self.leases.get(&lease_id) {
                    None => return Ok(()),
                    Some(amount) => AccountEvent::AllowanceReleased {
                        lease_id,
                        amount: *amount,
                    },
                }
            }
            AccountCommand::ReleaseAllowance { lease_id } => match self.leases.get(&lease_id) {
                None => return Ok(()),
                Some(amount) => AccountEvent::AllowanceReleased {
                    lease_id,
                    amount: *amount,
                },
            },
            AccountCommand::ReturnAllowance { lease_id, amount } => {
                if !amount.is_positive() {
                    return Err(DomainError::invalid("amount", "must be positive"));
                }
                // Never more than the lease still holds (a settlement may have used some).
                let held = self.leases.get(&lease_id).copied().unwrap_or_default();
                let amount = amount.min(held);
                if !amount.is_positive() {
                    return Ok(());
                }
                AccountEvent::AllowanceReturned { lease_id, amount }
            }
            AccountCommand::RecallAllowances { lease_id, needed } => {
                // Another replica may have given back enough since the asker last looked: then
                // there is nothing to recall, and its grant can be tried again.
                if self.available() >= needed {
                    return Ok(());
                }
                let own = self.leases.get(&lease_id).copied().unwrap_or_default();
                let others = self.outstanding() - own;
                if !others.is_positive() || self.balance < needed {
                    return Err(DomainError::InsufficientBalance {
                        available: self.available(),
                    });
                }
                AccountEvent::AllowanceRecalled {
                    by_lease: lease_id,
                    needed,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: AccountEvent) {
        if !event.within_limits() {
            return;
        }
        match event {
            AccountEvent::Credited { amount, source } => {
                self.balance = self.balance + amount;
                if source.kind == CreditKind::Import {
                    self.imported_total = self.imported_total + amount;
                }
                self.credited_references.push(source.reference);
            }
            AccountEvent::Adjusted { amount, reason } => {
                self.balance = self.balance + amount;
                if reason.starts_with("import:") {
                    self.imported_total = self.imported_total + amount;
                }
            }
            AccountEvent::Refunded {
                order_id,
                refund_id,
                amount,
            } => {
                self.balance = self.balance - amount;
                let total = self.refunded.entry(order_id).or_default();
                *total = *total + amount;
                self.refund_ids.insert(refund_id);
            }
            AccountEvent::AllowanceGranted {
                lease_id, amount, ..
            } => {
                let held = self.leases.entry(lease_id).or_default();
                *held = *held + amount;
            }
            AccountEvent::UsageSettled {
                lease_id,
                used,
                calls,
            } => {
                self.balance = self.balance - used;
                if let Some(held) = self.leases.get_mut(&lease_id) {
                    *held = (*held - used).max(Money::ZERO);
                }
                let settled = self.settled.entry(lease_id).or_default();
                settled.0 = settled.0 + used;
                settled.1 += calls;
            }
            AccountEvent::AllowanceReleased { lease_id, .. } => {
                self.leases.remove(&lease_id);
            }
            AccountEvent::AllowanceReturned { lease_id, amount } => {
                if let Some(held) = self.leases.get_mut(&lease_id) {
                    *held = (*held - amount).max(Money::ZERO);
                }
            }
            AccountEvent::AllowanceRecalled { .. } => {}
        }
    }
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;

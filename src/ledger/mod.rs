//! Finance's ledger: a tenant's Account events replayed into a statement, and that statement
//! checked against the balances read model, the Account aggregate and — lease by lease — the
//! calls the log records (`calls.rs`).
//!
//! The replay is a second, deliberately plain implementation of the balance rules, written to
//! be read by someone auditing it: one pass over the events, one line per event, a running
//! balance. Architecture invariant: it must not reuse the balances projection's SQL or
//! `Account::apply` — those are what it checks. It names no store backend; it takes `Db`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use cqrs_es::Aggregate;
use modelrouter_domain::account::{Account, AccountEvent, CreditKind};
use modelrouter_domain::aggregate_types::ACCOUNT;
use modelrouter_domain::metadata::ACTOR;
use modelrouter_domain::Money;
use modelrouter_projections::sql::{self, balances, BalanceRow, Projection};
use modelrouter_projections::{Db, StoredEvent};
use serde::Serialize;

mod calls;

pub use calls::{CallRef, Pending};

/// A tenant's account, event by event, with its totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub tenant_id: String,
    pub lines: Vec<Line>,
    pub credited: Money,
    pub adjusted: Money,
    /// Refunds of recharge orders given back to the tenant.
    pub refunded: Money,
    /// Settled usage.
    pub charged: Money,
    pub balance: Money,
    /// Allowance granted to gateway replicas and neither used nor released yet.
    pub outstanding_allowance: Money,
    pub calls: u64,
}

/// One event of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// When the event was recorded (UTC, as the store keeps it).
    pub at: String,
    /// The event's global position in the log.
    pub position: i64,
    pub kind: LineKind,
    /// The signed effect on the balance; zero for allowance lines.
    pub amount: Money,
    pub balance_after: Money,
    /// Who issued the command, from the event's metadata.
    pub actor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LineKind {
    Credit {
        source: CreditKind,
        reference: String,
    },
    Adjustment {
        reason: String,
        actor: Option<String>,
    },
    /// Part or all of a paid recharge order given back; the order names the refund.
    Refund {
        order_id: String,
        refund_id: String,
    },
    /// Usage a replica settled: the calls served on one lease since its last settlement.
    Charge {
        lease_id: String,
        calls: u64,
    },
    AllowanceGranted {
        lease_id: String,
        node: String,
    },
    AllowanceReleased {
        lease_id: String,
    },
    /// Part of a lease given back to the account.
    AllowanceReturned {
        lease_id: String,
    },
    /// A replica asked the others for unused allowance.
    AllowanceRecalled {
        by_lease: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("event at position {position} ({event_type}) is not an Account event this version can read: {source}")]
    Undecodable {
        position: i64,
        event_type: String,
        source: serde_json::Error,
    },
    #[error("event at position {position} belongs to {aggregate_type} {aggregate_id}, not to account {tenant_id}")]
    ForeignEvent {
        position: i64,
        aggregate_type: String,
        aggregate_id: String,
        tenant_id: String,
    },
    #[error("event at position {position} has sequence {found} where {expected} was expected: the account's events are incomplete or out of order")]
    OutOfSequence {
        position: i64,
        expected: i64,
        found: i64,
    },
    #[error("the call {request_id} at position {position} records no valid cost (a non-negative integer of micro-units)")]
    BadCall { position: i64, request_id: String },
    #[error("amounts overflow at the event at position {position}")]
    Overflow { position: i64 },
    /// Only a version before the limit could store such an event; the Account aggregate and
    /// the balances projection leave it out, and the projection reports it.
    #[error("the event at position {position} carries {amount}, beyond the largest single amount ({max}): written by an older version, left out of the balance")]
    BeyondLimit {
        position: i64,
        amount: Money,
        max: Money,
    },
    #[error("the balances read model did not catch up with account {tenant_id}'s events after {attempts} tries (events still arriving, or a long transaction holding the log's tail back); try again")]
    NotCaughtUp { tenant_id: String, attempts: u32 },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl LedgerError {
    /// True when the events themselves are wrong (a finding about the ledger), false when the
    /// check could not be run (the database, a moving log).
    pub fn is_finding(&self) -> bool {
        !matches!(
            self,
            LedgerError::NotCaughtUp { .. } | LedgerError::Database(_)
        )
    }
}

/// Replays one account from its events, which must be all of them, in sequence order.
pub fn replay(tenant_id: &str, events: &[StoredEvent]) -> Result<Statement, LedgerError> {
    let decoded = decode(tenant_id, events)?;
    fold(tenant_id, events, &decoded)
}

/// The account as the aggregate itself sees it after the same events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AggregateState {
    pub balance: Money,
    pub outstanding: Money,
}

/// A replay and how the read model, the aggregate and the recorded calls compare with it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub statement: Statement,
    /// The balances table's row, after the projection was brought up to date.
    pub read_model: Option<BalanceRow>,
    pub aggregate: AggregateState,
    /// How many InferenceCall events the log records for the tenant.
    pub recorded_calls: u64,
    pub differences: Vec<Difference>,
    /// Calls recorded on open leases and not settled yet: not differences.
    pub pending: Vec<Pending>,
}

impl Check {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Where a replayed figure disagrees with what the system holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "difference", rename_all = "snake_case")]
pub enum Difference {
    /// The account has events but the balances table has no row for it.
    MissingReadModelRow,
    /// The balances table has a row for a tenant whose account has no events.
    ReadModelRowWithoutEvents,
    Field {
        against: Against,
        field: Field,
        replayed: i64,
        found: i64,
    },
    /// A lease settled more usage or calls than the log records under it: the tenant was
    /// charged for calls nobody recorded. Names the lease's settlements by position.
    ChargedWithoutRecord {
        lease_id: String,
        settlements: Vec<i64>,
        settled: Money,
        settled_calls: u64,
        recorded: Money,
        recorded_calls: u64,
    },
    /// A closed lease (released or reclaimed) whose settlements cover fewer calls than the log
    /// records under it: the calls beyond the settled count, in log order, were never charged.
    RecordedWithoutCharge {
        lease_id: String,
        settled_calls: u64,
        calls: Vec<CallRef>,
    },
    /// A closed lease whose settled calls match the recorded ones in number but whose recorded
    /// cost is higher than what was settled.
    RecordedAmountNotCharged {
        lease_id: String,
        calls: u64,
        settled: Money,
        recorded: Money,
    },
    /// A call with a cost recorded under no lease (`lease_id` None) or under a lease the
    /// Account never granted. Calls that cost nothing need no charge and are not reported.
    CallWithoutLease {
        lease_id: Option<String>,
        call: CallRef,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Against {
    ReadModel,
    Aggregate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Balance,
    Credited,
    Adjusted,
    Refunded,
    Settled,
    Outstanding,
    Calls,
}

/// How often [`check`] re-reads when the account or its projection moved while it looked.
const CHECK_ATTEMPTS: u32 = 50;
const CHECK_RETRY: Duration = Duration::from_millis(100);

/// Replays the tenant's account and compares it with the balances read model, with the
/// Account aggregate folded from the same events, and with the calls the log records for the
/// tenant (lease by lease: settled against recorded, `calls.rs`).
///
/// The projection is caught up first, and the comparison is made only once the read model has
/// applied every event the replay read and no newer event arrived meanwhile — so a lagging
/// projection is waited for, never reported, while a wrong one is. The calls are read after
/// the Account's events, so every call a settlement read here covers is among them.
pub async fn check(db: &Db, tenant_id: &str) -> Result<Check, LedgerError> {
    for _ in 0..CHECK_ATTEMPTS {
        let events = db.events_of(ACCOUNT, tenant_id).await?;
        sql::catch_up(db, Projection::Balances, 1000).await?;
        let applied = sql::checkpoint(db, Projection::Balances).await?;
        let row = balances::balance_of(db, tenant_id).await?;
        let read = events.last().map(StoredEvent::tail_position);
        let newest = db.last_event_of(ACCOUNT, tenant_id).await?;
        if newest == read && read.is_none_or(|read| applied >= read) {
            let decoded = decode(tenant_id, &events)?;
            let statement = fold(tenant_id, &events, &decoded)?;
            let mut account = Account::default();
            for event in decoded.iter().cloned() {
                account.apply(event);
            }
            let aggregate = AggregateState {
                balance: account.balance(),
                outstanding: account.outstanding(),
            };
            let mut differences = differences(&statement, row.as_ref(), aggregate);
            let calls = calls::reconcile(db, tenant_id, &events, &decoded).await?;
            differences.extend(calls.differences);
            return Ok(Check {
                statement,
                read_model: row,
                aggregate,
                recorded_calls: calls.recorded_calls,
                differences,
                pending: calls.pending,
            });
        }
        tokio::time::sleep(CHECK_RETRY).await;
    }
    Err(LedgerError::NotCaughtUp {
        tenant_id: tenant_id.to_string(),
        attempts: CHECK_ATTEMPTS,
    })
}

/// Every tenant the ledger concerns: those with Account events, those with a balances row (a
/// row without events is itself a difference) and those the log records calls for, sorted.
pub async fn tenants(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let mut ids = db.aggregate_ids(ACCOUNT).await?;
    ids.extend(db.tenants_with_calls().await?);
    ids.extend(
        balances::all(db, None)
            .await?
            .into_iter()
            .map(|row| row.tenant_id),
    );
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Decodes every event, refusing any that is not this account's next one.
fn decode(tenant_id: &str, events: &[StoredEvent]) -> Result<Vec<AccountEvent>, LedgerError> {
    let mut decoded = Vec::with_capacity(events.len());
    for (expected, event) in (1..).zip(events) {
        if event.aggregate_type != ACCOUNT || event.aggregate_id != tenant_id {
            return Err(LedgerError::ForeignEvent {
                position: event.position,
                aggregate_type: event.aggregate_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                tenant_id: tenant_id.to_string(),
            });
        }
        // cqrs-es numbers an aggregate's events 1, 2, 3, …: a gap is a lost event.
        if event.sequence != expected {
            return Err(LedgerError::OutOfSequence {
                position: event.position,
                expected,
                found: event.sequence,
            });
        }
        let payload =
            serde_json::from_value::<AccountEvent>(event.payload.clone()).map_err(|source| {
                LedgerError::Undecodable {
                    position: event.position,
                    event_type: event.event_type.clone(),
                    source,
                }
            })?;
        decoded.push(payload);
    }
    Ok(decoded)
}

/// The replay itself. Rules, as finance states them:
/// - a credit adds its amount to the balance; an adjustment adds its signed amount; a refund
///   subtracts its amount;
/// - settled usage subtracts what was used, whether or not its lease is still open;
/// - a grant adds to its lease's outstanding allowance, settled usage takes from it (never below
///   zero), a release closes the lease. Allowances never change the balance.
fn fold(
    tenant_id: &str,
    events: &[StoredEvent],
    decoded: &[AccountEvent],
) -> Result<Statement, LedgerError> {
    let mut statement = Statement {
        tenant_id: tenant_id.to_string(),
        lines: Vec::with_capacity(events.len()),
        credited: Money::ZERO,
        adjusted: Money::ZERO,
        refunded: Money::ZERO,
        charged: Money::ZERO,
        balance: Money::ZERO,
        outstanding_allowance: Money::ZERO,
        calls: 0,
    };
    let mut leases: BTreeMap<String, i64> = BTreeMap::new();
    for (stored, event) in events.iter().zip(decoded) {
        let position = stored.position;
        let add = |a: i64, b: i64| a.checked_add(b).ok_or(LedgerError::Overflow { position });
        if let AccountEvent::Credited { amount, .. }
        | AccountEvent::Adjusted { amount, .. }
        | AccountEvent::Refunded { amount, .. }
        | AccountEvent::AllowanceGranted { amount, .. } = event
        {
            if amount.0.unsigned_abs() > Money::MAX_AMOUNT.0.unsigned_abs() {
                return Err(LedgerError::BeyondLimit {
                    position,
                    amount: *amount,
                    max: Money::MAX_AMOUNT,
                });
            }
        }
        let actor = stored
            .metadata
            .get(ACTOR)
            .and_then(|actor| actor.as_str())
            .map(str::to_string);
        let (kind, amount) = match event {
            AccountEvent::Credited { amount, source } => {
                statement.credited = Money(add(statement.credited.0, amount.0)?);
                let kind = LineKind::Credit {
                    source: source.kind,
                    reference: source.reference.clone(),
                };
                (kind, amount.0)
            }
            AccountEvent::Adjusted { amount, reason } => {
                statement.adjusted = Money(add(statement.adjusted.0, amount.0)?);
                let kind = LineKind::Adjustment {
                    reason: reason.clone(),
                    actor: actor.clone(),
                };
                (kind, amount.0)
            }
            AccountEvent::Refunded {
                order_id,
                refund_id,
                amount,
            } => {
                statement.refunded = Money(add(statement.refunded.0, amount.0)?);
                let kind = LineKind::Refund {
                    order_id: order_id.clone(),
                    refund_id: refund_id.clone(),
                };
                let amount = amount
                    .0
                    .checked_neg()
                    .ok_or(LedgerError::Overflow { position })?;
                (kind, amount)
            }
            AccountEvent::UsageSettled {
                lease_id,
                used,
                calls,
            } => {
                statement.charged = Money(add(statement.charged.0, used.0)?);
                statement.calls = statement
                    .calls
                    .checked_add(*calls)
                    .ok_or(LedgerError::Overflow { position })?;
                if let Some(held) = leases.get_mut(lease_id) {
                    *held = held.saturating_sub(used.0).max(0);
                }
                let kind = LineKind::Charge {
                    lease_id: lease_id.clone(),
                    calls: *calls,
                };
                let amount = used
                    .0
                    .checked_neg()
                    .ok_or(LedgerError::Overflow { position })?;
                (kind, amount)
            }
            AccountEvent::AllowanceGranted {
                lease_id,
                node,
                amount,
            } => {
                let held = leases.entry(lease_id.clone()).or_insert(0);
                *held = add(*held, amount.0)?;
                let kind = LineKind::AllowanceGranted {
                    lease_id: lease_id.clone(),
                    node: node.clone(),
                };
                (kind, 0)
            }
            AccountEvent::AllowanceReleased { lease_id, .. } => {
                leases.remove(lease_id);
                let kind = LineKind::AllowanceReleased {
                    lease_id: lease_id.clone(),
                };
                (kind, 0)
            }
            AccountEvent::AllowanceReturned { lease_id, amount } => {
                if let Some(held) = leases.get_mut(lease_id) {
                    *held = (*held - amount.0).max(0);
                }
                let kind = LineKind::AllowanceReturned {
                    lease_id: lease_id.clone(),
                };
                (kind, 0)
            }
            AccountEvent::AllowanceRecalled { by_lease, .. } => {
                let kind = LineKind::AllowanceRecalled {
                    by_lease: by_lease.clone(),
                };
                (kind, 0)
            }
        };
        statement.balance = Money(add(statement.balance.0, amount)?);
        statement.lines.push(Line {
            at: stored.recorded_at.clone(),
            position,
            kind,
            amount: Money(amount),
            balance_after: statement.balance,
            actor,
        });
    }
    let mut outstanding: i64 = 0;
    for held in leases.values() {
        let position = events.last().map_or(0, |event| event.position);
        outstanding = outstanding
            .checked_add(*held)
            .ok_or(LedgerError::Overflow { position })?;
    }
    statement.outstanding_allowance = Money(outstanding);
    Ok(statement)
}

fn differences(
    statement: &Statement,
    row: Option<&BalanceRow>,
    aggregate: AggregateState,
) -> Vec<Difference> {
    let mut found = Vec::new();
    let no_events = statement.lines.is_empty();
    match row {
        None if !no_events => found.push(Difference::MissingReadModelRow),
        None => {}
        Some(row) => {
            if no_events {
                found.push(Difference::ReadModelRowWithoutEvents);
            }
            let calls = i64::try_from(statement.calls).unwrap_or(i64::MAX);
            let pairs = [
                (Field::Balance, statement.balance.0, row.balance),
                (Field::Credited, statement.credited.0, row.credited),
                (Field::Adjusted, statement.adjusted.0, row.adjusted),
                (Field::Refunded, statement.refunded.0, row.refunded),
                (Field::Settled, statement.charged.0, row.settled),
                (
                    Field::Outstanding,
                    statement.outstanding_allowance.0,
                    row.outstanding,
                ),
                (Field::Calls, calls, row.calls),
            ];
            for (field, replayed, held) in pairs {
                if replayed != held {
                    found.push(Difference::Field {
                        against: Against::ReadModel,
                        field,
                        replayed,
                        found: held,
                    });
                }
            }
        }
    }
    let pairs = [
        (Field::Balance, statement.balance, aggregate.balance),
        (
            Field::Outstanding,
            statement.outstanding_allowance,
            aggregate.outstanding,
        ),
    ];
    for (field, replayed, held) in pairs {
        if replayed != held {
            found.push(Difference::Field {
                against: Against::Aggregate,
                field,
                replayed: replayed.0,
                found: held.0,
            });
        }
    }
    found
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Balance => "balance",
            Field::Credited => "credited",
            Field::Adjusted => "adjusted",
            Field::Refunded => "refunded",
            Field::Settled => "settled",
            Field::Outstanding => "outstanding",
            Field::Calls => "calls",
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::MissingReadModelRow => {
                f.write_str("the balances read model has no row for this account")
            }
            Difference::ReadModelRowWithoutEvents => {
                f.write_str("the balances read model has a row but the account has no events")
            }
            Difference::Field {
                against,
                field,
                replayed,
                found,
            } => {
                let against = match against {
                    Against::ReadModel => "read model",
                    Against::Aggregate => "aggregate",
                };
                let name = field.name();
                if *field == Field::Calls {
                    write!(f, "{against} {name}: replayed {replayed}, found {found}")
                } else {
                    write!(
                        f,
                        "{against} {name}: replayed {}, found {}",
                        Money(*replayed),
                        Money(*found)
                    )
                }
            }
            Difference::ChargedWithoutRecord { .. }
            | Difference::RecordedWithoutCharge { .. }
            | Difference::RecordedAmountNotCharged { .. }
            | Difference::CallWithoutLease { .. } => calls::describe(self, f),
        }
    }
}

fn credit_kind_name(kind: CreditKind) -> &'static str {
    match kind {
        CreditKind::Import => "import",
        CreditKind::Demo => "demo",
        CreditKind::RechargeOrder => "recharge_order",
        CreditKind::Voucher => "voucher",
        CreditKind::Signup => "signup",
    }
}

impl fmt::Display for LineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineKind::Credit { source, reference } => {
                write!(f, "credit {} {reference}", credit_kind_name(*source))
            }
            LineKind::Adjustment { reason, .. } => write!(f, "adjustment {reason:?}"),
            LineKind::Refund { order_id, .. } => write!(f, "refund of order {order_id}"),
            LineKind::Charge { lease_id, calls } => {
                let noun = if *calls == 1 { "call" } else { "calls" };
                write!(f, "charge {calls} {noun} on lease {lease_id}")
            }
            // The gateway's lease ids already begin with the node's name; say it once.
            LineKind::AllowanceGranted { lease_id, node }
                if lease_id.starts_with(node.as_str()) =>
            {
                write!(f, "grant lease {lease_id}")
            }
            LineKind::AllowanceGranted { lease_id, node } => {
                write!(f, "grant lease {lease_id} to {node}")
            }
            LineKind::AllowanceReleased { lease_id } => write!(f, "release lease {lease_id}"),
            LineKind::AllowanceReturned { lease_id } => {
                write!(f, "unused allowance of lease {lease_id} returned")
            }
            LineKind::AllowanceRecalled { by_lease } => {
                write!(f, "unused allowance recalled for lease {by_lease}")
            }
        }
    }
}

impl fmt::Display for Statement {
    /// One line per event — time, position, kind, amount, running balance, actor — in columns
    /// as wide as their widest entry, then the totals. Amounts are whole units with six
    /// decimals, from micro-units by integer arithmetic.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 6]> = self
            .lines
            .iter()
            .map(|line| {
                [
                    line.at.clone(),
                    line.position.to_string(),
                    line.kind.to_string(),
                    line.amount.to_string(),
                    line.balance_after.to_string(),
                    line.actor.clone().unwrap_or_else(|| "-".to_string()),
                ]
            })
            .collect();
        let header = ["time", "position", "kind", "amount", "balance", "actor"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let [time, position, kind, amount, balance, _] = widths;
        for row in std::iter::once(&header).chain(&rows) {
            writeln!(
                f,
                "{:<time$}  {:>position$}  {:<kind$}  {:>amount$}  {:>balance$}  {}",
                row[0], row[1], row[2], row[3], row[4], row[5]
            )?;
        }
        writeln!(f)?;
        let totals = [
            ("credited", self.credited.to_string()),
            ("adjusted", self.adjusted.to_string()),
            ("refunded", self.refunded.to_string()),
            ("charged", self.charged.to_string()),
            ("balance", self.balance.to_string()),
            ("outstanding", self.outstanding_allowance.to_string()),
            ("calls", self.calls.to_string()),
        ];
        for (name, value) in totals {
            writeln!(f, "{name:<12}{value:>20}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

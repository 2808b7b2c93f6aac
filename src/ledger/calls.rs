//! Charges against records: what a tenant's Account settled through allowances, lease by lease,
//! reconciled with the InferenceCall events the log records for that tenant.
//!
//! A replica records every call it meters under its lease and settles, per lease, only calls it
//! has recorded; the lease of a replica that died is reclaimed from its recorded calls. So on
//! every lease the usage and calls settled never exceed what the log records, and once the lease
//! is closed (released or reclaimed) they equal it. On a lease still open, recorded calls not
//! settled yet are pending — settlement runs every 2 s — and not a difference.
//!
//! Architecture invariant: calls are read from the log (`Db::calls_of_tenant`, through an
//! index), never from the usage read model; money is summed as exact integers.

use std::collections::BTreeMap;
use std::fmt;

use modelrouter_domain::account::AccountEvent;
use modelrouter_domain::Money;
use modelrouter_projections::{Db, LoggedCall, StoredEvent};
use serde::Serialize;

use super::{Difference, LedgerError};

/// How many calls one read of the log returns.
const PAGE: i64 = 10_000;

/// A recorded call, as a difference names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRef {
    pub request_id: String,
    pub position: i64,
    pub status: Option<u16>,
    pub cost: Money,
}

/// Calls recorded on an open lease that its settlements do not cover yet: normal, since a replica
/// settles every 2 s; reported, never counted as a difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub lease_id: String,
    pub calls: u64,
    pub amount: Money,
}

/// What the reconciliation found for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reconciliation {
    pub differences: Vec<Difference>,
    pub pending: Vec<Pending>,
    /// Every call the log records for the tenant.
    pub recorded_calls: u64,
}

/// Reads the tenant's calls from the log, page by page in log order, and reconciles them with
/// the settlements among `events` (the tenant's Account events, read before the calls: a
/// settlement covers only calls recorded before it, so every call it covers is read).
pub(super) async fn reconcile(
    db: &Db,
    tenant_id: &str,
    events: &[StoredEvent],
    decoded: &[AccountEvent],
) -> Result<Reconciliation, LedgerError> {
    let mut reconciler = Reconciler::new(events, decoded)?;
    let mut after = 0;
    loop {
        let page = db.calls_of_tenant(tenant_id, after, PAGE).await?;
        for call in &page {
            reconciler.add(call)?;
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.position,
            _ => return Ok(reconciler.finish()),
        }
    }
}

/// One lease as the Account and the log know it.
#[derive(Debug, Default)]
struct Lease {
    granted: bool,
    /// Granted and not released (nor reclaimed) since.
    open: bool,
    /// Positions of the lease's UsageSettled events.
    settlements: Vec<i64>,
    settled: i64,
    settled_calls: u64,
    recorded: i64,
    recorded_calls: u64,
    /// Recorded calls beyond the settled count, in log order; kept only for leases not open.
    beyond: Vec<CallRef>,
}

/// The reconciliation as a fold: the Account's leases first, then every call in log order.
#[derive(Debug)]
pub(super) struct Reconciler {
    leases: BTreeMap<String, Lease>,
    /// Calls with a cost under no lease, or under one the Account never granted.
    unleased: Vec<Difference>,
    recorded_calls: u64,
}

impl Reconciler {
    pub(super) fn new(
        events: &[StoredEvent],
        decoded: &[AccountEvent],
    ) -> Result<Reconciler, LedgerError> {
        let mut leases: BTreeMap<String, Lease> = BTreeMap::new();
        for (stored, event) in events.iter().zip(decoded) {
            let position = stored.position;
            match event {
                AccountEvent::AllowanceGranted { lease_id, .. } => {
                    let lease = leases.entry(lease_id.clone()).or_default();
                    lease.granted = true;
                    lease.open = true;
                }
                AccountEvent::AllowanceReleased { lease_id, .. } => {
                    leases.entry(lease_id.clone()).or_default().open = false;
                }
                AccountEvent::UsageSettled {
                    lease_id,
                    used,
                    calls,
                } => {
                    let lease = leases.entry(lease_id.clone()).or_default();
                    lease.settlements.push(position);
                    lease.settled = lease
                        .settled
                        .checked_add(used.0)
                        .ok_or(LedgerError::Overflow { position })?;
                    lease.settled_calls = lease
                        .settled_calls
                        .checked_add(*calls)
                        .ok_or(LedgerError::Overflow { position })?;
                }
                // A lease that returns unused allowance stays open; a recall moves no money.
                AccountEvent::Credited { .. }
                | AccountEvent::Adjusted { .. }
                | AccountEvent::Refunded { .. }
                | AccountEvent::AllowanceReturned { .. }
                | AccountEvent::AllowanceRecalled { .. } => {}
            }
        }
        Ok(Reconciler {
            leases,
            unleased: Vec::new(),
            recorded_calls: 0,
        })
    }

    /// Counts one call; calls must come in log order.
    pub(super) fn add(&mut self, call: &LoggedCall) -> Result<(), LedgerError> {
        let position = call.position;
        let cost = match call.cost {
            Some(cost) if cost >= 0 => Money(cost),
            _ => {
                return Err(LedgerError::BadCall {
                    position,
                    request_id: call.request_id.clone(),
                })
            }
        };
        self.recorded_calls += 1;
        let reference = CallRef {
            request_id: call.request_id.clone(),
            position,
            status: call.status,
            cost,
        };
        let Some(lease_id) = &call.lease_id else {
            if cost.is_positive() {
                self.unleased.push(Difference::CallWithoutLease {
                    lease_id: None,
                    call: reference,
                });
            }
            return Ok(());
        };
        let lease = self.leases.entry(lease_id.clone()).or_default();
        lease.recorded = lease
            .recorded
            .checked_add(cost.0)
            .ok_or(LedgerError::Overflow { position })?;
        lease.recorded_calls += 1;
        if !lease.granted {
            if cost.is_positive() {
                self.unleased.push(Difference::CallWithoutLease {
                    lease_id: Some(lease_id.clone()),
                    call: reference,
                });
            }
        } else if !lease.open && lease.recorded_calls > lease.settled_calls {
            lease.beyond.push(reference);
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Reconciliation {
        let mut differences = Vec::new();
        let mut pending = Vec::new();
        for (lease_id, lease) in self.leases {
            let uncharged_calls = lease.recorded_calls.saturating_sub(lease.settled_calls);
            let uncharged = lease.recorded.saturating_sub(lease.settled).max(0);
            if lease.settled > lease.recorded || lease.settled_calls > lease.recorded_calls {
                differences.push(Difference::ChargedWithoutRecord {
                    lease_id,
                    settlements: lease.settlements,
                    settled: Money(lease.settled),
                    settled_calls: lease.settled_calls,
                    recorded: Money(lease.recorded),
                    recorded_calls: lease.recorded_calls,
                });
            } else if !lease.granted || (uncharged_calls == 0 && uncharged == 0) {
                // Calls under a lease never granted were named one by one as they came.
            } else if lease.open {
                pending.push(Pending {
                    lease_id,
                    calls: uncharged_calls,
                    amount: Money(uncharged),
                });
            } else if uncharged_calls > 0 {
                differences.push(Difference::RecordedWithoutCharge {
                    lease_id,
                    settled_calls: lease.settled_calls,
                    calls: lease.beyond,
                });
            } else {
                differences.push(Difference::RecordedAmountNotCharged {
                    lease_id,
                    calls: lease.recorded_calls,
                    settled: Money(lease.settled),
                    recorded: Money(lease.recorded),
                });
            }
        }
        differences.extend(self.unleased);
        Reconciliation {
            differences,
            pending,
            recorded_calls: self.recorded_calls,
        }
    }
}

impl fmt::Display for CallRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (position {}, ", self.request_id, self.position)?;
        if let Some(status) = self.status {
            write!(f, "status {status}, ")?;
        }
        write!(f, "cost {})", self.cost)
    }
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lease {}: {} call(s) costing {} recorded and not settled yet (the lease is open; \
             replicas settle every 2 s)",
            self.lease_id, self.calls, self.amount
        )
    }
}

/// The text of the reconciliation's differences (the rest of `Difference` is in `mod.rs`).
pub(super) fn describe(difference: &Difference, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let list = |items: Vec<String>| items.join(", ");
    match difference {
        Difference::ChargedWithoutRecord {
            lease_id,
            settlements,
            settled,
            settled_calls,
            recorded,
            recorded_calls,
        } => {
            let positions = list(settlements.iter().map(ToString::to_string).collect());
            let excess = Money(settled.0.saturating_sub(recorded.0).max(0));
            let excess_calls = settled_calls.saturating_sub(*recorded_calls);
            write!(
                f,
                "lease {lease_id} charged without a record: settled {settled} over \
                 {settled_calls} call(s) (settlements at positions {positions}), but the log \
                 records {recorded} over {recorded_calls} call(s) under it: {excess} and \
                 {excess_calls} call(s) charged beyond the records"
            )
        }
        Difference::RecordedWithoutCharge {
            lease_id,
            settled_calls,
            calls,
        } => write!(
            f,
            "lease {lease_id} (closed) recorded without a charge: {} call(s) beyond the \
             {settled_calls} settled: {}",
            calls.len(),
            list(calls.iter().map(ToString::to_string).collect())
        ),
        Difference::RecordedAmountNotCharged {
            lease_id,
            calls,
            settled,
            recorded,
        } => write!(
            f,
            "lease {lease_id} (closed) recorded without a charge: its {calls} call(s) cost \
             {recorded} but {settled} was settled"
        ),
        Difference::CallWithoutLease {
            lease_id: None,
            call,
        } => write!(f, "call {call} recorded without a charge: under no lease"),
        Difference::CallWithoutLease {
            lease_id: Some(lease_id),
            call,
        } => write!(
            f,
            "call {call} recorded under lease {lease_id}, which the Account never granted"
        ),
        Difference::MissingReadModelRow
        | Difference::ReadModelRowWithoutEvents
        | Difference::Field { .. } => Ok(()),
    }
}

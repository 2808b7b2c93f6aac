//! Balance enforcement without a database round trip per call.
//!
//! Each replica leases allowance from a tenant's Account aggregate (`AllowanceGranted`, a real
//! command under the aggregate's optimistic lock) and spends it in memory. A call first *holds*
//! an upper bound of its cost; when it ends the hold is replaced by the actual charge. Used
//! amounts are settled (`UsageSettled`) every few seconds and at shutdown, when leases are also
//! released. The database is touched only when a lease runs dry, never per call.
//!
//! Overspend bound: a call's actual cost can exceed its hold only if the upstream reports more
//! tokens than the hold assumed (more input tokens than request bytes, or more output tokens than
//! the output limit). The balance therefore never goes below
//! `−Σ (actual − hold)` over the calls in flight when it ran out — zero when upstreams honour
//! the output limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use modelrouter_domain::account::AccountCommand;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::{DomainError, Money};

use modelrouter_projections::sql::{self, usage, Projection};

use crate::store::{replicas, CommandError, Commands, Db};

#[derive(Debug, thiserror::Error)]
pub enum AllowanceError {
    #[error("insufficient balance")]
    Insufficient,
    #[error("balance check failed: {0}")]
    Store(String),
}

#[derive(Debug, Default)]
struct TenantLease {
    /// Granted and neither spent nor held.
    available: i64,
    /// Held by calls in flight.
    held: i64,
    /// A background top-up is under way.
    refilling_ahead: bool,
    /// Charged and counted on this lease since it was granted…
    used_total: i64,
    calls_total: u64,
    /// …and how much of that the Account has confirmed settled.
    settled_used: i64,
    settled_calls: u64,
    /// Serializes top-ups of this tenant's lease on this replica.
    refill: Arc<tokio::sync::Mutex<()>>,
}

pub struct Allowances {
    node: String,
    chunk: Money,
    commands: Arc<Commands>,
    leases: Mutex<HashMap<String, TenantLease>>,
}

/// A held amount. Dropping it without [`Hold::charge`] releases it (the call was not charged),
/// so a call cancelled by a client disconnect never leaks allowance.
pub struct Hold {
    allowances: Arc<Allowances>,
    tenant_id: String,
    amount: i64,
    done: bool,
}

impl Hold {
    /// Replaces the hold with the actual charge.
    pub fn charge(mut self, cost: Money) {
        self.done = true;
        self.allowances
            .finish(&self.tenant_id, self.amount, Some(cost.micros()));
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            self.allowances.finish(&self.tenant_id, self.amount, None);
        }
    }
}

impl Allowances {
    pub fn new(node: String, chunk: Money, commands: Arc<Commands>) -> Arc<Allowances> {
        Arc::new(Allowances {
            node,
            chunk,
            commands,
            leases: Mutex::new(HashMap::new()),
        })
    }

    fn lease_id(&self, tenant_id: &str) -> String {
        format!("{}/{}", self.node, tenant_id)
    }

    fn with_leases<T>(&self, f: impl FnOnce(&mut HashMap<String, TenantLease>) -> T) -> T {
        let mut guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    fn try_take(&self, tenant_id: &str, amount: i64) -> Result<(), Arc<tokio::sync::Mutex<()>>> {
        self.with_leases(|leases| {
            let lease = leases.entry(tenant_id.to_string()).or_default();
            if lease.available >= amount {
                lease.available -= amount;
                lease.held += amount;
                Ok(())
            } else {
                Err(lease.refill.clone())
            }
        })
    }

    /// Holds `amount` of the tenant's allowance, leasing more from the account when this
    /// replica's lease cannot cover it.
    pub async fn hold(
        self: &Arc<Self>,
        tenant_id: &str,
        amount: Money,
    ) -> Result<Hold, AllowanceError> {
        let amount = amount.micros().max(1);
        let hold = |allowances: &Arc<Allowances>| Hold {
            allowances: allowances.clone(),
            tenant_id: tenant_id.to_string(),
            amount,
            done: false,
        };
        let refill = match self.try_take(tenant_id, amount) {
            Ok(()) => {
                self.top_up_ahead_if_low(tenant_id, amount);
                return Ok(hold(self));
            }
            Err(refill) => refill,
        };
        let _refilling = refill.lock().await;
        // Another call may have topped the lease up while this one waited.
        if self.try_take(tenant_id, amount).is_ok() {
            return Ok(hold(self));
        }
        let (want, need) = self.wanted(tenant_id, amount);
        self.grant(tenant_id, want, need).await?;
        self.try_take(tenant_id, amount)
            .map(|()| hold(self))
            .map_err(|_| AllowanceError::Insufficient)
    }

    /// What to lease when topping up: at least one chunk, and twice what calls in flight hold
    /// (plus `amount`), so a busy tenant tops up rarely instead of every few calls.
    fn wanted(&self, tenant_id: &str, amount: i64) -> (i64, i64) {
        let (have, held) =
            self.with_leases(|l| l.get(tenant_id).map_or((0, 0), |l| (l.available, l.held)));
        let want = self
            .chunk
            .micros()
            .max(held.saturating_add(amount).saturating_mul(2))
            .saturating_sub(have)
            .max(amount - have);
        (want, amount - have)
    }

    /// Starts a background top-up when what is left would not cover as much again as calls in
    /// flight hold, so that requests rarely wait for the store.
    fn top_up_ahead_if_low(self: &Arc<Self>, tenant_id: &str, amount: i64) {
        let start = self.with_leases(|leases| {
            let lease = leases.entry(tenant_id.to_string()).or_default();
            let low = lease.available < lease.held.max(amount).max(self.chunk.micros() / 2);
            if low && !lease.refilling_ahead {
                lease.refilling_ahead = true;
                Some(lease.refill.clone())
            } else {
                None
            }
        });
        let Some(refill) = start else {
            return;
        };
        let allowances = self.clone();
        let tenant_id = tenant_id.to_string();
        tokio::spawn(async move {
            {
                let _refilling = refill.lock().await;
                let (want, _) = allowances.wanted(&tenant_id, amount);
                if want > 0 {
                    if let Err(error) = allowances.grant(&tenant_id, want, 1).await {
                        tracing::debug!(%error, tenant_id, "top-up ahead not granted");
                    }
                }
            }
            allowances.with_leases(|leases| {
                if let Some(lease) = leases.get_mut(&tenant_id) {
                    lease.refilling_ahead = false;
                }
            });
        });
    }

    /// Leases `want` more, or as much as the account has if that still covers `need`.
    async fn grant(&self, tenant_id: &str, want: i64, need: i64) -> Result<(), AllowanceError> {
        let mut requested = want;
        for _ in 0..3 {
            let command = AccountCommand::GrantAllowance {
                lease_id: self.lease_id(tenant_id),
                node: self.node.clone(),
                requested: Money(requested),
            };
            let metadata = Metadata::new(&Actor::System);
            match self
                .commands
                .accounts
                .execute(tenant_id, command, &metadata)
                .await
            {
                Ok(()) => {
                    self.with_leases(|leases| {
                        leases.entry(tenant_id.to_string()).or_default().available += requested
                    });
                    return Ok(());
                }
                Err(CommandError::Domain(DomainError::InsufficientBalance { available }))
                    if available.micros() >= need && available.micros() > 0 =>
                {
                    requested = available.micros();
                }
                Err(CommandError::Domain(DomainError::InsufficientBalance { .. })) => {
                    return Err(AllowanceError::Insufficient)
                }
                Err(other) => return Err(AllowanceError::Store(other.to_string())),
            }
        }
        Err(AllowanceError::Insufficient)
    }

    fn finish(&self, tenant_id: &str, held: i64, charged: Option<i64>) {
        self.with_leases(|leases| {
            let lease = leases.entry(tenant_id.to_string()).or_default();
            lease.held -= held;
            match charged {
                Some(cost) => {
                    lease.available += held - cost;
                    lease.used_total += cost;
                    lease.calls_total += 1;
                }
                None => lease.available += held,
            }
        });
    }

    /// Reports every lease's totals that the Account has not confirmed yet. Totals, not
    /// increments: a report whose answer was lost (a timeout after the commit) is simply sent
    /// again and settles nothing twice.
    pub async fn settle(&self) {
        let due: Vec<(String, i64, u64)> = self.with_leases(|leases| {
            leases
                .iter()
                .filter(|(_, l)| l.used_total > l.settled_used || l.calls_total > l.settled_calls)
                .map(|(tenant, l)| (tenant.clone(), l.used_total, l.calls_total))
                .collect()
        });
        for (tenant_id, used_total, calls_total) in due {
            let command = AccountCommand::SettleUsage {
                lease_id: self.lease_id(&tenant_id),
                used_total: Money(used_total),
                calls_total,
            };
            let metadata = Metadata::new(&Actor::System);
            match self
                .commands
                .accounts
                .execute(&tenant_id, command, &metadata)
                .await
            {
                Ok(()) => self.with_leases(|leases| {
                    let lease = leases.entry(tenant_id).or_default();
                    lease.settled_used = lease.settled_used.max(used_total);
                    lease.settled_calls = lease.settled_calls.max(calls_total);
                }),
                Err(error) => {
                    tracing::warn!(%error, tenant_id, used_total, "settlement failed; reported again next time")
                }
            }
        }
    }

    /// Settles and releases the leases of replicas that stopped heart-beating before
    /// `seen_since` (Unix seconds): their metered calls are counted from the log (the usage
    /// projection's `lease_usage`) and the Account settles whatever of that total it has not
    /// settled yet, then releases the rest of the lease. Safe to run on every replica at once:
    /// the Account takes totals, so a second reclaim finds nothing left to do. Returns how many
    /// leases were reclaimed.
    pub async fn reclaim_orphans(&self, db: &Db, seen_since: i64) -> Result<usize, sqlx::Error> {
        // Fresh lease and usage tables first: what the dead replica metered must all be counted.
        for projection in Projection::ALL {
            sql::catch_up(db, projection, 1000).await?;
        }
        let orphans = replicas::orphaned_leases(db, &self.node, seen_since).await?;
        let mut reclaimed = 0;
        for orphan in orphans {
            let (used, calls) = usage::lease_usage(db, &orphan.lease_id).await?;
            let command = AccountCommand::ReclaimLease {
                lease_id: orphan.lease_id.clone(),
                used_total: Money(used),
                calls_total: u64::try_from(calls).unwrap_or(0),
            };
            match self
                .commands
                .accounts
                .execute(&orphan.tenant_id, command, &Metadata::new(&Actor::System))
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        lease = orphan.lease_id,
                        node = orphan.node,
                        used,
                        "reclaimed the lease of a replica that stopped"
                    );
                    reclaimed += 1;
                }
                Err(error) => {
                    tracing::warn!(%error, lease = orphan.lease_id, "lease reclaim failed; tried again later")
                }
            }
        }
        Ok(reclaimed)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The lease id this replica uses for a tenant (recorded with each metered call).
    pub fn lease_of(&self, tenant_id: &str) -> String {
        self.lease_id(tenant_id)
    }

    /// Settles everything and hands every lease back (graceful shutdown).
    pub async fn release_all(&self) {
        self.settle().await;
        let tenants: Vec<String> =
            self.with_leases(|leases| leases.drain().map(|(t, _)| t).collect());
        for tenant_id in tenants {
            let command = AccountCommand::ReleaseAllowance {
                lease_id: self.lease_id(&tenant_id),
            };
            if let Err(error) = self
                .commands
                .accounts
                .execute(&tenant_id, command, &Metadata::new(&Actor::System))
                .await
            {
                tracing::warn!(%error, tenant_id, "lease release failed");
            }
        }
    }
}

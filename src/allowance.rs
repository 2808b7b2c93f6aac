//! Balance enforcement without a database round trip per call.
//!
//! Each replica leases allowance from a tenant's Account aggregate (`AllowanceGranted`, a real
//! command under the aggregate's optimistic lock) and spends it in memory. A call first *holds*
//! an upper bound of its cost; when it ends the hold is replaced by the actual charge. Used
//! amounts are settled (`UsageSettled`) every few seconds and at shutdown, when leases are also
//! released. The database is touched only when a lease runs dry, never per call.
//!
//! Settlement reports only calls whose records are in the event store (the metering spool tells
//! [`Allowances::recorded`] as each batch lands), so the Account is never charged for a call the
//! log does not hold; a call charged in memory but not yet recorded is settled once it is.
//!
//! The store may be down: a call whose hold fits the lease is served regardless; one that needs
//! the store waits at most `store_wait` and is then refused as temporarily unavailable
//! ([`AllowanceError::Unavailable`]), never left hanging. Allowance flows back: a lease idle for
//! `lease_idle_return` returns what it does not use, and a replica that cannot fit a call while
//! other leases hold unused allowance recalls it (`RecallAllowances`): the others see the
//! recall within one tail poll and return what they are not using, and the call waits up to
//! [`RECALL_WAIT`] for it.
//!
//! Overspend bound: a call's actual cost can exceed its hold only if the upstream reports more
//! tokens than the hold assumed (more input tokens than request bytes, or more output tokens than
//! the output limit). The balance therefore never goes below
//! `−Σ (actual − hold)` over the calls in flight when it ran out — zero when upstreams honour
//! the output limit.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelrouter_domain::account::{AccountCommand, AccountEvent};
use modelrouter_domain::aggregate_types::ACCOUNT;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::{DomainError, Money};

use modelrouter_projections::sql::{self, usage, Projection};
use modelrouter_projections::Types;

use crate::store::spool::Recovered;
use crate::store::{replicas, CommandError, Commands, Db};

#[derive(Debug, thiserror::Error)]
pub enum AllowanceError {
    #[error("insufficient balance")]
    Insufficient,
    /// The store did not answer in time, or failed: the call may be tried again shortly.
    #[error("the balance could not be checked: {0}")]
    Unavailable(String),
}

/// How long a call that cannot fit its hold waits for other replicas to return unused
/// allowance after a recall.
pub const RECALL_WAIT: Duration = Duration::from_secs(3);
/// After the store failed or did not answer, calls that need it are refused at once for this
/// long (one call then tries again), so an outage costs each of them no wait at all.
const STORE_DOWN_FOR: Duration = Duration::from_secs(1);
/// A replica short of a tenant's allowance recalls at most this often.
const RECALL_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug)]
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
    /// When a call last held or finished on this lease.
    last_active: Instant,
    /// When this replica last recalled allowance for the tenant.
    recalled_at: Option<Instant>,
}

impl Default for TenantLease {
    fn default() -> Self {
        TenantLease {
            available: 0,
            held: 0,
            refilling_ahead: false,
            used_total: 0,
            calls_total: 0,
            settled_used: 0,
            settled_calls: 0,
            refill: Arc::default(),
            last_active: Instant::now(),
            recalled_at: None,
        }
    }
}

pub struct Allowances {
    node: String,
    chunk: Money,
    commands: Arc<Commands>,
    /// The longest a call waits for the store.
    store_wait: Duration,
    leases: Mutex<HashMap<String, TenantLease>>,
    /// Until when the store is taken to be down.
    store_down_until: Mutex<Option<Instant>>,
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
    pub fn new(
        node: String,
        chunk: Money,
        commands: Arc<Commands>,
        store_wait: Duration,
    ) -> Arc<Allowances> {
        Arc::new(Allowances {
            node,
            chunk,
            commands,
            store_wait,
            leases: Mutex::new(HashMap::new()),
            store_down_until: Mutex::new(None),
        })
    }

    fn store_known_down(&self) -> bool {
        let until = *self
            .store_down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|until| Instant::now() < until)
    }

    fn note_store(&self, up: bool) {
        let mut until = self
            .store_down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *until = (!up).then(|| Instant::now() + STORE_DOWN_FOR);
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
                lease.last_active = Instant::now();
                Ok(())
            } else {
                Err(lease.refill.clone())
            }
        })
    }

    /// Holds `amount` of the tenant's allowance, leasing more from the account when this
    /// replica's lease cannot cover it — waiting at most `store_wait` for the store, and up to
    /// [`RECALL_WAIT`] for other replicas to return allowance they do not use.
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
        if self.store_known_down() {
            return Err(AllowanceError::Unavailable(
                "the event store is unreachable".into(),
            ));
        }
        let recall_until = Instant::now() + RECALL_WAIT;
        let mut pause = Duration::from_millis(10);
        loop {
            let attempt = tokio::time::timeout(
                self.store_wait,
                self.hold_from_account(tenant_id, amount, &refill),
            );
            match attempt.await {
                Ok(Ok(())) => return Ok(hold(self)),
                Ok(Err(AllowanceError::Insufficient)) => {}
                Ok(Err(error)) => return Err(error),
                Err(_) => {
                    self.note_store(false);
                    return Err(AllowanceError::Unavailable(
                        "the event store did not answer in time".into(),
                    ));
                }
            }
            // The account cannot cover it: unless other leases hold allowance they are not
            // using, the balance is spent. (One recall per tenant at a time; calls that find
            // one under way wait for its effect, and ask again when it is old.)
            if self.recall_due(tenant_id) && !self.recall(tenant_id, amount).await? {
                return Err(AllowanceError::Insufficient);
            }
            if Instant::now() + pause >= recall_until {
                return Err(AllowanceError::Insufficient);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Takes `amount` from the lease after topping it up from the account.
    async fn hold_from_account(
        self: &Arc<Self>,
        tenant_id: &str,
        amount: i64,
        refill: &tokio::sync::Mutex<()>,
    ) -> Result<(), AllowanceError> {
        let _refilling = refill.lock().await;
        // Another call may have topped the lease up while this one waited.
        if self.try_take(tenant_id, amount).is_ok() {
            return Ok(());
        }
        let (want, need) = self.wanted(tenant_id, amount);
        self.grant(tenant_id, want, need).await?;
        self.try_take(tenant_id, amount)
            .map_err(|_| AllowanceError::Insufficient)
    }

    /// Asks the other replicas for the tenant's unused allowance. False when there is nothing
    /// to recall: no other lease holds any, or the whole balance cannot cover `amount`.
    async fn recall(
        self: &Arc<Self>,
        tenant_id: &str,
        amount: i64,
    ) -> Result<bool, AllowanceError> {
        let command = AccountCommand::RecallAllowances {
            lease_id: self.lease_id(tenant_id),
            needed: Money(amount),
        };
        match self.execute_in_background(tenant_id, command).await {
            Ok(()) => {
                tracing::debug!(
                    tenant_id,
                    amount,
                    "recalled unused allowance from other replicas"
                );
                Ok(true)
            }
            Err(CommandError::Domain(DomainError::InsufficientBalance { available })) => {
                tracing::debug!(tenant_id, amount, %available, "nothing to recall: the balance is spent");
                Ok(false)
            }
            Err(error) => Err(self.store_failed(error)),
        }
    }

    /// Whether a recall for the tenant is due (none sent in the last [`RECALL_EVERY`]); if so,
    /// notes one as sent now.
    fn recall_due(&self, tenant_id: &str) -> bool {
        self.with_leases(|leases| {
            let lease = leases.entry(tenant_id.to_string()).or_default();
            let due = lease
                .recalled_at
                .is_none_or(|at| at.elapsed() >= RECALL_EVERY);
            if due {
                lease.recalled_at = Some(Instant::now());
            }
            due
        })
    }

    /// Runs an Account command in its own task and waits at most `store_wait` for it: a
    /// command cut off half-way could commit a grant this replica never learns about, so it
    /// always runs to the end, whether or not anyone still waits.
    async fn execute_in_background(
        &self,
        tenant_id: &str,
        command: AccountCommand,
    ) -> Result<(), CommandError> {
        let commands = self.commands.clone();
        let tenant = tenant_id.to_string();
        let task = tokio::spawn(async move {
            commands
                .accounts
                .execute(&tenant, command, &Metadata::new(&Actor::System))
                .await
        });
        match tokio::time::timeout(self.store_wait, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => Err(CommandError::Store(error.to_string())),
            Err(_) => Err(CommandError::Store(
                "the store did not answer in time".into(),
            )),
        }
    }

    fn store_failed(&self, error: CommandError) -> AllowanceError {
        self.note_store(false);
        AllowanceError::Unavailable(error.to_string())
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
        if self.store_known_down() {
            return;
        }
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

    /// Leases `want` more, or as much as the account has if that still covers `need`. The
    /// store round trips run in their own task, so a caller that stops waiting never leaves a
    /// granted amount unknown to this replica.
    async fn grant(
        self: &Arc<Self>,
        tenant_id: &str,
        want: i64,
        need: i64,
    ) -> Result<(), AllowanceError> {
        let allowances = self.clone();
        let tenant = tenant_id.to_string();
        tokio::spawn(async move { allowances.grant_now(&tenant, want, need).await })
            .await
            .unwrap_or_else(|error| Err(AllowanceError::Unavailable(error.to_string())))
    }

    async fn grant_now(&self, tenant_id: &str, want: i64, need: i64) -> Result<(), AllowanceError> {
        let mut requested = want;
        for _ in 0..3 {
            let command = AccountCommand::GrantAllowance {
                lease_id: self.lease_id(tenant_id),
                node: self.node.clone(),
                requested: Money(requested),
            };
            let metadata = Metadata::new(&Actor::System);
            let result = self
                .commands
                .accounts
                .execute(tenant_id, command, &metadata)
                .await;
            self.note_store(!matches!(result, Err(CommandError::Store(_))));
            match result {
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
                Err(other) => return Err(AllowanceError::Unavailable(other.to_string())),
            }
        }
        Err(AllowanceError::Insufficient)
    }

    fn finish(&self, tenant_id: &str, held: i64, charged: Option<i64>) {
        self.with_leases(|leases| {
            let lease = leases.entry(tenant_id.to_string()).or_default();
            lease.held -= held;
            lease.available += held - charged.unwrap_or(0);
            lease.last_active = Instant::now();
        });
    }

    /// Counts calls whose records reached the event store, as (tenant, lease, cost): only
    /// these are settled. Leases of other nodes (a predecessor's records drained at start)
    /// are settled by [`Allowances::reclaim_predecessor`] instead.
    pub fn recorded(&self, calls: &[(String, String, i64)]) {
        self.with_leases(|leases| {
            for (tenant_id, lease_id, cost) in calls {
                if *lease_id != self.lease_id(tenant_id) {
                    continue;
                }
                let lease = leases.entry(tenant_id.clone()).or_default();
                lease.used_total += cost;
                lease.calls_total += 1;
            }
        });
    }

    /// Gives back the unused allowance of leases no call has touched for `idle_after`, and of
    /// every lease another replica recalled (`recalled`: tenant ids).
    pub async fn return_unused(&self, idle_after: Duration, recalled: &BTreeSet<String>) {
        // Settle first what a recalled lease has used, so the account sees only what this
        // replica really still holds: a replica asking again then learns at once whether
        // anything is left to give.
        if !recalled.is_empty() {
            self.settle_only(Some(recalled)).await;
        }
        let due: Vec<(String, i64)> = self.with_leases(|leases| {
            leases
                .iter_mut()
                .filter(|(tenant, lease)| {
                    lease.available > 0
                        && (recalled.contains(*tenant)
                            || (lease.held == 0 && lease.last_active.elapsed() >= idle_after))
                })
                .map(|(tenant, lease)| {
                    // Out of reach of calls while it is being returned.
                    let amount = std::mem::take(&mut lease.available);
                    (tenant.clone(), amount)
                })
                .collect()
        });
        for (tenant_id, amount) in due {
            let command = AccountCommand::ReturnAllowance {
                lease_id: self.lease_id(&tenant_id),
                amount: Money(amount),
            };
            let result = self
                .commands
                .accounts
                .execute(&tenant_id, command, &Metadata::new(&Actor::System))
                .await;
            if let Err(error) = result {
                tracing::debug!(%error, tenant_id, "unused allowance not returned; kept");
                self.with_leases(|leases| {
                    leases.entry(tenant_id).or_default().available += amount;
                });
            }
        }
    }

    /// Reports every lease's totals that the Account has not confirmed yet. Totals, not
    /// increments: a report whose answer was lost (a timeout after the commit) is simply sent
    /// again and settles nothing twice.
    pub async fn settle(&self) {
        self.settle_only(None).await;
    }

    /// [`Allowances::settle`] for some tenants only (None: all).
    async fn settle_only(&self, tenants: Option<&BTreeSet<String>>) {
        let due: Vec<(String, i64, u64)> = self.with_leases(|leases| {
            leases
                .iter()
                .filter(|(tenant, _)| tenants.is_none_or(|only| only.contains(*tenant)))
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
            if self
                .reclaim(db, &orphan.tenant_id, &orphan.lease_id)
                .await?
            {
                reclaimed += 1;
            }
        }
        Ok(reclaimed)
    }

    /// Settles and closes what the process that used this data directory before left open:
    /// the leases its records (drained from the spool at start) were charged to, whether or
    /// not they are still open, and every other lease its node still holds. Then it is
    /// forgotten as a replica. Returns how many leases were settled.
    pub async fn reclaim_predecessor(
        &self,
        db: &Db,
        recovered: &Recovered,
    ) -> Result<usize, sqlx::Error> {
        for projection in Projection::ALL {
            sql::catch_up(db, projection, 1000).await?;
        }
        let mut leases = recovered.leases.clone();
        if let Some(node) = &recovered.previous_node {
            for lease in replicas::leases_of_node(db, node).await? {
                leases.insert((lease.tenant_id, lease.lease_id));
            }
        }
        let mut reclaimed = 0;
        for (tenant_id, lease_id) in &leases {
            if self.reclaim(db, tenant_id, lease_id).await? {
                reclaimed += 1;
            }
        }
        if let Some(node) = &recovered.previous_node {
            replicas::forget(db, node).await?;
        }
        Ok(reclaimed)
    }

    /// Settles a dead lease from the calls the log records under it, and releases the rest.
    /// True when the Account took the command.
    async fn reclaim(&self, db: &Db, tenant_id: &str, lease_id: &str) -> Result<bool, sqlx::Error> {
        let (used, calls) = usage::lease_usage(db, lease_id).await?;
        let command = AccountCommand::ReclaimLease {
            lease_id: lease_id.to_string(),
            used_total: Money(used),
            calls_total: u64::try_from(calls).unwrap_or(0),
        };
        match self
            .commands
            .accounts
            .execute(tenant_id, command, &Metadata::new(&Actor::System))
            .await
        {
            Ok(()) => {
                tracing::info!(
                    lease = lease_id,
                    used,
                    calls,
                    "settled and closed the lease of a replica that stopped"
                );
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(%error, lease = lease_id, "lease reclaim failed; tried again later");
                Ok(false)
            }
        }
    }

    /// Until `shutdown`: every `poll`, reads the Account events since the last look and gives
    /// back the unused allowance another replica recalled, and that of leases idle for
    /// `idle_after`. A recall is answered within one poll of being readable.
    pub async fn watch_recalls(
        self: Arc<Self>,
        db: Db,
        poll: Duration,
        idle_after: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let accounts = Types::Only(&[ACCOUNT]);
        let mut at = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
            let mut recalled = BTreeSet::new();
            let position = match at {
                Some(position) => position,
                None => match db.committed_head_of(accounts).await {
                    Ok(head) => {
                        at = Some(head);
                        continue;
                    }
                    Err(_) => continue,
                },
            };
            match db.read_events_of(accounts, position, 10_000).await {
                Ok(events) => {
                    for event in &events {
                        at = Some(event.tail_position());
                        let Ok(AccountEvent::AllowanceRecalled { by_lease, .. }) =
                            serde_json::from_value(event.payload.clone())
                        else {
                            continue;
                        };
                        if by_lease != self.lease_id(&event.aggregate_id) {
                            recalled.insert(event.aggregate_id.clone());
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, "recalls not read; next time"),
            }
            self.return_unused(idle_after, &recalled).await;
        }
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

//! [`TenantScope`]: the proof that a request acts for one tenant, and the only way to reach a
//! tenant's keys, usage and balance from the portal.
//!
//! Architecture invariant: a `TenantScope` is made only by the session extractor (`session.rs`)
//! from a live session. Every tenant-scoped read and write below takes one, so a handler cannot
//! name another tenant's data: a key id of another tenant is simply "not found".

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use modelrouter_domain::Money;
use modelrouter_projections::live::{KeyEntry, LiveView, TenantEntry};
use modelrouter_projections::sql::balances;
use modelrouter_projections::sql::usage_report::{self, KeyTotals, UsageFilter};
use modelrouter_projections::Db;

use super::PortalError;

#[derive(Debug, Clone)]
pub struct TenantScope {
    tenant_id: String,
}

impl TenantScope {
    /// Only the session extractor calls this, after it found a live session for the tenant.
    pub(super) fn signed_in(tenant_id: String) -> TenantScope {
        TenantScope { tenant_id }
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    pub fn tenant<'v>(&self, view: &'v LiveView) -> Option<&'v TenantEntry> {
        view.tenants.get(&self.tenant_id)
    }

    /// The tenant's mail in the local outbox (where no SMTP server is configured), newest first.
    pub async fn outbox(
        &self,
        db: &Db,
        limit: i64,
    ) -> Result<Vec<crate::store::verifications::OutboxMail>, PortalError> {
        Ok(crate::store::verifications::outbox_of(db, &self.tenant_id, limit).await?)
    }

    /// The tenant's keys, newest first.
    pub fn keys<'v>(&self, view: &'v LiveView) -> Vec<&'v KeyEntry> {
        let mut keys = view.keys_of(&self.tenant_id);
        keys.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(a.key_id.cmp(&b.key_id))
        });
        keys
    }

    /// One of the tenant's keys. Another tenant's key is "not found", never "forbidden", so an
    /// id reveals nothing about who owns it.
    pub fn key<'v>(&self, view: &'v LiveView, key_id: &str) -> Result<&'v KeyEntry, PortalError> {
        view.key_by_id(key_id)
            .filter(|key| key.tenant_id == self.tenant_id)
            .ok_or(PortalError::NotFound)
    }

    /// A usage filter over this tenant's calls only.
    pub fn usage<'a>(
        &'a self,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        key_id: Option<&'a str>,
        model: Option<&'a str>,
    ) -> UsageFilter<'a> {
        UsageFilter {
            tenant_id: &self.tenant_id,
            from,
            until,
            key_id,
            model,
        }
    }

    /// Requests, spend and last use of each of the tenant's keys, by key id.
    pub async fn key_totals(&self, db: &Db) -> Result<HashMap<String, KeyTotals>, PortalError> {
        Ok(usage_report::by_key(db, &self.tenant_id)
            .await?
            .into_iter()
            .map(|totals| (totals.key_id.clone(), totals))
            .collect())
    }

    /// The balance as the balances read model has it (settled usage; calls in flight settle
    /// within seconds).
    pub async fn balance(&self, db: &Db) -> Result<Money, PortalError> {
        Ok(balances::balance_of(db, &self.tenant_id)
            .await?
            .map(|row| Money(row.balance))
            .unwrap_or(Money::ZERO))
    }
}

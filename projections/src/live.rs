//! The in-memory view each gateway replica serves requests from: key lookup, tenants, catalog,
//! routing table and providers. Built by applying the event log in order; the gateway swaps a
//! fresh copy in after each batch, so requests never wait on the database.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use modelrouter_domain::agent::AgentEvent;
use modelrouter_domain::aggregate_types as types;
use modelrouter_domain::api_key::{ApiKeyEvent, KeyScope};
use modelrouter_domain::catalog::{CatalogModelEvent, ModelDetails, Visibility};
use modelrouter_domain::operator::{OperatorEvent, OperatorRole};
use modelrouter_domain::provider::{ConnectionTest, ProviderConfig, ProviderEvent};
use modelrouter_domain::route::{Deployment, RetryPolicy, Rollout, RouteEvent};
use modelrouter_domain::tenant::{TenantEvent, TenantStatus, DEFAULT_PLAN};
use modelrouter_domain::Pricing;
use serde::de::DeserializeOwned;

use crate::db::{StoredEvent, TailPosition};

#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub key_id: String,
    pub tenant_id: String,
    pub name: String,
    pub prefix: String,
    pub scope: KeyScope,
    pub revoked: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl KeyEntry {
    pub fn usable_at(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Debug, Clone)]
pub struct TenantEntry {
    pub email: String,
    pub name: String,
    pub status: TenantStatus,
    pub password_hash: String,
    /// The password is an operator's one-time reset: the portal asks for a new one first.
    pub one_time_password: Option<OneTimePassword>,
    /// The agent who referred the tenant, if one did.
    pub agent_id: Option<String>,
    pub plan: String,
    pub registered_at: DateTime<Utc>,
    /// Signed up in the portal and has not yet followed the link mailed to its email: the trial
    /// credit waits for it.
    pub email_unverified: bool,
    /// The tenant's security policy (docs/import.md says which parts are enforced yet).
    pub policy: modelrouter_domain::tenant::TenantPolicy,
}

/// A password that someone else gave (an operator, the CLI): its holder must choose their own at
/// the first sign-in, and it stops working at `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneTimePassword {
    /// None for one-time passwords given before they expired.
    pub expires_at: Option<DateTime<Utc>>,
}

impl OneTimePassword {
    /// The one-time password a `temporary` flag and expiry of an event describe, if any.
    pub fn of(temporary: bool, expires_at: Option<DateTime<Utc>>) -> Option<OneTimePassword> {
        temporary.then_some(OneTimePassword { expires_at })
    }

    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A platform operator (admin console login).
#[derive(Debug, Clone)]
pub struct OperatorEntry {
    pub email: String,
    pub role: OperatorRole,
    pub password_hash: String,
    pub one_time_password: Option<OneTimePassword>,
    pub disabled: bool,
}

/// An agent (reseller) with its login, referral code and current commission rate.
#[derive(Debug, Clone)]
pub struct AgentEntry {
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub one_time_password: Option<OneTimePassword>,
    pub commission_bps: u32,
    pub referral_code: String,
    pub disabled: bool,
    pub registered_at: DateTime<Utc>,
}

/// One price version of a model and when it takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceVersion {
    pub version: u32,
    pub pricing: Pricing,
    pub effective_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub details: ModelDetails,
    /// Every price version, oldest first; scheduled ones may lie in the future.
    pub prices: Vec<PriceVersion>,
    pub retired: bool,
    /// Which tenants may see and call the model.
    pub visibility: Visibility,
    /// When the model was published, Unix seconds.
    pub created: i64,
}

impl ModelEntry {
    /// The price version in effect at `at`: the newest one that has started. (Before the first
    /// version's time — clocks of replicas differ slightly — the first one.)
    pub fn price_at(&self, at: DateTime<Utc>) -> PriceVersion {
        self.prices
            .iter()
            .rev()
            .find(|p| p.effective_at <= at)
            .or(self.prices.first())
            .copied()
            .unwrap_or(PriceVersion {
                version: 0,
                pricing: Pricing::default(),
                effective_at: at,
            })
    }

    /// The next price version that has not started yet at `at`, if one is scheduled.
    pub fn next_price_after(&self, at: DateTime<Utc>) -> Option<PriceVersion> {
        self.prices.iter().find(|p| p.effective_at > at).copied()
    }
}

#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub deployments: Vec<Deployment>,
    pub retry: RetryPolicy,
    /// The rollout in progress, if any: a candidate binding for a sticky share of the keys.
    pub rollout: Option<Rollout>,
}

#[derive(Debug, Clone)]
pub struct ProviderEntry {
    pub config: ProviderConfig,
    pub enabled: bool,
    /// The credential as stored: AES-256-GCM ciphertext, decrypted only when a call is made.
    pub credential: Option<String>,
    pub fingerprint: Option<String>,
    /// When the credential was last set (the store's time of the event).
    pub credential_rotated_at: Option<DateTime<Utc>>,
    /// The last connection test an operator ran, if any.
    pub last_test: Option<ConnectionTest>,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct LiveView {
    pub position: TailPosition,
    /// hex SHA-256 of the key → key
    pub keys: HashMap<String, KeyEntry>,
    key_hashes: HashMap<String, String>,
    pub tenants: HashMap<String, TenantEntry>,
    pub models: BTreeMap<String, ModelEntry>,
    pub routes: HashMap<String, RouteEntry>,
    pub providers: HashMap<String, ProviderEntry>,
    pub operators: HashMap<String, OperatorEntry>,
    pub agents: HashMap<String, AgentEntry>,
}

/// The aggregate types the live view is built from; it reads only these (never the metering
/// and balance events that make up the bulk of the log).
pub const LIVE_TYPES: &[&str] = &[
    types::TENANT,
    types::API_KEY,
    types::CATALOG_MODEL,
    types::ROUTE,
    types::PROVIDER,
    types::OPERATOR,
    types::AGENT,
];

/// Whether an event changes the live view at all (metering and balances do not).
pub fn concerns_live_view(aggregate_type: &str) -> bool {
    LIVE_TYPES.contains(&aggregate_type)
}

fn decode<E: DeserializeOwned>(event: &StoredEvent) -> Option<E> {
    match serde_json::from_value(event.payload.clone()) {
        Ok(decoded) => Some(decoded),
        Err(error) => {
            tracing::error!(
                position = event.position,
                aggregate_type = %event.aggregate_type,
                %error,
                "event payload does not decode; skipped"
            );
            None
        }
    }
}

/// When the store recorded an event (the Unix epoch if the store's text does not parse).
fn recorded_at(event: &StoredEvent) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&event.recorded_at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

impl LiveView {
    /// The models tenants can call: published, not retired, and bound to a route.
    pub fn available_models(&self) -> impl Iterator<Item = (&String, &ModelEntry)> {
        self.models
            .iter()
            .filter(|(name, model)| !model.retired && self.routes.contains_key(*name))
    }

    /// The models one tenant can call: available, and visible to the tenant (by id or plan).
    /// Everywhere a tenant looks — `/v1/models`, the portal, key scopes, a call — goes through
    /// this, so a model hidden from a tenant is, for that tenant, a model that does not exist.
    pub fn models_for<'v>(
        &'v self,
        tenant_id: &'v str,
    ) -> impl Iterator<Item = (&'v String, &'v ModelEntry)> + 'v {
        let plan = self
            .tenants
            .get(tenant_id)
            .map_or(DEFAULT_PLAN, |t| t.plan.as_str());
        self.available_models()
            .filter(move |(_, model)| model.visibility.admits(tenant_id, plan))
    }

    /// One model a tenant can call, by its public name.
    pub fn model_for(&self, tenant_id: &str, name: &str) -> Option<&ModelEntry> {
        let model = self.models.get(name)?;
        let plan = self
            .tenants
            .get(tenant_id)
            .map_or(DEFAULT_PLAN, |t| t.plan.as_str());
        (!model.retired
            && self.routes.contains_key(name)
            && model.visibility.admits(tenant_id, plan))
        .then_some(model)
    }

    /// Every key of one tenant, revoked ones included.
    pub fn keys_of(&self, tenant_id: &str) -> Vec<&KeyEntry> {
        self.keys
            .values()
            .filter(|key| key.tenant_id == tenant_id)
            .collect()
    }

    /// The active agent a referral code names (codes compare case-insensitively).
    pub fn agent_by_referral(&self, code: &str) -> Option<(&String, &AgentEntry)> {
        let code = code.trim().to_uppercase();
        self.agents
            .iter()
            .find(|(_, agent)| !agent.disabled && agent.referral_code == code)
    }

    pub fn key_by_id(&self, key_id: &str) -> Option<&KeyEntry> {
        self.key_hashes
            .get(key_id)
            .and_then(|hash| self.keys.get(hash))
    }

    /// Applies one event. Events must come in log order.
    pub fn apply(&mut self, event: &StoredEvent) {
        self.position = event.tail_position();
        let id = event.aggregate_id.as_str();
        match event.aggregate_type.as_str() {
            types::TENANT => {
                if let Some(e) = decode::<TenantEvent>(event) {
                    self.apply_tenant(id, e, recorded_at(event))
                }
            }
            types::OPERATOR => {
                if let Some(e) = decode::<OperatorEvent>(event) {
                    self.apply_operator(id, e)
                }
            }
            types::AGENT => {
                if let Some(e) = decode::<AgentEvent>(event) {
                    self.apply_agent(id, e, recorded_at(event))
                }
            }
            types::API_KEY => {
                if let Some(e) = decode::<ApiKeyEvent>(event) {
                    self.apply_key(id, e, recorded_at(event))
                }
            }
            types::CATALOG_MODEL => {
                if let Some(e) = decode::<CatalogModelEvent>(event) {
                    self.apply_model(id, e, recorded_at(event))
                }
            }
            types::ROUTE => {
                if let Some(e) = decode::<RouteEvent>(event) {
                    self.apply_route(id, e)
                }
            }
            types::PROVIDER => {
                if let Some(e) = decode::<ProviderEvent>(event) {
                    self.apply_provider(id, e, recorded_at(event))
                }
            }
            _ => {}
        }
    }

    fn apply_tenant(&mut self, id: &str, event: TenantEvent, recorded_at: DateTime<Utc>) {
        match event {
            TenantEvent::Registered {
                email,
                name,
                password_hash,
                referred_by,
                verification_required,
            } => {
                self.tenants.insert(
                    id.to_string(),
                    TenantEntry {
                        email,
                        name,
                        status: TenantStatus::Active,
                        password_hash,
                        one_time_password: None,
                        agent_id: referred_by,
                        plan: DEFAULT_PLAN.to_string(),
                        registered_at: recorded_at,
                        email_unverified: verification_required,
                        policy: Default::default(),
                    },
                );
            }
            other => {
                let Some(tenant) = self.tenants.get_mut(id) else {
                    return;
                };
                match other {
                    TenantEvent::PasswordChanged {
                        password_hash,
                        temporary,
                        expires_at,
                    } => {
                        tenant.password_hash = password_hash;
                        tenant.one_time_password = OneTimePassword::of(temporary, expires_at);
                    }
                    TenantEvent::EmailVerified { .. } => tenant.email_unverified = false,
                    TenantEvent::Renamed { name } => tenant.name = name,
                    TenantEvent::Suspended { .. } => tenant.status = TenantStatus::Suspended,
                    TenantEvent::Reactivated => tenant.status = TenantStatus::Active,
                    TenantEvent::PlanChanged { plan } => tenant.plan = plan,
                    TenantEvent::PolicyUpdated { policy } => tenant.policy = policy,
                    TenantEvent::Registered { .. } => {}
                }
            }
        }
    }

    fn apply_operator(&mut self, id: &str, event: OperatorEvent) {
        if let OperatorEvent::Registered {
            email,
            password_hash,
            role,
            temporary,
            expires_at,
        } = event
        {
            let entry = OperatorEntry {
                email,
                role,
                password_hash,
                one_time_password: OneTimePassword::of(temporary, expires_at),
                disabled: false,
            };
            self.operators.insert(id.to_string(), entry);
            return;
        }
        let Some(operator) = self.operators.get_mut(id) else {
            return;
        };
        match event {
            OperatorEvent::PasswordChanged {
                password_hash,
                temporary,
                expires_at,
            } => {
                operator.password_hash = password_hash;
                operator.one_time_password = OneTimePassword::of(temporary, expires_at);
            }
            OperatorEvent::Disabled => operator.disabled = true,
            OperatorEvent::Registered { .. } => {}
        }
    }

    fn apply_agent(&mut self, id: &str, event: AgentEvent, recorded_at: DateTime<Utc>) {
        if let AgentEvent::Registered {
            email,
            name,
            password_hash,
            commission_bps,
            referral_code,
            temporary,
            expires_at,
        } = event
        {
            let entry = AgentEntry {
                email,
                name,
                password_hash,
                one_time_password: OneTimePassword::of(temporary, expires_at),
                commission_bps,
                referral_code,
                disabled: false,
                registered_at: recorded_at,
            };
            self.agents.insert(id.to_string(), entry);
            return;
        }
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        match event {
            AgentEvent::PasswordChanged {
                password_hash,
                temporary,
                expires_at,
            } => {
                agent.password_hash = password_hash;
                agent.one_time_password = OneTimePassword::of(temporary, expires_at);
            }
            AgentEvent::CommissionChanged { commission_bps } => {
                agent.commission_bps = commission_bps
            }
            AgentEvent::Disabled => agent.disabled = true,
            AgentEvent::Enabled => agent.disabled = false,
            AgentEvent::Registered { .. } | AgentEvent::CommissionPaid { .. } => {}
        }
    }

    fn apply_key(&mut self, id: &str, event: ApiKeyEvent, recorded_at: DateTime<Utc>) {
        if let ApiKeyEvent::Created {
            tenant_id,
            name,
            hash,
            prefix,
            scope,
            expires_at,
        } = event
        {
            self.key_hashes.insert(id.to_string(), hash.clone());
            self.keys.insert(
                hash,
                KeyEntry {
                    key_id: id.to_string(),
                    tenant_id,
                    name,
                    prefix,
                    scope,
                    revoked: false,
                    expires_at,
                    created_at: recorded_at,
                },
            );
            return;
        }
        let Some(key) = self
            .key_hashes
            .get(id)
            .and_then(|hash| self.keys.get_mut(hash))
        else {
            return;
        };
        match event {
            ApiKeyEvent::ScopeChanged { scope } => key.scope = scope,
            ApiKeyEvent::Renamed { name } => key.name = name,
            ApiKeyEvent::Revoked => key.revoked = true,
            ApiKeyEvent::Created { .. } => {}
        }
    }

    fn apply_model(&mut self, id: &str, event: CatalogModelEvent, recorded_at: DateTime<Utc>) {
        if let CatalogModelEvent::Published {
            details,
            pricing,
            price_version,
        } = event
        {
            self.models.insert(
                id.to_string(),
                ModelEntry {
                    details,
                    prices: vec![PriceVersion {
                        version: price_version,
                        pricing,
                        effective_at: recorded_at,
                    }],
                    retired: false,
                    visibility: Visibility::Everyone,
                    created: recorded_at.timestamp(),
                },
            );
            return;
        }
        let Some(model) = self.models.get_mut(id) else {
            return;
        };
        match event {
            CatalogModelEvent::DetailsChanged { details } => {
                model.details = details;
                model.retired = false;
            }
            CatalogModelEvent::PricingChanged {
                pricing,
                price_version,
                effective_at,
            } => {
                let effective_at = effective_at.unwrap_or(recorded_at);
                // A newer version replaces any scheduled one that starts at or after it.
                model.prices.retain(|p| p.effective_at < effective_at);
                model.prices.push(PriceVersion {
                    version: price_version,
                    pricing,
                    effective_at,
                });
            }
            CatalogModelEvent::VisibilityChanged { visibility } => model.visibility = visibility,
            CatalogModelEvent::Retired => model.retired = true,
            CatalogModelEvent::Restored => model.retired = false,
            CatalogModelEvent::Published { .. } => {}
        }
    }

    fn apply_route(&mut self, id: &str, event: RouteEvent) {
        if let RouteEvent::BindingChanged { deployments, retry } = event {
            let route = self.routes.entry(id.to_string()).or_insert(RouteEntry {
                deployments: Vec::new(),
                retry,
                rollout: None,
            });
            route.deployments = deployments;
            route.retry = retry;
            return;
        }
        let Some(route) = self.routes.get_mut(id) else {
            return;
        };
        match event {
            RouteEvent::RolloutStarted {
                rollout_id,
                candidate,
                percent,
            } => {
                route.rollout = Some(Rollout {
                    id: rollout_id,
                    candidate,
                    percent,
                })
            }
            RouteEvent::RolloutPercentChanged { percent } => {
                if let Some(rollout) = &mut route.rollout {
                    rollout.percent = percent;
                }
            }
            RouteEvent::RolloutPromoted => {
                if let Some(rollout) = route.rollout.take() {
                    route.deployments = rollout.candidate;
                }
            }
            RouteEvent::RolledBack => route.rollout = None,
            RouteEvent::BindingChanged { .. } => {}
        }
    }

    fn apply_provider(&mut self, id: &str, event: ProviderEvent, recorded_at: DateTime<Utc>) {
        match event {
            ProviderEvent::Registered(config) => {
                self.providers.insert(
                    id.to_string(),
                    ProviderEntry {
                        config,
                        enabled: true,
                        credential: None,
                        fingerprint: None,
                        credential_rotated_at: None,
                        last_test: None,
                        registered_at: recorded_at,
                    },
                );
            }
            other => {
                let Some(provider) = self.providers.get_mut(id) else {
                    return;
                };
                match other {
                    ProviderEvent::Reconfigured(config) => provider.config = config,
                    ProviderEvent::CredentialRotated {
                        ciphertext,
                        fingerprint,
                    } => {
                        provider.credential = Some(ciphertext);
                        provider.fingerprint = Some(fingerprint);
                        provider.credential_rotated_at = Some(recorded_at);
                    }
                    ProviderEvent::ConnectionTested(test) => provider.last_test = Some(test),
                    ProviderEvent::Enabled => provider.enabled = true,
                    ProviderEvent::Disabled => provider.enabled = false,
                    ProviderEvent::Registered(_) => {}
                }
            }
        }
    }
}

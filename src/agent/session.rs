//! Agent sessions: the [`SignedInAgent`] extractor and the [`AgentScope`] every agent page reads
//! through.
//!
//! Agents sign in at `/agent/login` with their own session cookie (realm `agent`): a tenant's or
//! an operator's session never opens an agent page, and an agent's opens no other site.
//!
//! Architecture invariant: an [`AgentScope`] is made only here, from a live agent session, and
//! every agent read takes one — so an agent can only ever name its own referred tenants.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use modelrouter_domain::aggregate_types::AGENT;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_projections::sql::commissions::{self, MonthRow, ReferredTenant, StatementLine};
use modelrouter_projections::Db;

use crate::gateway::{AppState, RequestId};
use crate::portal::session::{
    check_csrf, current_session, require_own_password, sent_csrf, signed_in_or_none,
};
use crate::portal::{Chrome, PortalError, Site};
use crate::store::sessions::{self, Realm};

/// Proof that a request acts for one signed-in agent, and the only way to its data.
#[derive(Debug, Clone)]
pub struct AgentScope {
    agent_id: String,
}

impl AgentScope {
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The metadata of an event this agent causes.
    pub fn metadata(&self, request: &RequestId) -> Metadata {
        let metadata = Metadata::new(&Actor::Agent(self.agent_id.clone())).request_id(&request.id);
        match &request.client_ip {
            Some(ip) => metadata.client_ip(ip),
            None => metadata,
        }
    }

    /// The agent's referred tenants, with their usage all time and in `month`.
    pub async fn tenants(&self, db: &Db, month: &str) -> Result<Vec<ReferredTenant>, PortalError> {
        Ok(commissions::tenants_of(db, &self.agent_id, month).await?)
    }

    /// Commission by month, newest first.
    pub async fn months(&self, db: &Db) -> Result<Vec<MonthRow>, PortalError> {
        Ok(commissions::months_of(db, &self.agent_id).await?)
    }

    /// One month's statement lines.
    pub async fn statement(&self, db: &Db, month: &str) -> Result<Vec<StatementLine>, PortalError> {
        Ok(commissions::statement(db, &self.agent_id, month).await?)
    }
}

/// A signed-in agent.
pub struct SignedInAgent {
    pub scope: AgentScope,
    pub email: String,
    pub name: String,
    pub referral_code: String,
    pub commission_bps: u32,
    pub csrf: String,
    token: String,
}

impl SignedInAgent {
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn verify_csrf(&self, sent: &str) -> Result<(), PortalError> {
        check_csrf(sent, &self.csrf)
    }

    pub fn chrome(&self, active: &'static str) -> Chrome {
        Chrome {
            email: self.email.clone(),
            csrf: self.csrf.clone(),
            active,
        }
    }
}

impl FromRequestParts<Arc<AppState>> for SignedInAgent {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let (session, token) = current_session(parts, state, Realm::Agent).await?;
        let id = session.subject_id;
        if !state.live.view().agents.contains_key(&id) {
            state.live.include(&state.db, AGENT, &id).await?;
        }
        let agent = state
            .live
            .view()
            .agents
            .get(&id)
            .cloned()
            .ok_or(PortalError::SignedOut)?;
        if agent.disabled {
            sessions::end_session(&state.db, &token).await?;
            return Err(PortalError::Suspended);
        }
        require_own_password(Site::Agent, agent.one_time_password, parts)?;
        Ok(SignedInAgent {
            scope: AgentScope { agent_id: id },
            email: agent.email,
            name: agent.name,
            referral_code: agent.referral_code,
            commission_bps: agent.commission_bps,
            csrf: session.csrf,
            token,
        })
    }
}

impl axum::extract::OptionalFromRequestParts<Arc<AppState>> for SignedInAgent {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Option<Self>, Self::Rejection> {
        signed_in_or_none(
            <SignedInAgent as FromRequestParts<Arc<AppState>>>::from_request_parts(parts, state)
                .await,
        )
    }
}

/// A signed-in agent whose JSON write carries the session's CSRF token in `X-CSRF-Token`.
pub struct AgentWriter(pub SignedInAgent);

impl FromRequestParts<Arc<AppState>> for AgentWriter {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let agent = SignedInAgent::from_request_parts(parts, state).await?;
        agent.verify_csrf(sent_csrf(parts))?;
        Ok(AgentWriter(agent))
    }
}

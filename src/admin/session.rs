//! Operator sessions: the [`SignedInOperator`] extractor and the [`OperatorHandle`] every admin
//! action takes.
//!
//! Operators sign in at `/admin/login` with their own session cookie (realm `operator`), so a
//! tenant's or an agent's session never opens a console page or `/api/admin` — and an operator's
//! session opens no tenant's portal. Forms carry the session's CSRF token; JSON writes send it
//! as `X-CSRF-Token`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use modelrouter_domain::aggregate_types::OPERATOR;
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_domain::operator::OperatorRole;

use crate::gateway::{AppState, RequestId};
use crate::portal::session::{
    check_csrf, current_session, require_own_password, sent_csrf, signed_in_or_none,
};
use crate::portal::{Chrome, PortalError, Site};
use crate::store::sessions::{self, Realm};

/// Proof that a request acts for a signed-in, enabled operator: only [`SignedInOperator`]'s
/// extractor makes one, and every admin action takes one (there is no `is_admin` flag).
#[derive(Debug, Clone)]
pub struct OperatorHandle {
    operator_id: String,
}

impl OperatorHandle {
    pub fn id(&self) -> &str {
        &self.operator_id
    }

    pub fn actor(&self) -> Actor {
        Actor::Operator(self.operator_id.clone())
    }

    /// The metadata of an event this operator causes: the operator as actor, the request id and
    /// the client address.
    pub fn metadata(&self, request: &RequestId) -> Metadata {
        let metadata = Metadata::new(&self.actor()).request_id(&request.id);
        match &request.client_ip {
            Some(ip) => metadata.client_ip(ip),
            None => metadata,
        }
    }
}

/// A signed-in operator.
pub struct SignedInOperator {
    pub handle: OperatorHandle,
    pub email: String,
    pub role: OperatorRole,
    pub csrf: String,
    token: String,
}

impl SignedInOperator {
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Checks a form's CSRF token against the session's.
    pub fn verify_csrf(&self, sent: &str) -> Result<(), PortalError> {
        check_csrf(sent, &self.csrf)
    }

    /// The page chrome of a console page whose navigation entry is `active`.
    pub fn chrome(&self, active: &'static str) -> Chrome {
        Chrome {
            email: self.email.clone(),
            csrf: self.csrf.clone(),
            active,
        }
    }
}

impl FromRequestParts<Arc<AppState>> for SignedInOperator {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let (session, token) = current_session(parts, state, Realm::Operator).await?;
        let id = session.subject_id;
        if !state.live.view().operators.contains_key(&id) {
            // Created a moment ago by the CLI: read the log once more.
            state.live.include(&state.db, OPERATOR, &id).await?;
        }
        let operator = state
            .live
            .view()
            .operators
            .get(&id)
            .cloned()
            .ok_or(PortalError::SignedOut)?;
        if operator.disabled {
            sessions::end_session(&state.db, &token).await?;
            return Err(PortalError::SignedOut);
        }
        require_own_password(Site::Admin, operator.one_time_password, parts)?;
        super::roles::check(operator.role, &parts.method, parts.uri.path())?;
        Ok(SignedInOperator {
            handle: OperatorHandle { operator_id: id },
            email: operator.email,
            role: operator.role,
            csrf: session.csrf,
            token,
        })
    }
}

impl axum::extract::OptionalFromRequestParts<Arc<AppState>> for SignedInOperator {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Option<Self>, Self::Rejection> {
        signed_in_or_none(
            <SignedInOperator as FromRequestParts<Arc<AppState>>>::from_request_parts(parts, state)
                .await,
        )
    }
}

/// A signed-in operator whose JSON write carries the session's CSRF token in `X-CSRF-Token`.
pub struct AdminWriter(pub SignedInOperator);

impl FromRequestParts<Arc<AppState>> for AdminWriter {
    type Rejection = PortalError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let operator = SignedInOperator::from_request_parts(parts, state).await?;
        operator.verify_csrf(sent_csrf(parts))?;
        Ok(AdminWriter(operator))
    }
}

//! Throttling of code guessing: prepaid codes redeemed in the portal and receipt verification
//! codes checked on the public page and API. Prepaid codes are money to whoever guesses one, and
//! a receipt check says whether an order number and code belong together, so neither may be
//! tried at machine speed.
//!
//! Wrong codes are counted in the sign-in throttle's table (`store::sessions`, subjects prefixed
//! `code:`), so replicas on one database share the counts. A redemption is counted per tenant
//! account — every session of it, since a guesser who can sign in can open new sessions — and
//! per client address; a receipt check, which needs no sign-in, per client address. After the
//! configured number of wrong codes within the window (`CodeGuessLimits`), further tries are
//! refused with 429 for one window's length. A right code clears nothing: one valid code
//! must not buy a guesser a fresh count.

use chrono::Utc;

use super::error::PortalError;
use crate::gateway::{AppState, RequestId};
use crate::store::sessions::{self as store_sessions, ThrottleRule};

/// The counters one kind of code try is checked against.
pub struct CodeTries {
    subjects: Vec<(String, ThrottleRule)>,
}

impl CodeTries {
    /// A tenant redeeming a prepaid code. `request.client_ip` is the address the request
    /// middleware records (the connection's peer address).
    pub fn redeem(state: &AppState, tenant_id: &str, request: &RequestId) -> CodeTries {
        let limits = state.settings.code_guesses;
        let mut subjects = vec![(
            format!("code:redeem:tenant:{tenant_id}"),
            rule(limits.per_account, limits.window),
        )];
        if let Some(ip) = &request.client_ip {
            subjects.push((
                format!("code:redeem:ip:{ip}"),
                rule(limits.per_address, limits.window),
            ));
        }
        CodeTries { subjects }
    }

    /// Anyone checking a receipt's verification code.
    pub fn receipt(state: &AppState, request: &RequestId) -> CodeTries {
        let limits = state.settings.code_guesses;
        let subjects = request
            .client_ip
            .iter()
            .map(|ip| {
                (
                    format!("code:receipt:ip:{ip}"),
                    rule(limits.per_address, limits.window),
                )
            })
            .collect();
        CodeTries { subjects }
    }

    /// Refuses the try when too many wrong codes came from here within the window.
    pub async fn allowed(&self, state: &AppState) -> Result<(), PortalError> {
        let now = Utc::now();
        for (subject, _) in &self.subjects {
            if let Some(until) = store_sessions::locked_until(&state.db, subject, now).await? {
                return Err(PortalError::TooManyCodes(until));
            }
        }
        Ok(())
    }

    /// Counts a wrong code. The try itself is answered as usual; the next one may be refused.
    pub async fn failed(&self, state: &AppState) -> Result<(), PortalError> {
        let now = Utc::now();
        for (subject, rule) in &self.subjects {
            store_sessions::record_failure(&state.db, subject, now, rule).await?;
        }
        Ok(())
    }
}

/// `max_failures` wrong codes within `window` (counted from the first of them) refuse further
/// tries for `window`.
fn rule(max_failures: u32, window: std::time::Duration) -> ThrottleRule {
    ThrottleRule {
        max_failures,
        window,
        lockout: window,
    }
}

//! "Test connection": one real, minimal call to a provider — a one-message chat asking for one
//! output token — through the same upstream adapter, encoder and decoder the gateway uses, with
//! the provider's decrypted credential. The result (latency, or the upstream's status and a
//! short, sanitized message) is recorded as a `ConnectionTested` event with the operator as
//! actor, so every replica lists the last result and the audit trail keeps each test.
//!
//! The call is not metered and charges no tenant: it is the operator's, not a customer's.

use std::time::{Duration, Instant};

use chrono::Utc;
use modelrouter_domain::aggregate_types::PROVIDER;
use modelrouter_domain::provider::{ConnectionTest, ProviderCommand, TEST_ERROR_MAX_CHARS};
use modelrouter_projections::live::LiveView;

use super::session::SignedInOperator;
use crate::crypto::Secret;
use crate::gateway::{outbound, AppState, RequestId};
use crate::portal::PortalError;
use crate::protocol::canonical::{ChatRequest, Message, Part, Role};
use crate::upstream::{self, Call, UpstreamError};

/// A test waits at most this long for the upstream (or the gateway's own first-byte timeout,
/// if shorter): an operator is watching the page.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The upstream model a test uses unless the operator names one: that of the first route (by
/// public model name) with a deployment on this provider.
pub fn default_upstream_model(view: &LiveView, provider: &str) -> Option<String> {
    let mut models: Vec<&String> = view.routes.keys().collect();
    models.sort();
    models.into_iter().find_map(|model| {
        view.routes[model]
            .deployments
            .iter()
            .find(|d| d.provider == provider)
            .map(|d| d.upstream_model.clone())
    })
}

/// Runs a connection test of provider `id` against `upstream_model` (or the default), records
/// its result and returns it. A test that could not even start (no credential, no model to
/// ask for) is an `Invalid` error and records nothing.
pub async fn run(
    state: &AppState,
    operator: &SignedInOperator,
    request: &RequestId,
    id: &str,
    upstream_model: Option<&str>,
) -> Result<ConnectionTest, PortalError> {
    let provider = super::providers::entry(state, id).await?;
    let model = match upstream_model.map(str::trim).filter(|m| !m.is_empty()) {
        Some(model) if model.chars().count() > 200 => {
            return Err(PortalError::invalid(
                "upstream_model",
                "The upstream model name is too long (at most 200 characters).",
            ))
        }
        Some(model) => model.to_string(),
        None => default_upstream_model(&state.live.view(), id).ok_or_else(|| {
            PortalError::invalid(
                "upstream_model",
                "No route uses this provider yet: name the upstream model to test with.",
            )
        })?,
    };
    let Some(sealed) = provider.credential.as_deref() else {
        return Err(PortalError::invalid(
            "credential",
            "Set a credential before testing the connection.",
        ));
    };
    let tested_at = Utc::now();
    let started = Instant::now();
    let outcome = match state.master_key.open(sealed) {
        Ok(credential) => call(state, &provider.config, &credential, &model).await,
        Err(_) => Err(UpstreamError::Credential),
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let test = match outcome {
        Ok(()) => ConnectionTest {
            ok: true,
            latency_ms,
            status: Some(200),
            error: None,
            upstream_model: model,
            tested_at,
        },
        Err(error) => {
            let credential = state.master_key.open(sealed).ok();
            ConnectionTest {
                ok: false,
                latency_ms,
                status: error.status(),
                error: Some(describe(&error, credential.as_ref())),
                upstream_model: model,
                tested_at,
            }
        }
    };
    state
        .commands
        .providers
        .execute(
            id,
            ProviderCommand::RecordConnectionTest(test.clone()),
            &operator.handle.metadata(request),
        )
        .await?;
    state.live.include(&state.db, PROVIDER, id).await?;
    Ok(test)
}

/// The minimal call: encode, send, read the whole body and decode it (MiniMax reports some
/// errors inside an HTTP 200, which then fail the test as they would fail a call).
async fn call(
    state: &AppState,
    config: &modelrouter_domain::provider::ProviderConfig,
    credential: &Secret,
    model: &str,
) -> Result<(), UpstreamError> {
    let request = ChatRequest {
        model: model.to_string(),
        messages: vec![Message {
            role: Role::User,
            parts: vec![Part::Text {
                text: "ping".into(),
                cache_control: None,
            }],
            name: None,
        }],
        max_output_tokens: Some(1),
        ..ChatRequest::default()
    };
    let encoded = outbound::encode(config.protocol, &request, model)
        .map_err(|error| UpstreamError::Transport(error.to_string()))?;
    let timeout = TEST_TIMEOUT.min(state.settings.upstream_first_byte_timeout);
    let call = Call {
        path: encoded.path,
        body: &encoded.body,
        stream: false,
    };
    let response = upstream::send(
        &state.http,
        config.protocol,
        &config.base_url,
        credential,
        call,
        timeout,
    )
    .await?;
    let bytes = tokio::time::timeout(timeout, response.bytes())
        .await
        .map_err(|_| UpstreamError::Timeout)?
        .map_err(upstream::classify)?;
    outbound::decode(config.protocol, &bytes).map(|_| ())
}

/// A short account of a failure for people: what went wrong and, for an upstream status, the
/// upstream's own message — with the credential blanked out should an upstream echo it, control
/// characters removed, and cut to the length an event keeps.
pub fn describe(error: &UpstreamError, credential: Option<&Secret>) -> String {
    let text = match error {
        UpstreamError::Status {
            message: Some(message),
            ..
        } => format!("{error}: {message}"),
        UpstreamError::Credential => {
            "the stored credential cannot be opened with this master key".to_string()
        }
        other => other.to_string(),
    };
    sanitize(&text, credential)
}

fn sanitize(text: &str, credential: Option<&Secret>) -> String {
    let mut text = text.to_string();
    if let Some(secret) = credential.map(Secret::expose).filter(|s| !s.is_empty()) {
        text = text.replace(secret, "*****");
    }
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() <= TEST_ERROR_MAX_CHARS {
        return cleaned.to_string();
    }
    let mut cut: String = cleaned.chars().take(TEST_ERROR_MAX_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_hide_the_credential_and_stay_short() {
        let secret = Secret::new("sk-live-123456");
        let error = UpstreamError::Status {
            status: 401,
            message: Some("Incorrect API key provided: sk-live-123456.\nCheck it.".into()),
        };
        let text = describe(&error, Some(&secret));
        assert_eq!(
            text,
            "the upstream answered 401: Incorrect API key provided: *****. Check it."
        );
        let long = UpstreamError::Status {
            status: 500,
            message: Some("x".repeat(1000)),
        };
        let text = describe(&long, None);
        assert_eq!(text.chars().count(), TEST_ERROR_MAX_CHARS);
        assert!(text.ends_with('…'));
        assert_eq!(
            describe(&UpstreamError::Connect, None),
            "could not connect to the upstream"
        );
    }
}

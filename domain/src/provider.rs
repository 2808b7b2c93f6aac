//! Provider: an upstream endpoint (protocol, base URL, region) and its credential, which is only
//! ever stored encrypted. The fingerprint (a keyed hash, computed by the caller) lets a repeated
//! import tell "same credential" without the plaintext. Connection tests an operator runs are
//! recorded on the provider too, so every replica shows the last result and the audit trail has it.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    Openai,
    Anthropic,
    Dashscope,
    Minimax,
}

impl UpstreamProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamProtocol::Openai => "openai",
            UpstreamProtocol::Anthropic => "anthropic",
            UpstreamProtocol::Dashscope => "dashscope",
            UpstreamProtocol::Minimax => "minimax",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub protocol: UpstreamProtocol,
    pub base_url: String,
    pub region: String,
}

/// The outcome of one "test connection": a minimal real call to the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionTest {
    pub ok: bool,
    pub latency_ms: u64,
    /// The upstream's HTTP status, when one arrived.
    pub status: Option<u16>,
    /// Why the call failed, short and sanitized (never the credential, never a raw body).
    pub error: Option<String>,
    pub upstream_model: String,
    pub tested_at: DateTime<Utc>,
}

/// The longest error text a recorded connection test keeps.
pub const TEST_ERROR_MAX_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderCommand {
    /// Registers the provider, or reconfigures it where the config differs.
    Configure(ProviderConfig),
    /// Registers a new provider; refused when the id is already taken (the console's "add",
    /// where quietly reconfiguring an existing provider would surprise the operator).
    Register(ProviderConfig),
    RotateCredential {
        ciphertext: String,
        fingerprint: String,
    },
    Enable,
    Disable,
    RecordConnectionTest(ConnectionTest),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderEvent {
    Registered(ProviderConfig),
    Reconfigured(ProviderConfig),
    CredentialRotated {
        ciphertext: String,
        fingerprint: String,
    },
    Enabled,
    Disabled,
    ConnectionTested(ConnectionTest),
}
crate::domain_event!(ProviderEvent, "1");

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Provider {
    config: Option<ProviderConfig>,
    fingerprint: Option<String>,
    disabled: bool,
}

/// Checks a new provider's id: a slug of 2 to 64 lower-case letters, digits and hyphens that
/// starts with a letter or digit (`openai-main`). Ids appear in URLs, routes and metrics.
pub fn validate_id(id: &str) -> Result<(), DomainError> {
    let slug = id.len() >= 2
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !id.ends_with('-');
    if slug {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "name",
            "use 2 to 64 lower-case letters, digits and hyphens, starting with a letter or \
             digit (e.g. openai-main)",
        ))
    }
}

fn validate(config: &ProviderConfig) -> Result<(), DomainError> {
    let url = config.base_url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err(DomainError::invalid(
            "base_url",
            "must be an http:// or https:// URL",
        ));
    }
    if config.region.trim().is_empty() {
        return Err(DomainError::invalid("region", "must be given"));
    }
    Ok(())
}

impl Aggregate for Provider {
    const TYPE: &'static str = crate::aggregate_types::PROVIDER;
    type Command = ProviderCommand;
    type Event = ProviderEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ProviderCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            ProviderCommand::Configure(mut config) => {
                validate(&config)?;
                config.base_url = config.base_url.trim().trim_end_matches('/').to_string();
                match &self.config {
                    None => ProviderEvent::Registered(config),
                    Some(current) if *current == config => return Ok(()),
                    Some(_) => ProviderEvent::Reconfigured(config),
                }
            }
            ProviderCommand::Register(mut config) => {
                if self.config.is_some() {
                    return Err(DomainError::AlreadyExists("provider"));
                }
                validate(&config)?;
                config.base_url = config.base_url.trim().trim_end_matches('/').to_string();
                ProviderEvent::Registered(config)
            }
            _ if self.config.is_none() => return Err(DomainError::NotFound("provider")),
            ProviderCommand::RotateCredential {
                ciphertext,
                fingerprint,
            } => {
                if self.fingerprint.as_ref() == Some(&fingerprint) {
                    return Ok(());
                }
                if ciphertext.is_empty() {
                    return Err(DomainError::invalid("credential", "must not be empty"));
                }
                ProviderEvent::CredentialRotated {
                    ciphertext,
                    fingerprint,
                }
            }
            ProviderCommand::Enable if !self.disabled => return Ok(()),
            ProviderCommand::Enable => ProviderEvent::Enabled,
            ProviderCommand::Disable if self.disabled => return Ok(()),
            ProviderCommand::Disable => ProviderEvent::Disabled,
            ProviderCommand::RecordConnectionTest(test) => {
                if test.upstream_model.trim().is_empty() {
                    return Err(DomainError::invalid("upstream_model", "must be given"));
                }
                if test.ok != test.error.is_none() {
                    return Err(DomainError::invalid(
                        "error",
                        "a failed test says why, a passed one has no error",
                    ));
                }
                if test
                    .error
                    .as_ref()
                    .is_some_and(|e| e.chars().count() > TEST_ERROR_MAX_CHARS)
                {
                    return Err(DomainError::invalid(
                        "error",
                        format!("must be at most {TEST_ERROR_MAX_CHARS} characters"),
                    ));
                }
                ProviderEvent::ConnectionTested(test)
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: ProviderEvent) {
        match event {
            ProviderEvent::Registered(config) | ProviderEvent::Reconfigured(config) => {
                self.config = Some(config)
            }
            ProviderEvent::CredentialRotated { fingerprint, .. } => {
                self.fingerprint = Some(fingerprint)
            }
            ProviderEvent::Enabled => self.disabled = false,
            ProviderEvent::Disabled => self.disabled = true,
            ProviderEvent::ConnectionTested(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Provider>;

    fn config(url: &str) -> ProviderConfig {
        ProviderConfig {
            protocol: UpstreamProtocol::Openai,
            base_url: url.into(),
            region: "us-east".into(),
        }
    }

    #[test]
    fn configure_registers_then_only_changes() {
        Given::with(())
            .given_no_previous_events()
            .when(ProviderCommand::Configure(config("http://up.example/v1/")))
            .then_expect_events(vec![ProviderEvent::Registered(config(
                "http://up.example/v1",
            ))]);
        Given::with(())
            .given(vec![ProviderEvent::Registered(config(
                "http://up.example/v1",
            ))])
            .when(ProviderCommand::Configure(config("http://up.example/v1")))
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![ProviderEvent::Registered(config(
                "http://up.example/v1",
            ))])
            .when(ProviderCommand::Configure(config(
                "http://other.example/v1",
            )))
            .then_expect_events(vec![ProviderEvent::Reconfigured(config(
                "http://other.example/v1",
            ))]);
    }

    #[test]
    fn base_url_must_be_http() {
        Given::with(())
            .given_no_previous_events()
            .when(ProviderCommand::Configure(config("ftp://x.example")))
            .then_expect_error_message("invalid base_url: must be an http:// or https:// URL");
    }

    #[test]
    fn register_refuses_a_taken_id() {
        Given::with(())
            .given_no_previous_events()
            .when(ProviderCommand::Register(config("http://up.example/v1/")))
            .then_expect_events(vec![ProviderEvent::Registered(config(
                "http://up.example/v1",
            ))]);
        Given::with(())
            .given(vec![ProviderEvent::Registered(config(
                "http://up.example/v1",
            ))])
            .when(ProviderCommand::Register(config("http://other.example/v1")))
            .then_expect_error(DomainError::AlreadyExists("provider"));
    }

    #[test]
    fn ids_are_slugs() {
        for good in ["openai-main", "q1", "dashscope-cn-2"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "-x",
            "x-",
            "Open",
            "a b",
            "a_b",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    fn tested(ok: bool, error: Option<&str>) -> ConnectionTest {
        ConnectionTest {
            ok,
            latency_ms: 42,
            status: Some(if ok { 200 } else { 401 }),
            error: error.map(str::to_string),
            upstream_model: "gpt-x".into(),
            tested_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn connection_tests_are_recorded_on_a_known_provider() {
        let registered = ProviderEvent::Registered(config("http://up.example/v1"));
        Given::with(())
            .given(vec![registered.clone()])
            .when(ProviderCommand::RecordConnectionTest(tested(true, None)))
            .then_expect_events(vec![ProviderEvent::ConnectionTested(tested(true, None))]);
        // Every test is recorded, even the same result twice: each is a fact of its own time.
        Given::with(())
            .given(vec![
                registered.clone(),
                ProviderEvent::ConnectionTested(tested(false, Some("bad key"))),
            ])
            .when(ProviderCommand::RecordConnectionTest(tested(
                false,
                Some("bad key"),
            )))
            .then_expect_events(vec![ProviderEvent::ConnectionTested(tested(
                false,
                Some("bad key"),
            ))]);
        Given::with(())
            .given_no_previous_events()
            .when(ProviderCommand::RecordConnectionTest(tested(true, None)))
            .then_expect_error(DomainError::NotFound("provider"));
        Given::with(())
            .given(vec![registered.clone()])
            .when(ProviderCommand::RecordConnectionTest(tested(false, None)))
            .then_expect_error_message(
                "invalid error: a failed test says why, a passed one has no error",
            );
        let long = "x".repeat(TEST_ERROR_MAX_CHARS + 1);
        Given::with(())
            .given(vec![registered])
            .when(ProviderCommand::RecordConnectionTest(tested(
                false,
                Some(&long),
            )))
            .then_expect_error_message("invalid error: must be at most 300 characters");
    }

    #[test]
    fn same_credential_fingerprint_emits_nothing() {
        let rotated = ProviderEvent::CredentialRotated {
            ciphertext: "c1".into(),
            fingerprint: "f1".into(),
        };
        Given::with(())
            .given(vec![
                ProviderEvent::Registered(config("http://up.example/v1")),
                rotated,
            ])
            .when(ProviderCommand::RotateCredential {
                ciphertext: "c2".into(),
                fingerprint: "f1".into(),
            })
            .then_expect_events(vec![]);
    }
}

//! Provider: an upstream endpoint (protocol, base URL, region) and its credential, which is only
//! ever stored encrypted. The fingerprint (a keyed hash, computed by the caller) lets a repeated
//! import tell "same credential" without the plaintext.

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderCommand {
    /// Registers the provider, or reconfigures it where the config differs.
    Configure(ProviderConfig),
    RotateCredential {
        ciphertext: String,
        fingerprint: String,
    },
    Enable,
    Disable,
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
}
crate::domain_event!(ProviderEvent, "1");

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Provider {
    config: Option<ProviderConfig>,
    fingerprint: Option<String>,
    disabled: bool,
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

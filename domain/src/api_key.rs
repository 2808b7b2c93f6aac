//! ApiKey: a platform key of one tenant. Only the SHA-256 of the key is ever stored; the
//! plaintext is shown once by whoever created it. The scope says which models the key reaches.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Which models a key may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Every model the tenant may use, including ones published later.
    Auto,
    /// A selected set of public model names.
    Models(Vec<String>),
    /// Exactly one model; requests naming another model are refused with 403.
    Fixed(String),
}

impl KeyScope {
    pub fn allows(&self, model: &str) -> bool {
        match self {
            KeyScope::Auto => true,
            KeyScope::Models(models) => models.iter().any(|m| m == model),
            KeyScope::Fixed(fixed) => fixed == model,
        }
    }

    fn validate(&self) -> Result<(), DomainError> {
        match self {
            KeyScope::Auto => Ok(()),
            KeyScope::Models(models) if models.is_empty() => Err(DomainError::invalid(
                "scope",
                "a selected set needs at least one model",
            )),
            KeyScope::Models(models) if models.iter().any(|m| m.trim().is_empty()) => Err(
                DomainError::invalid("scope", "model names must not be empty"),
            ),
            KeyScope::Fixed(model) if model.trim().is_empty() => Err(DomainError::invalid(
                "scope",
                "the fixed model must be named",
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiKeyCommand {
    Create {
        tenant_id: String,
        name: String,
        /// Lower-case hex SHA-256 of the key.
        hash: String,
        /// The first characters of the key, shown in lists.
        prefix: String,
        scope: KeyScope,
        expires_at: Option<DateTime<Utc>>,
    },
    ChangeScope {
        scope: KeyScope,
    },
    Rename {
        name: String,
    },
    Revoke,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiKeyEvent {
    Created {
        tenant_id: String,
        name: String,
        hash: String,
        prefix: String,
        scope: KeyScope,
        expires_at: Option<DateTime<Utc>>,
    },
    ScopeChanged {
        scope: KeyScope,
    },
    Renamed {
        name: String,
    },
    Revoked,
}
crate::domain_event!(ApiKeyEvent, "1");

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ApiKey {
    created: bool,
    revoked: bool,
    name: String,
    scope: Option<KeyScope>,
}

fn check_name(name: &str) -> Result<(), DomainError> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(DomainError::invalid("name", "must be 1 to 100 characters"));
    }
    Ok(())
}

impl Aggregate for ApiKey {
    const TYPE: &'static str = crate::aggregate_types::API_KEY;
    type Command = ApiKeyCommand;
    type Event = ApiKeyEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: ApiKeyCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            ApiKeyCommand::Create {
                tenant_id,
                name,
                hash,
                prefix,
                scope,
                expires_at,
            } => {
                if self.created {
                    return Err(DomainError::AlreadyExists("api key"));
                }
                check_name(&name)?;
                scope.validate()?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(DomainError::invalid("hash", "must be a hex SHA-256"));
                }
                if tenant_id.is_empty() {
                    return Err(DomainError::invalid("tenant_id", "must be given"));
                }
                ApiKeyEvent::Created {
                    tenant_id,
                    name: name.trim().to_string(),
                    hash: hash.to_ascii_lowercase(),
                    prefix,
                    scope,
                    expires_at,
                }
            }
            _ if !self.created => return Err(DomainError::NotFound("api key")),
            _ if self.revoked => return Err(DomainError::Revoked("api key")),
            ApiKeyCommand::ChangeScope { scope } => {
                scope.validate()?;
                if self.scope.as_ref() == Some(&scope) {
                    return Ok(());
                }
                ApiKeyEvent::ScopeChanged { scope }
            }
            ApiKeyCommand::Rename { name } => {
                check_name(&name)?;
                if self.name == name.trim() {
                    return Ok(());
                }
                ApiKeyEvent::Renamed {
                    name: name.trim().to_string(),
                }
            }
            ApiKeyCommand::Revoke => ApiKeyEvent::Revoked,
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: ApiKeyEvent) {
        match event {
            ApiKeyEvent::Created { name, scope, .. } => {
                self.created = true;
                self.name = name;
                self.scope = Some(scope);
            }
            ApiKeyEvent::ScopeChanged { scope } => self.scope = Some(scope),
            ApiKeyEvent::Renamed { name } => self.name = name,
            ApiKeyEvent::Revoked => self.revoked = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<ApiKey>;
    const HASH: &str = "a3f1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    fn created(scope: KeyScope) -> ApiKeyEvent {
        ApiKeyEvent::Created {
            tenant_id: "t1".into(),
            name: "ci".into(),
            hash: HASH.into(),
            prefix: "sk-mr-ab".into(),
            scope,
            expires_at: None,
        }
    }

    #[test]
    fn create_with_each_scope_kind() {
        for scope in [
            KeyScope::Auto,
            KeyScope::Models(vec!["acc-gpt".into()]),
            KeyScope::Fixed("acc-claude".into()),
        ] {
            Given::with(())
                .given_no_previous_events()
                .when(ApiKeyCommand::Create {
                    tenant_id: "t1".into(),
                    name: "ci".into(),
                    hash: HASH.into(),
                    prefix: "sk-mr-ab".into(),
                    scope: scope.clone(),
                    expires_at: None,
                })
                .then_expect_events(vec![created(scope)]);
        }
    }

    #[test]
    fn empty_selected_set_is_refused() {
        Given::with(())
            .given_no_previous_events()
            .when(ApiKeyCommand::Create {
                tenant_id: "t1".into(),
                name: "ci".into(),
                hash: HASH.into(),
                prefix: "sk-mr-ab".into(),
                scope: KeyScope::Models(vec![]),
                expires_at: None,
            })
            .then_expect_error_message("invalid scope: a selected set needs at least one model");
    }

    #[test]
    fn plaintext_instead_of_hash_is_refused() {
        Given::with(())
            .given_no_previous_events()
            .when(ApiKeyCommand::Create {
                tenant_id: "t1".into(),
                name: "ci".into(),
                hash: "sk-mr-plaintext-key".into(),
                prefix: "sk-mr-pl".into(),
                scope: KeyScope::Auto,
                expires_at: None,
            })
            .then_expect_error_message("invalid hash: must be a hex SHA-256");
    }

    #[test]
    fn revoked_key_never_changes_again() {
        Given::with(())
            .given(vec![created(KeyScope::Auto), ApiKeyEvent::Revoked])
            .when(ApiKeyCommand::ChangeScope {
                scope: KeyScope::Fixed("acc-gpt".into()),
            })
            .then_expect_error(DomainError::Revoked("api key"));
        Given::with(())
            .given(vec![created(KeyScope::Auto), ApiKeyEvent::Revoked])
            .when(ApiKeyCommand::Revoke)
            .then_expect_error(DomainError::Revoked("api key"));
    }

    #[test]
    fn unchanged_scope_emits_nothing() {
        Given::with(())
            .given(vec![created(KeyScope::Auto)])
            .when(ApiKeyCommand::ChangeScope {
                scope: KeyScope::Auto,
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn scope_allows() {
        assert!(KeyScope::Auto.allows("x"));
        assert!(KeyScope::Models(vec!["a".into(), "b".into()]).allows("b"));
        assert!(!KeyScope::Models(vec!["a".into()]).allows("b"));
        assert!(!KeyScope::Fixed("a".into()).allows("b"));
    }
}

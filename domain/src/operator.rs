//! Operator: a platform administrator. The first ones are created by `modelrouter admin create`.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::tenant::normalize_email;
use crate::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    Admin,
    Finance,
    Support,
}

/// What a console change is about, for deciding which roles may make it. Reading is open to
/// every operator; changes are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Providers, credentials, the catalog, routes and agents: how the platform is built.
    Platform,
    /// Orders, refunds, vouchers, balance adjustments and commission payouts: money.
    Money,
    /// Tenants' accounts: suspension, password resets and plans.
    Accounts,
}

impl OperatorRole {
    /// Whether an operator of this role may make changes of this kind: admins everything,
    /// finance money, support tenants' accounts.
    pub fn may(self, duty: Duty) -> bool {
        matches!(
            (self, duty),
            (OperatorRole::Admin, _)
                | (OperatorRole::Finance, Duty::Money)
                | (OperatorRole::Support, Duty::Accounts)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorCommand {
    Register {
        email: String,
        password_hash: String,
        role: OperatorRole,
        /// A one-time password (`admin create`): changed at first sign-in, refused after
        /// `expires_at`.
        #[serde(default)]
        temporary: bool,
        #[serde(default)]
        expires_at: Option<DateTime<Utc>>,
    },
    ChangePassword {
        password_hash: String,
        #[serde(default)]
        temporary: bool,
        #[serde(default)]
        expires_at: Option<DateTime<Utc>>,
    },
    Disable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorEvent {
    Registered {
        email: String,
        password_hash: String,
        role: OperatorRole,
        /// A one-time password, to be replaced at the first sign-in.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        temporary: bool,
        /// When the one-time password stops working.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    PasswordChanged {
        password_hash: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        temporary: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    Disabled,
}
crate::domain_event!(OperatorEvent, "1");

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Operator {
    registered: bool,
    disabled: bool,
}

impl Aggregate for Operator {
    const TYPE: &'static str = crate::aggregate_types::OPERATOR;
    type Command = OperatorCommand;
    type Event = OperatorEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: OperatorCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            OperatorCommand::Register {
                email,
                password_hash,
                role,
                temporary,
                expires_at,
            } => {
                if self.registered {
                    return Err(DomainError::AlreadyExists("operator"));
                }
                if !password_hash.starts_with("$argon2id$") {
                    return Err(DomainError::invalid(
                        "password_hash",
                        "must be an argon2id PHC string",
                    ));
                }
                OperatorEvent::Registered {
                    email: normalize_email(&email)?,
                    password_hash,
                    role,
                    temporary,
                    expires_at: expires_at.filter(|_| temporary),
                }
            }
            _ if !self.registered => return Err(DomainError::NotFound("operator")),
            _ if self.disabled => return Err(DomainError::Disabled("operator")),
            OperatorCommand::ChangePassword {
                password_hash,
                temporary,
                expires_at,
            } => OperatorEvent::PasswordChanged {
                password_hash,
                temporary,
                expires_at: expires_at.filter(|_| temporary),
            },
            OperatorCommand::Disable => OperatorEvent::Disabled,
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: OperatorEvent) {
        match event {
            OperatorEvent::Registered { .. } => self.registered = true,
            OperatorEvent::PasswordChanged { .. } => {}
            OperatorEvent::Disabled => self.disabled = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    fn registered() -> OperatorEvent {
        OperatorEvent::Registered {
            email: "ops@example.com".into(),
            password_hash: HASH.into(),
            role: OperatorRole::Admin,
            temporary: false,
            expires_at: None,
        }
    }

    #[test]
    fn register_then_disable_then_nothing_more() {
        TestFramework::<Operator>::with(())
            .given_no_previous_events()
            .when(OperatorCommand::Register {
                email: "OPS@example.com".into(),
                password_hash: HASH.into(),
                role: OperatorRole::Admin,
                temporary: false,
                expires_at: None,
            })
            .then_expect_events(vec![registered()]);
        TestFramework::<Operator>::with(())
            .given(vec![registered(), OperatorEvent::Disabled])
            .when(OperatorCommand::ChangePassword {
                password_hash: HASH.into(),
                temporary: false,
                expires_at: None,
            })
            .then_expect_error(DomainError::Disabled("operator"));
    }

    #[test]
    fn register_twice_is_refused() {
        TestFramework::<Operator>::with(())
            .given(vec![registered()])
            .when(OperatorCommand::Register {
                email: "x@example.com".into(),
                password_hash: HASH.into(),
                role: OperatorRole::Support,
                temporary: false,
                expires_at: None,
            })
            .then_expect_error(DomainError::AlreadyExists("operator"));
    }

    #[test]
    fn admins_may_change_everything_finance_money_and_support_accounts() {
        use Duty::*;
        use OperatorRole::*;
        let allowed: Vec<(OperatorRole, Duty)> = [Admin, Finance, Support]
            .into_iter()
            .flat_map(|role| [Platform, Money, Accounts].map(|duty| (role, duty)))
            .filter(|(role, duty)| role.may(*duty))
            .collect();
        assert_eq!(
            allowed,
            [
                (Admin, Platform),
                (Admin, Money),
                (Admin, Accounts),
                (Finance, Money),
                (Support, Accounts)
            ]
        );
    }
}

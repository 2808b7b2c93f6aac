//! Agent: a reseller with its own login, a referral code and a commission rate. Tenants who sign
//! up through the code carry the agent's id in their `Registered` event (so the attribution is
//! written in the same event as the registration); commission accrues from those tenants'
//! settled usage, and operators record each month's payout here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::tenant::normalize_email;
use crate::{DomainError, Money};

/// Commission rates are basis points of the referred tenants' settled usage: 1000 is 10 %.
pub const MAX_COMMISSION_BPS: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentCommand {
    Register {
        email: String,
        name: String,
        password_hash: String,
        commission_bps: u32,
        referral_code: String,
        /// A one-time password (given in the console): changed at first sign-in, refused after
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
    /// The rate applies to usage settled from now on; accrued commission keeps its rate.
    SetCommission {
        commission_bps: u32,
    },
    Disable,
    Enable,
    /// Records that a month's commission was paid out. A month is paid once.
    RecordPayout {
        /// `YYYY-MM`, in UTC.
        month: String,
        amount: Money,
        reference: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentEvent {
    Registered {
        email: String,
        name: String,
        password_hash: String,
        commission_bps: u32,
        referral_code: String,
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
    CommissionChanged {
        commission_bps: u32,
    },
    Disabled,
    Enabled,
    CommissionPaid {
        month: String,
        amount: Money,
        reference: String,
    },
}
crate::domain_event!(AgentEvent, "1");

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Agent {
    registered: bool,
    disabled: bool,
    commission_bps: u32,
    /// month → amount paid.
    paid: BTreeMap<String, Money>,
}

/// Upper-cases a referral code and checks its shape: 4 to 32 letters, digits or dashes.
pub fn normalize_referral_code(code: &str) -> Result<String, DomainError> {
    let code = code.trim().to_uppercase();
    let valid = (4..=32).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(code)
    } else {
        Err(DomainError::invalid(
            "referral_code",
            "must be 4 to 32 letters, digits or dashes",
        ))
    }
}

fn check_rate(bps: u32) -> Result<(), DomainError> {
    if bps > MAX_COMMISSION_BPS {
        return Err(DomainError::invalid(
            "commission",
            "must be between 0 and 100 percent",
        ));
    }
    Ok(())
}

/// Checks a `YYYY-MM` month.
pub fn check_month(month: &str) -> Result<(), DomainError> {
    let valid = month.len() == 7
        && month.as_bytes()[4] == b'-'
        && month[..4].chars().all(|c| c.is_ascii_digit())
        && month[5..]
            .parse::<u32>()
            .is_ok_and(|m| (1..=12).contains(&m));
    if valid {
        Ok(())
    } else {
        Err(DomainError::invalid("month", "must be a month as YYYY-MM"))
    }
}

impl Agent {
    pub fn commission_bps(&self) -> u32 {
        self.commission_bps
    }
    pub fn paid(&self, month: &str) -> Option<Money> {
        self.paid.get(month).copied()
    }
}

impl Aggregate for Agent {
    const TYPE: &'static str = crate::aggregate_types::AGENT;
    type Command = AgentCommand;
    type Event = AgentEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AgentCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            AgentCommand::Register {
                email,
                name,
                password_hash,
                commission_bps,
                referral_code,
                temporary,
                expires_at,
            } => {
                if self.registered {
                    return Err(DomainError::AlreadyExists("agent"));
                }
                if !password_hash.starts_with("$argon2id$") {
                    return Err(DomainError::invalid(
                        "password_hash",
                        "must be an argon2id PHC string",
                    ));
                }
                let name = name.trim().to_string();
                if name.is_empty() || name.chars().count() > 200 {
                    return Err(DomainError::invalid("name", "must be 1 to 200 characters"));
                }
                check_rate(commission_bps)?;
                AgentEvent::Registered {
                    email: normalize_email(&email)?,
                    name,
                    password_hash,
                    commission_bps,
                    referral_code: normalize_referral_code(&referral_code)?,
                    temporary,
                    expires_at: expires_at.filter(|_| temporary),
                }
            }
            _ if !self.registered => return Err(DomainError::NotFound("agent")),
            AgentCommand::ChangePassword {
                password_hash,
                temporary,
                expires_at,
            } => {
                if self.disabled {
                    return Err(DomainError::Disabled("agent"));
                }
                AgentEvent::PasswordChanged {
                    password_hash,
                    temporary,
                    expires_at: expires_at.filter(|_| temporary),
                }
            }
            AgentCommand::SetCommission { commission_bps } => {
                check_rate(commission_bps)?;
                if commission_bps == self.commission_bps {
                    return Ok(());
                }
                AgentEvent::CommissionChanged { commission_bps }
            }
            AgentCommand::Disable if self.disabled => return Ok(()),
            AgentCommand::Disable => AgentEvent::Disabled,
            AgentCommand::Enable if !self.disabled => return Ok(()),
            AgentCommand::Enable => AgentEvent::Enabled,
            AgentCommand::RecordPayout {
                month,
                amount,
                reference,
            } => {
                check_month(&month)?;
                if let Some(paid) = self.paid.get(&month) {
                    if *paid == amount {
                        // The same payout recorded twice (a double click): nothing new.
                        return Ok(());
                    }
                    return Err(DomainError::invalid(
                        "month",
                        "this month's commission is already marked paid",
                    ));
                }
                if !amount.is_positive() {
                    return Err(DomainError::invalid("amount", "must be positive"));
                }
                AgentEvent::CommissionPaid {
                    month,
                    amount,
                    reference: reference.trim().to_string(),
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: AgentEvent) {
        match event {
            AgentEvent::Registered { commission_bps, .. } => {
                self.registered = true;
                self.commission_bps = commission_bps;
            }
            AgentEvent::PasswordChanged { .. } => {}
            AgentEvent::CommissionChanged { commission_bps } => {
                self.commission_bps = commission_bps
            }
            AgentEvent::Disabled => self.disabled = true,
            AgentEvent::Enabled => self.disabled = false,
            AgentEvent::CommissionPaid { month, amount, .. } => {
                self.paid.insert(month, amount);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Agent>;
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    fn registered() -> AgentEvent {
        AgentEvent::Registered {
            email: "agent@example.com".into(),
            name: "Acme Resellers".into(),
            password_hash: HASH.into(),
            commission_bps: 1000,
            referral_code: "ACME-10".into(),
            temporary: false,
            expires_at: None,
        }
    }

    #[test]
    fn register_normalizes_email_and_code() {
        Given::with(())
            .given_no_previous_events()
            .when(AgentCommand::Register {
                email: " Agent@Example.com".into(),
                name: " Acme Resellers ".into(),
                password_hash: HASH.into(),
                commission_bps: 1000,
                referral_code: "acme-10".into(),
                temporary: false,
                expires_at: None,
            })
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn rates_above_100_percent_are_refused() {
        Given::with(())
            .given(vec![registered()])
            .when(AgentCommand::SetCommission {
                commission_bps: 10_001,
            })
            .then_expect_error_message("invalid commission: must be between 0 and 100 percent");
    }

    #[test]
    fn a_month_is_paid_once() {
        let paid = AgentEvent::CommissionPaid {
            month: "2026-10".into(),
            amount: Money(5_000_000),
            reference: "wire 42".into(),
        };
        Given::with(())
            .given(vec![registered()])
            .when(AgentCommand::RecordPayout {
                month: "2026-10".into(),
                amount: Money(5_000_000),
                reference: "wire 42".into(),
            })
            .then_expect_events(vec![paid.clone()]);
        Given::with(())
            .given(vec![registered(), paid.clone()])
            .when(AgentCommand::RecordPayout {
                month: "2026-10".into(),
                amount: Money(5_000_000),
                reference: "wire 42".into(),
            })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![registered(), paid])
            .when(AgentCommand::RecordPayout {
                month: "2026-10".into(),
                amount: Money(6_000_000),
                reference: "wire 43".into(),
            })
            .then_expect_error_message(
                "invalid month: this month's commission is already marked paid",
            );
    }

    #[test]
    fn months_and_codes_are_checked() {
        assert!(check_month("2026-13").is_err());
        assert!(check_month("2026-1").is_err());
        assert!(check_month("2026-01").is_ok());
        assert!(normalize_referral_code("ab").is_err());
        assert!(normalize_referral_code("has space").is_err());
        assert_eq!(normalize_referral_code("x-1234").expect("valid"), "X-1234");
    }
}

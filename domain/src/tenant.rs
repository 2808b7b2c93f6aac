//! Tenant: a customer organisation with a login (email + argon2id password hash).
//! Email uniqueness across tenants is enforced by the store's reservation table in the same
//! transaction as `Registered`; the aggregate checks what it can see on its own.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::DomainError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantCommand {
    Register {
        email: String,
        name: String,
        password_hash: String,
        /// The agent whose referral brought the tenant, if any.
        #[serde(default)]
        referred_by: Option<String>,
        /// Signed up in the portal: the email is to be verified, and the trial credit waits
        /// for it.
        #[serde(default)]
        verification_required: bool,
    },
    ChangePassword {
        password_hash: String,
        /// Set by an operator's reset: the tenant must choose its own before using the portal.
        #[serde(default)]
        temporary: bool,
        /// When a temporary password stops working.
        #[serde(default)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// The tenant followed the verification link mailed to its email. Verifying twice records
    /// nothing new.
    VerifyEmail,
    Rename {
        name: String,
    },
    Suspend {
        reason: String,
    },
    Reactivate,
    /// Puts the tenant on a plan; models can be limited to plans.
    SetPlan {
        plan: String,
    },
    /// Replaces the tenant's security policy (the same policy again records nothing).
    SetPolicy {
        policy: TenantPolicy,
    },
}

/// A tenant's security policy, as the import file and (later) the portal state it. Every field
/// is optional; an empty policy restricts nothing. Recorded as events now; see
/// docs/import.md for which parts the gateway enforces yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicy {
    /// Data residency: only deployments in these regions may serve the tenant's calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Access control: client addresses (IPs or CIDR blocks) API calls may come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<String>,
    /// Data protection: kinds of personal data masked in prompts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<Redaction>,
    /// Content safety: a prompt containing one of these (case-insensitive) is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_terms: Vec<String>,
    /// Runtime: the most output tokens a call may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Runtime: calls per minute per API key, across every replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

/// A kind of personal data a policy masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Redaction {
    Email,
    Phone,
    Card,
}

impl TenantPolicy {
    /// Checks every field: addresses parse as IPs or CIDR blocks, limits are positive, terms
    /// and regions are not blank.
    pub fn check(&self) -> Result<(), DomainError> {
        for address in &self.allowed_ips {
            if !is_ip_or_cidr(address) {
                return Err(DomainError::invalid(
                    "allowed_ips",
                    "each entry must be an IP address or a CIDR block (10.0.0.0/8, ::1/128)",
                ));
            }
        }
        if self.regions.iter().any(|r| r.trim().is_empty()) {
            return Err(DomainError::invalid(
                "regions",
                "a region must not be blank",
            ));
        }
        if self.blocked_terms.iter().any(|t| t.trim().is_empty()) {
            return Err(DomainError::invalid(
                "blocked_terms",
                "a term must not be blank",
            ));
        }
        if self.max_tokens == Some(0) {
            return Err(DomainError::invalid("max_tokens", "must be at least 1"));
        }
        if self.requests_per_minute == Some(0) {
            return Err(DomainError::invalid(
                "requests_per_minute",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

fn is_ip_or_cidr(text: &str) -> bool {
    let (address, prefix) = match text.trim().split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text.trim(), None),
    };
    let Ok(ip) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let longest = if ip.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= longest))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantEvent {
    Registered {
        email: String,
        name: String,
        password_hash: String,
        /// The referring agent's id: attribution is part of the registration itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referred_by: Option<String>,
        /// Signed up in the portal: the trial credit waits until the email is verified.
        /// (Tenants registered before verification existed, and imported ones, have none.)
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        verification_required: bool,
    },
    PasswordChanged {
        password_hash: String,
        /// A one-time password from an operator's reset, to be replaced at the next sign-in.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        temporary: bool,
        /// When the one-time password stops working (none before one-time passwords expired).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    /// The tenant proved it reads mail at its email (it followed the link mailed there).
    EmailVerified {
        email: String,
    },
    Renamed {
        name: String,
    },
    Suspended {
        reason: String,
    },
    Reactivated,
    PlanChanged {
        plan: String,
    },
    PolicyUpdated {
        policy: TenantPolicy,
    },
}
crate::domain_event!(TenantEvent, "1");

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantStatus {
    #[default]
    Active,
    Suspended,
}

/// The plan of a tenant that was never put on one.
pub const DEFAULT_PLAN: &str = "standard";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tenant {
    registered: bool,
    email: String,
    name: String,
    status: TenantStatus,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    policy: TenantPolicy,
}

/// Checks a plan name: 1 to 40 lower-case letters, digits, dashes or underscores.
pub fn normalize_plan(plan: &str) -> Result<String, DomainError> {
    let plan = plan.trim().to_lowercase();
    let valid = (1..=40).contains(&plan.len())
        && plan
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(plan)
    } else {
        Err(DomainError::invalid(
            "plan",
            "must be 1 to 40 letters, digits, dashes or underscores",
        ))
    }
}

/// Lower-cases and trims an email, and checks its rough shape (`local@domain.tld`).
pub fn normalize_email(email: &str) -> Result<String, DomainError> {
    let email = email.trim().to_lowercase();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
                && email.len() <= 254
        }
        None => false,
    };
    if valid {
        Ok(email)
    } else {
        Err(DomainError::invalid("email", "is not an email address"))
    }
}

fn check_name(name: &str) -> Result<(), DomainError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(DomainError::invalid("name", "must be 1 to 200 characters"));
    }
    Ok(())
}

fn check_hash(hash: &str) -> Result<(), DomainError> {
    if !hash.starts_with("$argon2id$") {
        return Err(DomainError::invalid(
            "password_hash",
            "must be an argon2id PHC string",
        ));
    }
    Ok(())
}

impl Aggregate for Tenant {
    const TYPE: &'static str = crate::aggregate_types::TENANT;
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TenantCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        if !self.registered && !matches!(command, TenantCommand::Register { .. }) {
            return Err(DomainError::NotFound("tenant"));
        }
        let event = match command {
            TenantCommand::Register {
                email,
                name,
                password_hash,
                referred_by,
                verification_required,
            } => {
                if self.registered {
                    return Err(DomainError::AlreadyExists("tenant"));
                }
                let email = normalize_email(&email)?;
                check_name(&name)?;
                check_hash(&password_hash)?;
                TenantEvent::Registered {
                    email,
                    name: name.trim().to_string(),
                    password_hash,
                    referred_by,
                    verification_required,
                }
            }
            TenantCommand::ChangePassword {
                password_hash,
                temporary,
                expires_at,
            } => {
                check_hash(&password_hash)?;
                TenantEvent::PasswordChanged {
                    password_hash,
                    temporary,
                    expires_at: expires_at.filter(|_| temporary),
                }
            }
            TenantCommand::VerifyEmail => {
                if self.email_verified {
                    return Ok(());
                }
                TenantEvent::EmailVerified {
                    email: self.email.clone(),
                }
            }
            TenantCommand::Rename { name } => {
                check_name(&name)?;
                if name.trim() == self.name {
                    return Ok(());
                }
                TenantEvent::Renamed {
                    name: name.trim().to_string(),
                }
            }
            TenantCommand::Suspend { reason } => {
                if self.status == TenantStatus::Suspended {
                    return Ok(());
                }
                TenantEvent::Suspended { reason }
            }
            TenantCommand::Reactivate => {
                if self.status == TenantStatus::Active {
                    return Ok(());
                }
                TenantEvent::Reactivated
            }
            TenantCommand::SetPlan { plan } => {
                let plan = normalize_plan(&plan)?;
                if self.plan.as_deref().unwrap_or(DEFAULT_PLAN) == plan {
                    return Ok(());
                }
                TenantEvent::PlanChanged { plan }
            }
            TenantCommand::SetPolicy { policy } => {
                policy.check()?;
                if policy == self.policy {
                    return Ok(());
                }
                TenantEvent::PolicyUpdated { policy }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: TenantEvent) {
        match event {
            TenantEvent::Registered { email, name, .. } => {
                self.registered = true;
                self.email = email;
                self.name = name;
            }
            TenantEvent::PasswordChanged { .. } => {}
            TenantEvent::EmailVerified { .. } => self.email_verified = true,
            TenantEvent::Renamed { name } => self.name = name,
            TenantEvent::Suspended { .. } => self.status = TenantStatus::Suspended,
            TenantEvent::Reactivated => self.status = TenantStatus::Active,
            TenantEvent::PlanChanged { plan } => self.plan = Some(plan),
            TenantEvent::PolicyUpdated { policy } => self.policy = policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Tenant>;
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    fn registered() -> TenantEvent {
        TenantEvent::Registered {
            email: "a@example.com".into(),
            name: "Acme".into(),
            password_hash: HASH.into(),
            referred_by: None,
            verification_required: false,
        }
    }

    #[test]
    fn register_normalizes_email() {
        Given::with(())
            .given_no_previous_events()
            .when(TenantCommand::Register {
                email: "  A@Example.COM ".into(),
                name: "Acme".into(),
                password_hash: HASH.into(),
                referred_by: None,
                verification_required: false,
            })
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn register_twice_is_refused() {
        Given::with(())
            .given(vec![registered()])
            .when(TenantCommand::Register {
                email: "b@example.com".into(),
                name: "B".into(),
                password_hash: HASH.into(),
                referred_by: None,
                verification_required: false,
            })
            .then_expect_error(DomainError::AlreadyExists("tenant"));
    }

    #[test]
    fn register_refuses_bad_email_and_plaintext_password() {
        Given::with(())
            .given_no_previous_events()
            .when(TenantCommand::Register {
                email: "not-an-email".into(),
                name: "Acme".into(),
                password_hash: HASH.into(),
                referred_by: None,
                verification_required: false,
            })
            .then_expect_error_message("invalid email: is not an email address");
        Given::with(())
            .given_no_previous_events()
            .when(TenantCommand::Register {
                email: "a@example.com".into(),
                name: "Acme".into(),
                password_hash: "hunter2".into(),
                referred_by: None,
                verification_required: false,
            })
            .then_expect_error_message("invalid password_hash: must be an argon2id PHC string");
    }

    #[test]
    fn suspend_is_idempotent_and_reactivate_restores() {
        Given::with(())
            .given(vec![
                registered(),
                TenantEvent::Suspended {
                    reason: "abuse".into(),
                },
            ])
            .when(TenantCommand::Suspend {
                reason: "again".into(),
            })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![
                registered(),
                TenantEvent::Suspended {
                    reason: "abuse".into(),
                },
            ])
            .when(TenantCommand::Reactivate)
            .then_expect_events(vec![TenantEvent::Reactivated]);
    }

    #[test]
    fn an_email_is_verified_once_however_often_the_link_is_followed() {
        Given::with(())
            .given(vec![registered()])
            .when(TenantCommand::VerifyEmail)
            .then_expect_events(vec![TenantEvent::EmailVerified {
                email: "a@example.com".into(),
            }]);
        Given::with(())
            .given(vec![
                registered(),
                TenantEvent::EmailVerified {
                    email: "a@example.com".into(),
                },
            ])
            .when(TenantCommand::VerifyEmail)
            .then_expect_events(vec![]);
    }

    #[test]
    fn only_a_temporary_password_expires() {
        let at = DateTime::from_timestamp(1_900_000_000, 0);
        Given::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangePassword {
                password_hash: HASH.into(),
                temporary: false,
                expires_at: at,
            })
            .then_expect_events(vec![TenantEvent::PasswordChanged {
                password_hash: HASH.into(),
                temporary: false,
                expires_at: None,
            }]);
    }

    #[test]
    fn commands_on_unknown_tenant_are_refused() {
        Given::with(())
            .given_no_previous_events()
            .when(TenantCommand::Reactivate)
            .then_expect_error(DomainError::NotFound("tenant"));
    }

    #[test]
    fn plans_are_normalized_and_unchanged_plans_emit_nothing() {
        Given::with(())
            .given(vec![registered()])
            .when(TenantCommand::SetPlan {
                plan: " Enterprise ".into(),
            })
            .then_expect_events(vec![TenantEvent::PlanChanged {
                plan: "enterprise".into(),
            }]);
        Given::with(())
            .given(vec![registered()])
            .when(TenantCommand::SetPlan {
                plan: DEFAULT_PLAN.into(),
            })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![registered()])
            .when(TenantCommand::SetPlan {
                plan: "no spaces".into(),
            })
            .then_expect_error_message(
                "invalid plan: must be 1 to 40 letters, digits, dashes or underscores",
            );
    }

    #[test]
    fn a_policy_is_checked_and_recorded_once() {
        let registered = TenantEvent::Registered {
            email: "a@example.com".into(),
            name: "A".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            referred_by: None,
            verification_required: false,
        };
        let policy = TenantPolicy {
            allowed_ips: vec!["10.0.0.0/8".into(), "::1".into()],
            redact: vec![Redaction::Email],
            max_tokens: Some(100),
            ..TenantPolicy::default()
        };
        TestFramework::<Tenant>::with(())
            .given(vec![registered.clone()])
            .when(TenantCommand::SetPolicy {
                policy: policy.clone(),
            })
            .then_expect_events(vec![TenantEvent::PolicyUpdated {
                policy: policy.clone(),
            }]);
        TestFramework::<Tenant>::with(())
            .given(vec![
                registered.clone(),
                TenantEvent::PolicyUpdated {
                    policy: policy.clone(),
                },
            ])
            .when(TenantCommand::SetPolicy { policy })
            .then_expect_events(vec![]);
        TestFramework::<Tenant>::with(())
            .given(vec![registered])
            .when(TenantCommand::SetPolicy {
                policy: TenantPolicy {
                    allowed_ips: vec!["10.0.0.0/33".into()],
                    ..TenantPolicy::default()
                },
            })
            .then_expect_error_message(
                "invalid allowed_ips: each entry must be an IP address or a CIDR block (10.0.0.0/8, ::1/128)",
            );
    }
}

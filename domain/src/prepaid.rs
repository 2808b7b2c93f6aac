//! PrepaidCode: a voucher code operators issue and a tenant redeems once for credit.
//!
//! The aggregate id is [`code_id`] of the code: the lower-case hex SHA-256 of the normalized
//! code, so the plaintext code is never stored and a code typed with other spacing, dashes or
//! case finds the same aggregate.
//!
//! Rule: a code is redeemed at most once. Two tenants redeeming at the same moment both load the
//! unredeemed code, but only one `Redeemed` event commits; the store's optimistic lock makes the
//! other command run again on fresh state, where it is refused. The code does not credit the
//! account itself: whoever sees `Redeemed` credits the tenant's Account with the code id as the
//! credit's reference, which makes that credit idempotent.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{DomainError, Money};

/// The form a code is hashed in: upper case, without whitespace or dashes, so `abcd-efgh`,
/// `ABCD EFGH` and `abcdefgh` are the same code.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// The aggregate id of a code: lower-case hex SHA-256 of [`normalize_code`].
pub fn code_id(code: &str) -> String {
    hex::encode(Sha256::digest(normalize_code(code).as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrepaidCommand {
    Issue {
        amount: Money,
        currency: String,
        expires_at: Option<DateTime<Utc>>,
        /// What the code is for, for operators; never shown to tenants.
        note: String,
        issued_at: DateTime<Utc>,
        /// The code's first characters, so operators can tell codes apart in lists after the
        /// code itself was shown once. Too short to redeem with.
        prefix: Option<String>,
    },
    Redeem {
        tenant_id: String,
        now: DateTime<Utc>,
    },
    Disable {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrepaidEvent {
    Issued {
        amount: Money,
        /// Upper-case, trimmed.
        currency: String,
        expires_at: Option<DateTime<Utc>>,
        note: String,
        issued_at: DateTime<Utc>,
        /// Absent on codes issued before prefixes were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    Redeemed {
        tenant_id: String,
        amount: Money,
        at: DateTime<Utc>,
    },
    Disabled {
        reason: String,
    },
}
crate::domain_event!(PrepaidEvent, "1");

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PrepaidCode {
    issued: bool,
    amount: Money,
    currency: String,
    expires_at: Option<DateTime<Utc>>,
    disabled: bool,
    redeemed_by: Option<String>,
}

impl PrepaidCode {
    pub fn is_issued(&self) -> bool {
        self.issued
    }
    pub fn amount(&self) -> Money {
        self.amount
    }
    /// Upper-case, trimmed.
    pub fn currency(&self) -> &str {
        &self.currency
    }
    pub fn is_redeemed(&self) -> bool {
        self.redeemed_by.is_some()
    }
    /// The tenant that redeemed the code.
    pub fn redeemed_by(&self) -> Option<&str> {
        self.redeemed_by.as_deref()
    }
}

impl Aggregate for PrepaidCode {
    const TYPE: &'static str = crate::aggregate_types::PREPAID_CODE;
    type Command = PrepaidCommand;
    type Event = PrepaidEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: PrepaidCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            PrepaidCommand::Issue {
                amount,
                currency,
                expires_at,
                note,
                issued_at,
                prefix,
            } => {
                if self.issued {
                    return Err(DomainError::AlreadyExists("voucher code"));
                }
                if !amount.is_positive() {
                    return Err(DomainError::invalid("amount", "must be positive"));
                }
                amount.check_amount("amount")?;
                let currency = currency.trim().to_ascii_uppercase();
                if currency.is_empty() {
                    return Err(DomainError::invalid("currency", "must be given"));
                }
                if expires_at.is_some_and(|expires_at| expires_at <= issued_at) {
                    return Err(DomainError::invalid(
                        "expires_at",
                        "must be after issued_at",
                    ));
                }
                PrepaidEvent::Issued {
                    amount,
                    currency,
                    expires_at,
                    note,
                    issued_at,
                    prefix,
                }
            }
            _ if !self.issued => return Err(DomainError::NotFound("voucher code")),
            PrepaidCommand::Redeem { tenant_id, now } => {
                if tenant_id.trim().is_empty() {
                    return Err(DomainError::invalid("tenant_id", "must be given"));
                }
                // Redeemed first: it is the most useful answer for a code that is also past its
                // expiry, and the one the loser of a concurrent redemption gets.
                if self.redeemed_by.is_some() {
                    return Err(DomainError::invalid(
                        "code",
                        "this code has already been redeemed",
                    ));
                }
                if self.disabled {
                    return Err(DomainError::invalid("code", "this code is no longer valid"));
                }
                if self.expires_at.is_some_and(|expires_at| now >= expires_at) {
                    return Err(DomainError::invalid("code", "this code has expired"));
                }
                PrepaidEvent::Redeemed {
                    tenant_id,
                    amount: self.amount,
                    at: now,
                }
            }
            PrepaidCommand::Disable { reason } => {
                if self.disabled {
                    return Ok(());
                }
                // The credit has been given; disabling now would only hide that.
                if self.redeemed_by.is_some() {
                    return Err(DomainError::invalid(
                        "code",
                        "a redeemed code cannot be disabled",
                    ));
                }
                if reason.trim().is_empty() {
                    return Err(DomainError::invalid("reason", "must be given"));
                }
                PrepaidEvent::Disabled { reason }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: PrepaidEvent) {
        match event {
            PrepaidEvent::Issued {
                amount,
                currency,
                expires_at,
                ..
            } => {
                self.issued = true;
                self.amount = amount;
                self.currency = currency;
                self.expires_at = expires_at;
            }
            PrepaidEvent::Redeemed { tenant_id, .. } => self.redeemed_by = Some(tenant_id),
            PrepaidEvent::Disabled { .. } => self.disabled = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<PrepaidCode>;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, d, 0, 0, 0)
            .single()
            .expect("a valid time")
    }

    fn issued(expires_at: Option<DateTime<Utc>>) -> PrepaidEvent {
        PrepaidEvent::Issued {
            amount: Money(5_000_000),
            currency: "USD".into(),
            expires_at,
            note: "conference".into(),
            issued_at: day(1),
            prefix: None,
        }
    }

    fn issue(amount: i64) -> PrepaidCommand {
        PrepaidCommand::Issue {
            amount: Money(amount),
            currency: " usd".into(),
            expires_at: Some(day(10)),
            note: "conference".into(),
            issued_at: day(1),
            prefix: None,
        }
    }

    fn redeem(tenant: &str, now: DateTime<Utc>) -> PrepaidCommand {
        PrepaidCommand::Redeem {
            tenant_id: tenant.into(),
            now,
        }
    }

    fn redeemed(tenant: &str) -> PrepaidEvent {
        PrepaidEvent::Redeemed {
            tenant_id: tenant.into(),
            amount: Money(5_000_000),
            at: day(2),
        }
    }

    #[test]
    fn a_code_is_issued_once_with_a_positive_amount() {
        Given::with(())
            .given_no_previous_events()
            .when(issue(5_000_000))
            .then_expect_events(vec![issued(Some(day(10)))]);
        Given::with(())
            .given(vec![issued(None)])
            .when(issue(5_000_000))
            .then_expect_error(DomainError::AlreadyExists("voucher code"));
        Given::with(())
            .given_no_previous_events()
            .when(issue(0))
            .then_expect_error_message("invalid amount: must be positive");
        Given::with(())
            .given_no_previous_events()
            .when(issue(i64::MAX))
            .then_expect_error_message("invalid amount: must be at most 1000000000.000000 in size");
    }

    #[test]
    fn a_code_that_was_never_issued_is_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when(redeem("t1", day(2)))
            .then_expect_error(DomainError::NotFound("voucher code"));
        Given::with(())
            .given_no_previous_events()
            .when(PrepaidCommand::Disable {
                reason: "leaked".into(),
            })
            .then_expect_error(DomainError::NotFound("voucher code"));
    }

    #[test]
    fn redeeming_credits_the_issued_amount_to_the_tenant() {
        Given::with(())
            .given(vec![issued(Some(day(10)))])
            .when(redeem("t1", day(2)))
            .then_expect_events(vec![redeemed("t1")]);
    }

    #[test]
    fn a_code_is_redeemed_only_once_by_anyone() {
        for tenant in ["t1", "t2"] {
            Given::with(())
                .given(vec![issued(None), redeemed("t1")])
                .when(redeem(tenant, day(3)))
                .then_expect_error_message("invalid code: this code has already been redeemed");
        }
    }

    #[test]
    fn a_disabled_code_cannot_be_redeemed() {
        Given::with(())
            .given(vec![
                issued(None),
                PrepaidEvent::Disabled {
                    reason: "leaked".into(),
                },
            ])
            .when(redeem("t1", day(2)))
            .then_expect_error_message("invalid code: this code is no longer valid");
    }

    #[test]
    fn a_code_expires_at_its_expiry_time() {
        Given::with(())
            .given(vec![issued(Some(day(10)))])
            .when(redeem("t1", day(10)))
            .then_expect_error_message("invalid code: this code has expired");
        Given::with(())
            .given(vec![issued(None)])
            .when(redeem("t1", day(28)))
            .then_expect_events(vec![PrepaidEvent::Redeemed {
                tenant_id: "t1".into(),
                amount: Money(5_000_000),
                at: day(28),
            }]);
    }

    #[test]
    fn disable_is_refused_after_redemption_and_idempotent_otherwise() {
        let disabled = PrepaidEvent::Disabled {
            reason: "leaked".into(),
        };
        let disable = PrepaidCommand::Disable {
            reason: "leaked".into(),
        };
        Given::with(())
            .given(vec![issued(None)])
            .when(disable.clone())
            .then_expect_events(vec![disabled.clone()]);
        Given::with(())
            .given(vec![issued(None), disabled])
            .when(disable.clone())
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![issued(None), redeemed("t1")])
            .when(disable)
            .then_expect_error_message("invalid code: a redeemed code cannot be disabled");
    }

    #[test]
    fn codes_are_normalized_before_hashing() {
        assert_eq!(normalize_code("  abcd-efgh 1234 "), "ABCDEFGH1234");
        assert_eq!(code_id("abcd-efgh-1234"), code_id("ABCD EFGH 1234"));
        assert_ne!(code_id("ABCD-EFGH-1234"), code_id("ABCD-EFGH-1235"));
        // The SHA-256 of "ABC".
        assert_eq!(
            code_id("a-b-c"),
            "b5d4045c3f466fa91fe2cc6abe79232a1a57cdf104f7a26e716e0a1e2789df78"
        );
    }

    #[test]
    fn the_state_follows_the_events() {
        let mut code = PrepaidCode::default();
        assert!(!code.is_issued());
        code.apply(issued(None));
        assert_eq!(code.amount(), Money(5_000_000));
        assert_eq!(code.currency(), "USD");
        assert!(!code.is_redeemed());
        code.apply(redeemed("t2"));
        assert!(code.is_redeemed());
        assert_eq!(code.redeemed_by(), Some("t2"));
    }
}

//! Money is an integer count of micro-units (10⁻⁶) of the platform currency. No floats, ever.
//!
//! Limits: no single amount a person enters — a credit, an adjustment, a top-up order, a prepaid
//! code, a refund, a price per million tokens — may exceed [`Money::MAX_AMOUNT`] in size, and no
//! balance may pass [`Money::MAX_BALANCE`] either way. They sit far below `i64::MAX` (about
//! 9.2 × 10¹⁸), so the running totals of the read models (all credits ever, all charges ever)
//! cannot overflow in any realistic life of a platform, and the aggregates refuse a command
//! that would pass them, with checked arithmetic, before anything is stored.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount in micro-units of the platform currency. Signed, because a balance can be overspent
/// within the documented allowance bound.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(pub i64);

impl Money {
    pub const ZERO: Money = Money(0);
    pub const MICROS_PER_UNIT: i64 = 1_000_000;
    /// The largest single amount: one billion units (10¹⁵ micro-units).
    pub const MAX_AMOUNT: Money = Money(1_000_000_000 * Money::MICROS_PER_UNIT);
    /// The largest balance, positive or negative: one hundred billion units (10¹⁷ micro-units).
    pub const MAX_BALANCE: Money = Money(100_000_000_000 * Money::MICROS_PER_UNIT);

    /// Whether the amount is within `±MAX_AMOUNT`.
    pub fn is_within_max_amount(self) -> bool {
        self.0.unsigned_abs() <= Money::MAX_AMOUNT.0.unsigned_abs()
    }

    /// Refuses an amount beyond `±MAX_AMOUNT`, naming the field.
    pub fn check_amount(self, field: &'static str) -> Result<Money, crate::DomainError> {
        if self.is_within_max_amount() {
            Ok(self)
        } else {
            Err(crate::DomainError::invalid(
                field,
                format!("must be at most {} in size", Money::MAX_AMOUNT),
            ))
        }
    }

    /// `self + other` when the sum is a balance within `±MAX_BALANCE`; refused otherwise.
    pub fn balance_plus(self, other: Money) -> Result<Money, crate::DomainError> {
        self.0
            .checked_add(other.0)
            .map(Money)
            .filter(|sum| sum.0.unsigned_abs() <= Money::MAX_BALANCE.0.unsigned_abs())
            .ok_or_else(|| {
                crate::DomainError::invalid(
                    "amount",
                    format!(
                        "would take the balance past the largest allowed, {}",
                        Money::MAX_BALANCE
                    ),
                )
            })
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn micros(self) -> i64 {
        self.0
    }
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }
    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Money {
    /// Shows the amount in whole units with six decimals, e.g. `12.500000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let unit = Money::MICROS_PER_UNIT as u64;
        write!(f, "{sign}{}.{:06}", abs / unit, abs % unit)
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        self.saturating_add(rhs)
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        self.saturating_sub(rhs)
    }
}

/// Prices of one model, each in micro-units per one million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    pub input: i64,
    pub output: i64,
    pub cached_input: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<i64>,
}

/// Token counts a charge is computed from. Cached and cache-write tokens are *part of* `input`
/// (OpenAI convention, protocols.md §5.3); they are priced at their own rates, never twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BillableTokens {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
}

impl Pricing {
    pub fn validate(&self) -> Result<(), crate::DomainError> {
        let prices = [
            ("input_price", self.input),
            ("output_price", self.output),
            ("cached_input_price", self.cached_input),
            ("cache_write_price", self.cache_write.unwrap_or(0)),
        ];
        for (field, price) in prices {
            if price < 0 {
                return Err(crate::DomainError::invalid(field, "must not be negative"));
            }
            Money(price).check_amount(field)?;
        }
        Ok(())
    }

    /// The charge for a call, rounded up to the next micro-unit so that the sum of charges never
    /// falls short of the listed prices.
    pub fn cost(&self, tokens: BillableTokens) -> Money {
        let cache_read = tokens.cache_read.min(tokens.input);
        let cache_write = tokens.cache_write.min(tokens.input - cache_read);
        let uncached = tokens.input - cache_read - cache_write;
        let cache_write_price = self.cache_write.unwrap_or(self.input);
        let numerator: i128 = uncached as i128 * self.input as i128
            + cache_read as i128 * self.cached_input as i128
            + cache_write as i128 * cache_write_price as i128
            + tokens.output as i128 * self.output as i128;
        let micros = (numerator + 999_999) / 1_000_000;
        Money(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_prices_cached_tokens_at_their_own_rate_and_rounds_up() {
        let pricing = Pricing {
            input: 2_000_000,
            output: 8_000_000,
            cached_input: 500_000,
            cache_write: None,
        };
        // 1000 input of which 400 cached, 100 output:
        // 600*2 + 400*0.5 + 100*8 = 1200 + 200 + 800 = 2200 micro-units.
        let cost = pricing.cost(BillableTokens {
            input: 1000,
            cache_read: 400,
            cache_write: 0,
            output: 100,
        });
        assert_eq!(cost, Money(2200));
        // One token at 1 micro-unit per 1M tokens still costs one micro-unit.
        let tiny = Pricing {
            input: 1,
            ..Pricing::default()
        };
        let one = BillableTokens {
            input: 1,
            ..BillableTokens::default()
        };
        assert_eq!(tiny.cost(one), Money(1));
    }

    #[test]
    fn amounts_and_balances_have_stated_maximums() {
        assert!(Money::MAX_AMOUNT.is_within_max_amount());
        assert!(Money(-Money::MAX_AMOUNT.0).is_within_max_amount());
        assert_eq!(
            Money(i64::MAX)
                .check_amount("amount")
                .expect_err("beyond the maximum")
                .to_string(),
            "invalid amount: must be at most 1000000000.000000 in size"
        );
        assert!(Money(i64::MIN).check_amount("amount").is_err());
        assert_eq!(
            Money::MAX_BALANCE.balance_plus(Money(-1)),
            Ok(Money(Money::MAX_BALANCE.0 - 1))
        );
        assert!(Money::MAX_BALANCE.balance_plus(Money(1)).is_err());
        assert!(Money(i64::MAX).balance_plus(Money(1)).is_err());
        let price = Pricing {
            input: Money::MAX_AMOUNT.0 + 1,
            ..Pricing::default()
        };
        assert_eq!(
            price
                .validate()
                .expect_err("beyond the maximum")
                .to_string(),
            "invalid input_price: must be at most 1000000000.000000 in size"
        );
    }

    #[test]
    fn money_displays_whole_units() {
        assert_eq!(Money(12_500_000).to_string(), "12.500000");
        assert_eq!(Money(-5).to_string(), "-0.000005");
    }
}

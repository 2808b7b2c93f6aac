//! Money in Stripe's terms: integers in the currency's minor unit ("cents" for USD, whole yen
//! for JPY, fils for KWD), converted exactly to and from our micro-units.
//!
//! The rules come from Stripe's "Supported currencies" page: most currencies have two decimals;
//! the zero-decimal ones take whole units; the three-decimal ones take thousandths but the last
//! digit must be 0; ISK stays two-decimal in the API but must be whole krónur.

use modelrouter_domain::Money;

use crate::payments::PaymentError;

/// Stripe's zero-decimal currencies: the amount is in whole units.
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// Stripe's three-decimal currencies: thousandths, rounded to the nearest ten.
const THREE_DECIMAL: [&str; 5] = ["BHD", "JOD", "KWD", "OMR", "TND"];

/// How Stripe writes amounts in one currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    /// Decimals of the minor unit: 0, 2 or 3.
    exponent: u32,
    /// The minor-unit amount must be a multiple of this (10 for three-decimal currencies,
    /// 100 for ISK, else 1).
    step: i64,
}

fn rule(currency: &str) -> Result<Rule, PaymentError> {
    let code = currency.to_ascii_uppercase();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(PaymentError::Amount(format!(
            "{currency:?} is not a three-letter ISO 4217 currency code"
        )));
    }
    let code = code.as_str();
    Ok(if ZERO_DECIMAL.contains(&code) {
        Rule {
            exponent: 0,
            step: 1,
        }
    } else if THREE_DECIMAL.contains(&code) {
        Rule {
            exponent: 3,
            step: 10,
        }
    } else if code == "ISK" {
        Rule {
            exponent: 2,
            step: 100,
        }
    } else {
        Rule {
            exponent: 2,
            step: 1,
        }
    })
}

/// How many decimals Stripe's minor unit of `currency` has (0, 2 or 3).
pub fn minor_unit_exponent(currency: &str) -> Result<u32, PaymentError> {
    rule(currency).map(|rule| rule.exponent)
}

/// Micro-units per minor unit: 10^(6 - exponent).
fn micros_per_minor(rule: Rule) -> i64 {
    10_i64.pow(6 - rule.exponent)
}

/// Our micro-units as Stripe's minor units of `currency`, exactly: an amount with more
/// precision than Stripe accepts for the currency is an error, never rounded.
pub fn to_minor_units(amount: Money, currency: &str) -> Result<i64, PaymentError> {
    let rule = rule(currency)?;
    let per_minor = micros_per_minor(rule);
    let micros = amount.micros();
    if micros % (per_minor * rule.step) != 0 {
        let places = match rule.step {
            10 => rule.exponent - 1,
            100 => rule.exponent - 2,
            _ => rule.exponent,
        };
        return Err(PaymentError::Amount(format!(
            "{amount} {} has more than {places} decimal place(s), the most Stripe accepts",
            currency.to_ascii_uppercase()
        )));
    }
    Ok(micros / per_minor)
}

/// Stripe's minor units of `currency` as our micro-units.
pub fn from_minor_units(minor: i64, currency: &str) -> Result<Money, PaymentError> {
    let per_minor = micros_per_minor(rule(currency)?);
    minor.checked_mul(per_minor).map(Money).ok_or_else(|| {
        PaymentError::Amount(format!(
            "{minor} {} is too large to hold",
            currency.to_ascii_uppercase()
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn two_decimal_currencies_convert_to_cents_both_ways() {
        assert_eq!(to_minor_units(Money(12_340_000), "USD").unwrap(), 1234);
        assert_eq!(to_minor_units(Money(12_340_000), "usd").unwrap(), 1234);
        assert_eq!(from_minor_units(1234, "usd").unwrap(), Money(12_340_000));
        assert_eq!(to_minor_units(Money(10_000), "EUR").unwrap(), 1);
        assert_eq!(minor_unit_exponent("gbp").unwrap(), 2);
    }

    #[test]
    fn zero_decimal_currencies_take_whole_units() {
        for code in ["JPY", "KRW", "VND", "CLP", "UGX", "XOF"] {
            assert_eq!(minor_unit_exponent(code).unwrap(), 0, "{code}");
        }
        assert_eq!(to_minor_units(Money(500_000_000), "JPY").unwrap(), 500);
        assert_eq!(from_minor_units(500, "jpy").unwrap(), Money(500_000_000));
        assert!(matches!(
            to_minor_units(Money(500_500_000), "JPY"),
            Err(PaymentError::Amount(_))
        ));
    }

    #[test]
    fn three_decimal_currencies_take_thousandths_rounded_to_tens() {
        assert_eq!(to_minor_units(Money(5_120_000), "KWD").unwrap(), 5120);
        assert_eq!(from_minor_units(5120, "kwd").unwrap(), Money(5_120_000));
        // 5.124 KWD is three decimals, but Stripe wants the last digit to be 0.
        assert!(matches!(
            to_minor_units(Money(5_124_000), "KWD"),
            Err(PaymentError::Amount(_))
        ));
        assert_eq!(minor_unit_exponent("BHD").unwrap(), 3);
    }

    #[test]
    fn isk_is_two_decimal_on_the_wire_but_whole_kronur_only() {
        assert_eq!(to_minor_units(Money(40_000_000), "ISK").unwrap(), 4000);
        assert!(matches!(
            to_minor_units(Money(40_100_000), "ISK"),
            Err(PaymentError::Amount(_))
        ));
    }

    #[test]
    fn amounts_finer_than_the_currency_are_refused_not_rounded() {
        let error = to_minor_units(Money(1_234_567), "USD").unwrap_err();
        assert_eq!(
            error.to_string(),
            "amount cannot be charged: 1.234567 USD has more than 2 decimal place(s), \
             the most Stripe accepts"
        );
    }

    #[test]
    fn bad_codes_and_overflow_are_errors() {
        assert!(to_minor_units(Money(1_000_000), "US").is_err());
        assert!(to_minor_units(Money(1_000_000), "U$D").is_err());
        assert!(from_minor_units(i64::MAX, "usd").is_err());
        assert_eq!(from_minor_units(i64::MAX, "jpy").ok(), None);
        assert_eq!(from_minor_units(-50, "usd").unwrap(), Money(-500_000));
    }
}

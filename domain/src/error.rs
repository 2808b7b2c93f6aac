//! The one error type of the domain: every rule an aggregate refuses a command with.

use crate::Money;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("{0} does not exist")]
    NotFound(&'static str),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("insufficient balance: {available} available")]
    InsufficientBalance { available: Money },
    #[error("{0} is revoked")]
    Revoked(&'static str),
    #[error("{0} is disabled")]
    Disabled(&'static str),
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

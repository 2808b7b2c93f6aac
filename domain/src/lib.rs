//! The write side of Model Router: aggregates, their commands and events, and the rules they
//! enforce. Everything here is pure — no database, no HTTP, no clock reads inside a rule (times
//! arrive in commands). Architecture invariant: this crate depends on nothing else of ours.

pub mod account;
pub mod agent;
pub mod api_key;
pub mod catalog;
pub mod error;
pub mod inference;
pub mod metadata;
pub mod money;
pub mod operator;
pub mod prepaid;
pub mod provider;
pub mod recharge;
pub mod route;
pub mod tenant;

pub use error::DomainError;
pub use money::{Money, Pricing};

/// Aggregate type names as stored in the `aggregate_type` column of the event store.
pub mod aggregate_types {
    pub const TENANT: &str = "Tenant";
    pub const API_KEY: &str = "ApiKey";
    pub const ACCOUNT: &str = "Account";
    pub const PROVIDER: &str = "Provider";
    pub const CATALOG_MODEL: &str = "CatalogModel";
    pub const ROUTE: &str = "Route";
    pub const INFERENCE_CALL: &str = "InferenceCall";
    pub const OPERATOR: &str = "Operator";
    pub const RECHARGE_ORDER: &str = "RechargeOrder";
    pub const PREPAID_CODE: &str = "PrepaidCode";
    pub const AGENT: &str = "Agent";
}

/// Implements `cqrs_es::DomainEvent` for an event enum whose variants are named after the event.
#[macro_export]
macro_rules! domain_event {
    ($event:ty, $version:literal) => {
        impl cqrs_es::DomainEvent for $event {
            fn event_type(&self) -> String {
                // The externally tagged serde form is {"Variant": …}; its tag is the type name.
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::Object(map)) => {
                        map.keys().next().cloned().unwrap_or_default()
                    }
                    Ok(serde_json::Value::String(name)) => name,
                    _ => String::from("Unknown"),
                }
            }
            fn event_version(&self) -> String {
                String::from($version)
            }
        }
    };
}

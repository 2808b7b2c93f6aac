//! Event metadata: who did it (the actor), in which request, from where.

use std::collections::HashMap;
use std::fmt;

pub const ACTOR: &str = "actor";
pub const REQUEST_ID: &str = "request_id";
pub const CLIENT_IP: &str = "client_ip";

/// Who issued a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The gateway itself (leases, settlements, metering).
    System,
    /// The command line (`modelrouter import`, `admin create`, …).
    Cli,
    Operator(String),
    Tenant(String),
    Agent(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::Cli => f.write_str("cli"),
            Actor::Operator(id) => write!(f, "operator:{id}"),
            Actor::Tenant(id) => write!(f, "tenant:{id}"),
            Actor::Agent(id) => write!(f, "agent:{id}"),
        }
    }
}

/// Builds the metadata map cqrs-es stores beside every event.
#[derive(Debug, Clone)]
pub struct Metadata(HashMap<String, String>);

impl Metadata {
    pub fn new(actor: &Actor) -> Self {
        Metadata(HashMap::from([(ACTOR.to_string(), actor.to_string())]))
    }
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.0.insert(REQUEST_ID.to_string(), id.into());
        self
    }
    pub fn client_ip(mut self, ip: impl Into<String>) -> Self {
        self.0.insert(CLIENT_IP.to_string(), ip.into());
        self
    }
    pub fn into_map(self) -> HashMap<String, String> {
        self.0
    }
}

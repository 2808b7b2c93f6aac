//! Model Router: a multi-tenant, multi-protocol AI model gateway on an event-sourced core.
//!
//! Code map (docs/architecture.md has the long version):
//! - `store`: the event store (SQLite or PostgreSQL through cqrs-es), migrations, the command
//!   bus, the event tail and the batched metering appender. Only `store` names a backend.
//! - `live`: the in-memory view every replica keeps fresh by tailing the event log.
//! - `allowance`: balance enforcement by leased allowances (no database on the hot path).
//! - `protocol`: wire types and translation, pure (no HTTP client, no database).
//! - `gateway`: the HTTP edge — auth, scope, routing, upstream calls, metering, errors.
//! - `portal`: the tenant portal — pages under `/portal`, JSON under `/api/portal`.
//! - `admin`: the operations console — pages under `/admin`, JSON under `/api/admin`.
//! - `agent`: the agent portal — pages under `/agent`, JSON under `/api/agent`.
//! - `mock`: the mock upstream, part of the product (`mock-upstream`, `serve --demo`, benches).
//! - `mail`: mail to people (verification links) by SMTP, or into the store's outbox.
//! - `import`, `demo`, `server`: the CLI's work.

pub mod admin;
pub mod agent;
pub mod allowance;
pub mod billing;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod gateway;
pub mod import;
pub mod ledger;
pub mod live;
pub mod mail;
pub mod mock;
pub mod payments;
pub mod portal;
pub mod protocol;
pub mod receipt;
pub mod routing;
pub mod server;
pub mod store;
pub mod tokenizer;
pub mod upstream;

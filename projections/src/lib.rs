//! The read side of Model Router: the event log tail, the in-memory view every gateway replica
//! serves from, and the SQL read models with their checkpoints.
//!
//! Architecture invariant: this crate knows `domain` and SQL, never HTTP.

pub mod call_log;
pub mod db;
pub mod live;
pub mod sql;

pub use call_log::LoggedCall;
pub use db::{Db, EventFilter, StoredEvent, TailPosition, Types};
pub use live::LiveView;

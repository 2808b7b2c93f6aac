//! Wire types, pure.
pub mod openai;

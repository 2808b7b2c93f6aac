//! Wire types and translation between dialects, through one canonical model (protocols.md).
//! Pure: no HTTP client, no database, no error envelopes beyond the dialects' own shapes.

pub mod canonical;
pub mod openai;

//! Metering one call: normalized usage → cost from the catalog price → the record made durable
//! in the metering spool (which drains it into the event store) → the hold replaced by the
//! charge.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use modelrouter_domain::inference::{Attempt, CallRecord, RolloutArm, Usage};
use modelrouter_domain::money::BillableTokens;
use modelrouter_domain::{Money, Pricing};

use super::AppState;
use crate::allowance::Hold;
use crate::store::MeteringRecord;
use crate::tokenizer;

/// What is known of a call before its outcome.
pub struct Meter {
    pub state: Arc<AppState>,
    pub request_id: String,
    pub client_ip: Option<String>,
    pub tenant_id: String,
    pub key_id: String,
    pub model: String,
    /// The customer protocol: `openai`, `anthropic` or `dashscope`.
    pub inbound_protocol: &'static str,
    pub stream: bool,
    pub pricing: Pricing,
    pub price_version: u32,
    /// The client's request body, for an estimate when the upstream reports no usage.
    pub request_body: bytes::Bytes,
    pub started: Instant,
    pub started_at: DateTime<Utc>,
    pub attempts: Vec<Attempt>,
    /// The rollout arm routing put the call on, if the route had a rollout.
    pub rollout: Option<RolloutArm>,
    pub hold: Hold,
}

/// How a call ended.
pub struct Outcome {
    pub status: u16,
    pub usage: Option<Usage>,
    /// Output delivered to the client, for an estimate when usage never came.
    pub delivered: Delivered,
    pub ttft_ms: Option<u64>,
}

/// The output text a stream delivered, kept up to [`Delivered::KEEP`] bytes; beyond that only
/// counted, so a huge stream costs no memory.
#[derive(Debug, Default)]
pub struct Delivered {
    text: String,
    chars_beyond: u64,
}

impl Delivered {
    const KEEP: usize = 1 << 20;

    pub fn push(&mut self, text: &str) {
        if self.text.len() + text.len() <= Self::KEEP {
            self.text.push_str(text);
        } else {
            self.chars_beyond += text.chars().count() as u64;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.chars_beyond == 0
    }

    /// Tokens of the delivered output: the kept text through the tokenizer, the rest at four
    /// characters a token.
    fn tokens(&self) -> u64 {
        tokenizer::count(&self.text) + self.chars_beyond.div_ceil(4)
    }
}

/// The usage to bill (protocols.md §5.3, and the policy in docs/billing.md):
/// - the upstream's numbers when it reported them;
/// - when output reached the client but usage never came (a stream cut short, an upstream that
///   does not report usage), an estimate by tokenizer of the request and of the delivered
///   output, flagged `estimated`;
/// - nothing when no output reached the client (it left first, or the upstream failed first).
fn billable_usage(outcome: &Outcome, request_body: &[u8]) -> Usage {
    match outcome.usage {
        Some(usage) => usage,
        None if !outcome.delivered.is_empty() => Usage {
            input_total: Some(tokenizer::count_request(request_body)),
            output_total: Some(outcome.delivered.tokens()),
            estimated: true,
            ..Usage::default()
        },
        None => Usage::default(),
    }
}

pub fn cost_of(pricing: &Pricing, usage: &Usage) -> Money {
    pricing.cost(BillableTokens {
        input: usage.input_total.unwrap_or(0),
        cache_read: usage.cache_read.unwrap_or(0),
        cache_write: usage.cache_write.unwrap_or(0),
        output: usage.output_total.unwrap_or(0),
    })
}

/// The call's record could not be made durable: the call was not charged, and its answer must
/// not be completed.
#[derive(Debug)]
pub struct Unrecorded;

impl Meter {
    /// Records the call, then charges it. Callers await this before the last byte of the
    /// answer goes out, so that no answered call goes unrecorded.
    pub async fn finish(self, outcome: Outcome) -> Result<(), Unrecorded> {
        let (status, ttft_ms) = (outcome.status, outcome.ttft_ms);
        let usage = if outcome.usage.is_none() && !outcome.delivered.is_empty() {
            // Tokenizing is CPU work: off the async workers.
            let body = self.request_body.clone();
            tokio::task::spawn_blocking(move || billable_usage(&outcome, &body))
                .await
                .unwrap_or_else(|error| {
                    tracing::error!(%error, "usage estimate failed");
                    Usage::default()
                })
        } else {
            billable_usage(&outcome, &self.request_body)
        };
        let cost = cost_of(&self.pricing, &usage);
        let lease_id = self.state.allowances.lease_of(&self.tenant_id);
        let record = CallRecord {
            tenant_id: self.tenant_id,
            key_id: self.key_id,
            model: self.model,
            inbound_protocol: self.inbound_protocol.into(),
            stream: self.stream,
            status,
            usage,
            cost,
            price_version: self.price_version,
            latency_ms: self.started.elapsed().as_millis() as u64,
            ttft_ms,
            attempts: self.attempts,
            started_at: self.started_at,
            lease_id: Some(lease_id),
            rollout: self.rollout,
        };
        let item = MeteringRecord {
            request_id: self.request_id,
            client_ip: self.client_ip,
            record,
        };
        match self.state.spool.append(&item).await {
            Ok(()) => {
                self.hold.charge(cost);
                Ok(())
            }
            Err(error) => {
                // The hold is dropped: released, not charged.
                tracing::error!(
                    %error,
                    request_id = item.request_id,
                    "the call's record could not be kept; its answer is withheld and nothing is charged"
                );
                Err(Unrecorded)
            }
        }
    }
}

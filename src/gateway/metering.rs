//! Metering one call: normalized usage → cost from the catalog price → the hold replaced by the
//! charge → an InferenceCall event handed to the batched appender.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use modelrouter_domain::inference::{Attempt, CallRecord, Usage};
use modelrouter_domain::money::BillableTokens;
use modelrouter_domain::{Money, Pricing};

use super::AppState;
use crate::allowance::Hold;
use crate::store::MeteringRecord;

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
    pub request_bytes: usize,
    pub started: Instant,
    pub started_at: DateTime<Utc>,
    pub attempts: Vec<Attempt>,
    pub hold: Hold,
}

/// How a call ended.
pub struct Outcome {
    pub status: u16,
    pub usage: Option<Usage>,
    /// Characters of output delivered to the client, for an estimate when usage never came.
    pub delivered_chars: u64,
    pub ttft_ms: Option<u64>,
}

/// The usage to bill: the upstream's numbers, else an estimate when output was delivered
/// (about four characters per token), else nothing.
fn billable_usage(outcome: &Outcome, request_bytes: usize) -> Usage {
    match outcome.usage {
        Some(usage) => usage,
        None if outcome.delivered_chars > 0 => Usage {
            input_total: Some((request_bytes as u64).div_ceil(4)),
            output_total: Some(outcome.delivered_chars.div_ceil(4)),
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

impl Meter {
    pub async fn finish(self, outcome: Outcome) {
        let usage = billable_usage(&outcome, self.request_bytes);
        let cost = cost_of(&self.pricing, &usage);
        self.hold.charge(cost);
        let lease_id = self.state.allowances.lease_of(&self.tenant_id);
        let record = CallRecord {
            tenant_id: self.tenant_id,
            key_id: self.key_id,
            model: self.model,
            inbound_protocol: self.inbound_protocol.into(),
            stream: self.stream,
            status: outcome.status,
            usage,
            cost,
            price_version: self.price_version,
            latency_ms: self.started.elapsed().as_millis() as u64,
            ttft_ms: outcome.ttft_ms,
            attempts: self.attempts,
            started_at: self.started_at,
            lease_id: Some(lease_id),
        };
        self.state
            .appender
            .send(MeteringRecord {
                request_id: self.request_id,
                client_ip: self.client_ip,
                record,
            })
            .await;
    }
}

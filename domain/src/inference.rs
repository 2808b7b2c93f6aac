//! InferenceCall: one metered call through the gateway. Born complete — a single `Completed`
//! event at sequence 1 under a fresh request id — so the metering appender can write many in one
//! statement without a concurrency check.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::{DomainError, Money};

/// Token usage normalized across protocols (protocols.md §5.3). `None` means the upstream did not
/// say — which is not the same as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_total: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
    pub output_total: Option<u64>,
    pub reasoning: Option<u64>,
    /// True when the numbers were estimated by the gateway rather than reported upstream.
    #[serde(default)]
    pub estimated: bool,
}

impl Usage {
    /// Merges a later report into this one: each field present in `later` wins (streams report
    /// running totals; they are never added up).
    pub fn merge(&mut self, later: &Usage) {
        let pick = |mine: &mut Option<u64>, theirs: Option<u64>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        pick(&mut self.input_total, later.input_total);
        pick(&mut self.cache_read, later.cache_read);
        pick(&mut self.cache_write, later.cache_write);
        pick(&mut self.output_total, later.output_total);
        pick(&mut self.reasoning, later.reasoning);
        self.estimated |= later.estimated;
    }
}

/// One upstream attempt: the routing decision and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider: String,
    pub upstream_model: String,
    /// HTTP status from the upstream, if one arrived.
    pub status: Option<u16>,
    /// Why the attempt failed, in a few words (never the upstream's body).
    pub error: Option<String>,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub tenant_id: String,
    pub key_id: String,
    pub model: String,
    pub inbound_protocol: String,
    pub stream: bool,
    /// The HTTP status the client saw (for streams: 200, or the in-band error's status).
    pub status: u16,
    pub usage: Usage,
    pub cost: Money,
    pub price_version: u32,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub attempts: Vec<Attempt>,
    pub started_at: DateTime<Utc>,
    /// The allowance lease the call was charged to (which replica, which tenant), so the lease
    /// of a replica that died can be settled from its metered calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// Which side of the route's rollout served the call; None when no rollout was in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutArm>,
}

/// The routing decision of a call made while its model's route had a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutArm {
    pub rollout_id: String,
    /// True when the call went to the rollout's candidate, false for the current binding.
    pub candidate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InferenceCallCommand {
    Record(Box<CallRecord>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InferenceCallEvent {
    Completed(Box<CallRecord>),
}
crate::domain_event!(InferenceCallEvent, "1");

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct InferenceCall {
    recorded: bool,
}

impl Aggregate for InferenceCall {
    const TYPE: &'static str = crate::aggregate_types::INFERENCE_CALL;
    type Command = InferenceCallCommand;
    type Event = InferenceCallEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: InferenceCallCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let InferenceCallCommand::Record(record) = command;
        if self.recorded {
            return Err(DomainError::AlreadyExists("inference call"));
        }
        if record.cost.micros() < 0 {
            return Err(DomainError::invalid("cost", "must not be negative"));
        }
        sink.write(InferenceCallEvent::Completed(record), self)
            .await;
        Ok(())
    }

    fn apply(&mut self, _: InferenceCallEvent) {
        self.recorded = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn record() -> Box<CallRecord> {
        Box::new(CallRecord {
            tenant_id: "t".into(),
            key_id: "k".into(),
            model: "acc-gpt".into(),
            inbound_protocol: "openai".into(),
            stream: false,
            status: 200,
            usage: Usage::default(),
            cost: Money(10),
            price_version: 1,
            latency_ms: 5,
            ttft_ms: None,
            attempts: vec![],
            started_at: DateTime::<Utc>::UNIX_EPOCH,
            lease_id: None,
            rollout: None,
        })
    }

    #[test]
    fn a_call_is_recorded_once() {
        TestFramework::<InferenceCall>::with(())
            .given_no_previous_events()
            .when(InferenceCallCommand::Record(record()))
            .then_expect_events(vec![InferenceCallEvent::Completed(record())]);
        TestFramework::<InferenceCall>::with(())
            .given(vec![InferenceCallEvent::Completed(record())])
            .when(InferenceCallCommand::Record(record()))
            .then_expect_error(DomainError::AlreadyExists("inference call"));
    }

    #[test]
    fn absent_usage_survives_serialization_as_absent() {
        let usage = Usage {
            input_total: Some(10),
            ..Usage::default()
        };
        let json = serde_json::to_value(usage).expect("serializes");
        assert_eq!(json["output_total"], serde_json::Value::Null);
        let back: Usage = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back.output_total, None);
        assert_eq!(back.input_total, Some(10));
    }
}

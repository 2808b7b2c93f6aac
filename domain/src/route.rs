//! Route: how a public model name is served — its deployments (provider + upstream model) with
//! weights and priority tiers, and the retry policy.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::DomainError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub provider: String,
    pub upstream_model: String,
    pub weight: u32,
    /// Lower tiers are tried first; higher tiers are fallbacks.
    pub priority: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Upstream attempts per call, across deployments, before the first byte reached the client.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 2 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteCommand {
    Bind {
        deployments: Vec<Deployment>,
        retry: RetryPolicy,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteEvent {
    BindingChanged {
        deployments: Vec<Deployment>,
        retry: RetryPolicy,
    },
}
crate::domain_event!(RouteEvent, "1");

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Route {
    deployments: Vec<Deployment>,
    retry: RetryPolicy,
}

impl Aggregate for Route {
    const TYPE: &'static str = crate::aggregate_types::ROUTE;
    type Command = RouteCommand;
    type Event = RouteEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: RouteCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let RouteCommand::Bind { deployments, retry } = command;
        if !deployments.iter().any(|d| d.weight > 0) {
            return Err(DomainError::invalid(
                "deployments",
                "at least one deployment needs a weight above zero",
            ));
        }
        if deployments
            .iter()
            .any(|d| d.provider.trim().is_empty() || d.upstream_model.trim().is_empty())
        {
            return Err(DomainError::invalid(
                "deployments",
                "each deployment names a provider and an upstream model",
            ));
        }
        if retry.max_attempts == 0 || retry.max_attempts > 10 {
            return Err(DomainError::invalid("max_attempts", "must be 1 to 10"));
        }
        if deployments == self.deployments && retry == self.retry {
            return Ok(());
        }
        sink.write(RouteEvent::BindingChanged { deployments, retry }, self)
            .await;
        Ok(())
    }

    fn apply(&mut self, event: RouteEvent) {
        let RouteEvent::BindingChanged { deployments, retry } = event;
        self.deployments = deployments;
        self.retry = retry;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn deployment(weight: u32) -> Deployment {
        Deployment {
            provider: "openai-main".into(),
            upstream_model: "upstream-gpt".into(),
            weight,
            priority: 0,
        }
    }

    #[test]
    fn bind_then_same_binding_is_a_no_op() {
        let event = RouteEvent::BindingChanged {
            deployments: vec![deployment(100)],
            retry: RetryPolicy::default(),
        };
        TestFramework::<Route>::with(())
            .given_no_previous_events()
            .when(RouteCommand::Bind {
                deployments: vec![deployment(100)],
                retry: RetryPolicy::default(),
            })
            .then_expect_events(vec![event.clone()]);
        TestFramework::<Route>::with(())
            .given(vec![event])
            .when(RouteCommand::Bind {
                deployments: vec![deployment(100)],
                retry: RetryPolicy::default(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn all_zero_weights_are_refused() {
        TestFramework::<Route>::with(())
            .given_no_previous_events()
            .when(RouteCommand::Bind {
                deployments: vec![deployment(0)],
                retry: RetryPolicy::default(),
            })
            .then_expect_error_message(
                "invalid deployments: at least one deployment needs a weight above zero",
            );
    }
}

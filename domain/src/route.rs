//! Route: how a public model name is served — its deployments (provider + upstream model +
//! region) with weights and priority tiers, the retry and fallback policy, and at most one
//! rollout: a candidate binding that takes a sticky share of the API keys until it is promoted
//! (it becomes the binding) or rolled back.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DomainError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub provider: String,
    pub upstream_model: String,
    /// Where the deployment runs, when it differs from its provider's region (None: the
    /// provider's region — what every deployment written before regions existed means).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub weight: u32,
    /// Lower tiers are tried first; higher tiers are fallbacks.
    pub priority: u32,
}

/// Which upstream failures another attempt is made for. Failures not listed (a 4xx other than
/// 429, a credential that cannot be read) never retry: another attempt would fail the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryOn {
    /// HTTP 429 from the upstream.
    pub rate_limit: bool,
    /// HTTP 5xx from the upstream.
    pub server_error: bool,
    /// No answer (or no first byte of a stream) in time.
    pub timeout: bool,
    /// The connection could not be made or broke.
    pub connect: bool,
}

impl RetryOn {
    pub const ALL: RetryOn = RetryOn {
        rate_limit: true,
        server_error: true,
        timeout: true,
        connect: true,
    };
}

fn retry_on_all() -> RetryOn {
    RetryOn::ALL
}

fn yes() -> bool {
    true
}

/// Retries happen only before the first byte reached the client. Policies written before
/// `retry_on` and `fallback` existed load as "every retryable failure, with fallback" — what the
/// gateway did then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Upstream attempts per call, across deployments (the first attempt included).
    pub max_attempts: u32,
    #[serde(default = "retry_on_all")]
    pub retry_on: RetryOn,
    /// Whether a retry may move on to a lower-priority tier once the first tier's deployments
    /// were each tried; without fallback, retries stay within the first usable tier.
    #[serde(default = "yes")]
    pub fallback: bool,
    /// How the deployments are ordered.
    #[serde(default)]
    pub strategy: RouteStrategy,
    /// Deadline of the whole call up to its first byte, every attempt included; none: each
    /// attempt has the gateway's first-byte timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 2,
            retry_on: RetryOn::ALL,
            fallback: true,
            strategy: RouteStrategy::Priority,
            timeout_ms: None,
        }
    }
}

/// How a route orders its deployments. Only `priority` is built so far — lower tiers first,
/// weighted within a tier — so a file or form naming another strategy is refused when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteStrategy {
    #[default]
    Priority,
}

/// The longest deadline a route may set for a call's first byte (one hour).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// A candidate binding serving `percent` % of the API keys, chosen by a stable hash so a key
/// always lands on the same side while the rollout lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub candidate: Vec<Deployment>,
    pub percent: u8,
}

impl Rollout {
    /// Whether calls with this API key go to the candidate: the first eight bytes of
    /// SHA-256(rollout id, key id) modulo 100, below the percent. A new rollout (a new id)
    /// draws a new sample of keys.
    pub fn takes(&self, key_id: &str) -> bool {
        bucket(&self.id, key_id) < u64::from(self.percent)
    }
}

/// A key's bucket 0..100 within a rollout.
pub fn bucket(rollout_id: &str, key_id: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(rollout_id.as_bytes());
    hash.update([0]);
    hash.update(key_id.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 100
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteCommand {
    Bind {
        deployments: Vec<Deployment>,
        retry: RetryPolicy,
    },
    /// Starts sending `percent` % of the keys to `candidate`. The id comes from the caller (the
    /// domain draws no random numbers).
    StartRollout {
        rollout_id: String,
        candidate: Vec<Deployment>,
        percent: u8,
    },
    ChangeRolloutPercent {
        percent: u8,
    },
    /// The candidate becomes the binding for every key.
    PromoteRollout,
    /// Every key goes back to the binding.
    RollBack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteEvent {
    BindingChanged {
        deployments: Vec<Deployment>,
        retry: RetryPolicy,
    },
    RolloutStarted {
        rollout_id: String,
        candidate: Vec<Deployment>,
        percent: u8,
    },
    RolloutPercentChanged {
        percent: u8,
    },
    /// The candidate replaced the deployments.
    RolloutPromoted,
    RolledBack,
}
crate::domain_event!(RouteEvent, "1");

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Route {
    deployments: Vec<Deployment>,
    retry: RetryPolicy,
    rollout: Option<Rollout>,
}

/// The rules every set of deployments (a binding or a rollout's candidate) follows.
pub fn check_deployments(
    field: &'static str,
    deployments: &[Deployment],
) -> Result<(), DomainError> {
    if deployments
        .iter()
        .any(|d| d.provider.trim().is_empty() || d.upstream_model.trim().is_empty())
    {
        return Err(DomainError::invalid(
            field,
            "each deployment names a provider and an upstream model",
        ));
    }
    if !deployments.iter().any(|d| d.weight > 0) {
        return Err(DomainError::invalid(
            field,
            "at least one deployment needs a weight above zero",
        ));
    }
    for (i, d) in deployments.iter().enumerate() {
        let same = |o: &Deployment| {
            o.provider == d.provider && o.upstream_model == d.upstream_model && o.region == d.region
        };
        if deployments[..i].iter().any(same) {
            return Err(DomainError::invalid(
                field,
                format!(
                    "{} / {} is listed twice; give it one row with the weight it needs",
                    d.provider, d.upstream_model
                ),
            ));
        }
    }
    Ok(())
}

fn check_percent(percent: u8) -> Result<(), DomainError> {
    if (1..=100).contains(&percent) {
        Ok(())
    } else {
        Err(DomainError::invalid("percent", "must be 1 to 100"))
    }
}

fn no_rollout() -> DomainError {
    DomainError::invalid("rollout", "no rollout is in progress")
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
        let event = match command {
            RouteCommand::Bind { deployments, retry } => {
                check_deployments("deployments", &deployments)?;
                if retry.max_attempts == 0 || retry.max_attempts > 10 {
                    return Err(DomainError::invalid("max_attempts", "must be 1 to 10"));
                }
                if retry
                    .timeout_ms
                    .is_some_and(|ms| ms == 0 || ms > MAX_TIMEOUT_MS)
                {
                    return Err(DomainError::invalid(
                        "timeout_ms",
                        "must be from 1 to 3600000 (one hour)",
                    ));
                }
                if deployments == self.deployments && retry == self.retry {
                    return Ok(());
                }
                RouteEvent::BindingChanged { deployments, retry }
            }
            RouteCommand::StartRollout {
                rollout_id,
                candidate,
                percent,
            } => {
                if self.deployments.is_empty() {
                    return Err(DomainError::invalid(
                        "rollout",
                        "bind the model first; a rollout moves traffic from a binding",
                    ));
                }
                if self.rollout.is_some() {
                    return Err(DomainError::invalid(
                        "rollout",
                        "a rollout is already in progress; promote it or roll it back first",
                    ));
                }
                check_deployments("candidate", &candidate)?;
                check_percent(percent)?;
                if candidate == self.deployments {
                    return Err(DomainError::invalid(
                        "candidate",
                        "is the same as the current binding",
                    ));
                }
                if rollout_id.trim().is_empty() {
                    return Err(DomainError::invalid("rollout_id", "must be given"));
                }
                RouteEvent::RolloutStarted {
                    rollout_id,
                    candidate,
                    percent,
                }
            }
            RouteCommand::ChangeRolloutPercent { percent } => {
                let rollout = self.rollout.as_ref().ok_or_else(no_rollout)?;
                check_percent(percent)?;
                if rollout.percent == percent {
                    return Ok(());
                }
                RouteEvent::RolloutPercentChanged { percent }
            }
            RouteCommand::PromoteRollout => {
                self.rollout.as_ref().ok_or_else(no_rollout)?;
                RouteEvent::RolloutPromoted
            }
            RouteCommand::RollBack => {
                self.rollout.as_ref().ok_or_else(no_rollout)?;
                RouteEvent::RolledBack
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: RouteEvent) {
        match event {
            RouteEvent::BindingChanged { deployments, retry } => {
                self.deployments = deployments;
                self.retry = retry;
            }
            RouteEvent::RolloutStarted {
                rollout_id,
                candidate,
                percent,
            } => {
                self.rollout = Some(Rollout {
                    id: rollout_id,
                    candidate,
                    percent,
                })
            }
            RouteEvent::RolloutPercentChanged { percent } => {
                if let Some(rollout) = &mut self.rollout {
                    rollout.percent = percent;
                }
            }
            RouteEvent::RolloutPromoted => {
                if let Some(rollout) = self.rollout.take() {
                    self.deployments = rollout.candidate;
                }
            }
            RouteEvent::RolledBack => self.rollout = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Route>;

    fn deployment(weight: u32) -> Deployment {
        Deployment {
            provider: "openai-main".into(),
            upstream_model: "upstream-gpt".into(),
            region: None,
            weight,
            priority: 0,
        }
    }
    fn candidate() -> Vec<Deployment> {
        vec![Deployment {
            provider: "openai-next".into(),
            upstream_model: "upstream-gpt-2".into(),
            region: Some("eu-west".into()),
            weight: 1,
            priority: 0,
        }]
    }
    fn bound() -> RouteEvent {
        RouteEvent::BindingChanged {
            deployments: vec![deployment(100)],
            retry: RetryPolicy::default(),
        }
    }
    fn started(percent: u8) -> RouteEvent {
        RouteEvent::RolloutStarted {
            rollout_id: "r1".into(),
            candidate: candidate(),
            percent,
        }
    }

    #[test]
    fn bind_then_same_binding_is_a_no_op() {
        Given::with(())
            .given_no_previous_events()
            .when(RouteCommand::Bind {
                deployments: vec![deployment(100)],
                retry: RetryPolicy::default(),
            })
            .then_expect_events(vec![bound()]);
        Given::with(())
            .given(vec![bound()])
            .when(RouteCommand::Bind {
                deployments: vec![deployment(100)],
                retry: RetryPolicy::default(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn all_zero_weights_are_refused() {
        Given::with(())
            .given_no_previous_events()
            .when(RouteCommand::Bind {
                deployments: vec![deployment(0)],
                retry: RetryPolicy::default(),
            })
            .then_expect_error_message(
                "invalid deployments: at least one deployment needs a weight above zero",
            );
    }

    #[test]
    fn the_same_deployment_twice_and_zero_attempts_are_refused() {
        Given::with(())
            .given_no_previous_events()
            .when(RouteCommand::Bind {
                deployments: vec![deployment(1), deployment(2)],
                retry: RetryPolicy::default(),
            })
            .then_expect_error_message(
                "invalid deployments: openai-main / upstream-gpt is listed twice; give it one row with the weight it needs",
            );
        Given::with(())
            .given_no_previous_events()
            .when(RouteCommand::Bind {
                deployments: vec![deployment(1)],
                retry: RetryPolicy {
                    max_attempts: 0,
                    ..RetryPolicy::default()
                },
            })
            .then_expect_error_message("invalid max_attempts: must be 1 to 10");
        Given::with(())
            .given_no_previous_events()
            .when(RouteCommand::Bind {
                deployments: vec![deployment(1)],
                retry: RetryPolicy {
                    timeout_ms: Some(0),
                    ..RetryPolicy::default()
                },
            })
            .then_expect_error_message("invalid timeout_ms: must be from 1 to 3600000 (one hour)");
    }

    #[test]
    fn a_policy_written_before_retry_on_and_fallback_keeps_the_old_behaviour() {
        let old = serde_json::json!({"BindingChanged": {
            "deployments": [{"provider": "p", "upstream_model": "m", "weight": 1, "priority": 0}],
            "retry": {"max_attempts": 3}}});
        let event: RouteEvent = serde_json::from_value(old).expect("an old event loads");
        let RouteEvent::BindingChanged { deployments, retry } = event else {
            panic!("a BindingChanged event");
        };
        assert_eq!(deployments[0].region, None);
        assert_eq!(retry.retry_on, RetryOn::ALL);
        assert!(retry.fallback);
        assert_eq!(retry.max_attempts, 3);
    }

    #[test]
    fn a_rollout_starts_only_from_a_binding_and_one_at_a_time() {
        Given::with(())
            .given_no_previous_events()
            .when(RouteCommand::StartRollout {
                rollout_id: "r1".into(),
                candidate: candidate(),
                percent: 10,
            })
            .then_expect_error_message(
                "invalid rollout: bind the model first; a rollout moves traffic from a binding",
            );
        Given::with(())
            .given(vec![bound()])
            .when(RouteCommand::StartRollout {
                rollout_id: "r1".into(),
                candidate: candidate(),
                percent: 10,
            })
            .then_expect_events(vec![started(10)]);
        Given::with(())
            .given(vec![bound(), started(10)])
            .when(RouteCommand::StartRollout {
                rollout_id: "r2".into(),
                candidate: candidate(),
                percent: 20,
            })
            .then_expect_error_message(
                "invalid rollout: a rollout is already in progress; promote it or roll it back first",
            );
    }

    #[test]
    fn rollout_percent_is_1_to_100() {
        for percent in [0, 101] {
            Given::with(())
                .given(vec![bound()])
                .when(RouteCommand::StartRollout {
                    rollout_id: "r1".into(),
                    candidate: candidate(),
                    percent,
                })
                .then_expect_error_message("invalid percent: must be 1 to 100");
        }
        Given::with(())
            .given(vec![bound(), started(10)])
            .when(RouteCommand::ChangeRolloutPercent { percent: 50 })
            .then_expect_events(vec![RouteEvent::RolloutPercentChanged { percent: 50 }]);
        Given::with(())
            .given(vec![bound(), started(10)])
            .when(RouteCommand::ChangeRolloutPercent { percent: 0 })
            .then_expect_error_message("invalid percent: must be 1 to 100");
    }

    #[test]
    fn promote_and_roll_back_need_a_rollout() {
        for command in [
            RouteCommand::PromoteRollout,
            RouteCommand::RollBack,
            RouteCommand::ChangeRolloutPercent { percent: 5 },
        ] {
            Given::with(())
                .given(vec![bound()])
                .when(command)
                .then_expect_error_message("invalid rollout: no rollout is in progress");
        }
        Given::with(())
            .given(vec![bound(), started(10)])
            .when(RouteCommand::PromoteRollout)
            .then_expect_events(vec![RouteEvent::RolloutPromoted]);
        Given::with(())
            .given(vec![bound(), started(10)])
            .when(RouteCommand::RollBack)
            .then_expect_events(vec![RouteEvent::RolledBack]);
    }

    #[test]
    fn a_promoted_candidate_is_the_binding() {
        // Binding the candidate's deployments after a promotion changes nothing: they are
        // the binding already.
        Given::with(())
            .given(vec![bound(), started(10), RouteEvent::RolloutPromoted])
            .when(RouteCommand::Bind {
                deployments: candidate(),
                retry: RetryPolicy::default(),
            })
            .then_expect_events(vec![]);
        // After a roll back the binding is what it was.
        Given::with(())
            .given(vec![bound(), started(10), RouteEvent::RolledBack])
            .when(RouteCommand::Bind {
                deployments: vec![deployment(100)],
                retry: RetryPolicy::default(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_key_stays_on_its_side_and_the_share_follows_the_percent() {
        let rollout = Rollout {
            id: "r1".into(),
            candidate: candidate(),
            percent: 30,
        };
        let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i}")).collect();
        let taken = keys.iter().filter(|k| rollout.takes(k)).count();
        assert!((2_700..=3_300).contains(&taken), "{taken} of 10 000 keys");
        for key in keys.iter().take(100) {
            assert_eq!(rollout.takes(key), rollout.takes(key));
        }
        // Raising the percent keeps every key that was in, in.
        let wider = Rollout {
            percent: 60,
            ..rollout.clone()
        };
        assert!(keys
            .iter()
            .filter(|k| rollout.takes(k))
            .all(|k| wider.takes(k)));
        let all = Rollout {
            percent: 100,
            ..rollout
        };
        assert!(keys.iter().all(|k| all.takes(k)));
    }
}

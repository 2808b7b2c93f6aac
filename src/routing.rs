//! Route selection: which deployments a call tries, in order, and which failures it retries.
//!
//! First the rollout arm: while a route has a rollout, a stable hash of (rollout id, key id)
//! puts each API key on the candidate or on the binding, so a key sees one side for the whole
//! rollout. Then, within that side's deployments: lower priority tiers first; within a tier, a
//! weighted random order, so traffic splits by weight and a failed deployment falls back to the
//! next. Disabled or unknown providers are skipped. Without fallback, only the first usable tier
//! is tried. Regions are descriptive: replicas have no region of their own to prefer yet.

use modelrouter_domain::inference::RolloutArm;
use modelrouter_domain::route::{Deployment, RetryOn, RetryPolicy};
use modelrouter_projections::live::{LiveView, ProviderEntry};
use rand::Rng;

use crate::upstream::UpstreamError;

/// A deployment with its provider, ready to call.
#[derive(Debug, Clone)]
pub struct Target {
    pub deployment: Deployment,
    pub provider: ProviderEntry,
}

/// What a call tries: its targets best first (empty when the model has no usable route), the
/// route's retry policy, and the rollout arm it was put on.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub targets: Vec<Target>,
    pub retry: RetryPolicy,
    pub arm: Option<RolloutArm>,
}

impl Plan {
    /// The attempts to make, in order: the targets round and round, up to the policy's
    /// maximum (a single target is retried on itself).
    pub fn attempts(&self) -> impl Iterator<Item = &Target> {
        let max = self.retry.max_attempts.max(1) as usize;
        self.targets.iter().cycle().take(max)
    }
}

/// The plan of a call to `model` with the API key `key_id`.
pub fn plan(view: &LiveView, model: &str, key_id: &str, rng: &mut impl Rng) -> Plan {
    let Some(route) = view.routes.get(model) else {
        return Plan::default();
    };
    let (deployments, arm) = match &route.rollout {
        Some(rollout) => {
            let candidate = rollout.takes(key_id);
            let deployments = if candidate {
                &rollout.candidate
            } else {
                &route.deployments
            };
            let arm = RolloutArm {
                rollout_id: rollout.id.clone(),
                candidate,
            };
            (deployments, Some(arm))
        }
        None => (&route.deployments, None),
    };
    let usable = deployments.iter().filter(|d| d.weight > 0).filter_map(|d| {
        let provider = view.providers.get(&d.provider)?;
        provider.enabled.then(|| Target {
            deployment: d.clone(),
            provider: provider.clone(),
        })
    });
    // Weighted shuffle within each tier (Efraimidis–Spirakis keys), tiers ascending.
    let mut keyed: Vec<(u32, f64, Target)> = usable
        .map(|t| {
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            let key = u.powf(1.0 / f64::from(t.deployment.weight));
            (t.deployment.priority, -key, t)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    if !route.retry.fallback {
        if let Some(first) = keyed.first().map(|k| k.0) {
            keyed.retain(|k| k.0 == first);
        }
    }
    Plan {
        targets: keyed.into_iter().map(|(_, _, t)| t).collect(),
        retry: route.retry,
        arm,
    }
}

/// Whether the policy makes another attempt after this failure. Errors that would repeat on
/// any attempt (a 4xx other than 429 that is about the request) never retry; a refusal of the
/// platform itself (401, 403, 404, an unreadable credential) moves on to other deployments.
pub fn retries(on: &RetryOn, error: &UpstreamError) -> bool {
    match error {
        UpstreamError::Connect | UpstreamError::Transport(_) => on.connect,
        UpstreamError::Timeout => on.timeout,
        UpstreamError::Status { status: 429, .. } => on.rate_limit,
        // The provider refused the platform (credential, model, URL): another deployment may
        // serve; the pipeline never tries the refusing one again.
        error if error.is_platform_fault() => on.server_error,
        UpstreamError::Status { status, .. } if *status >= 500 => on.server_error,
        UpstreamError::Status { .. }
        | UpstreamError::Credential
        | UpstreamError::Unsupported(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelrouter_domain::provider::{ProviderConfig, UpstreamProtocol};
    use modelrouter_domain::route::Rollout;
    use modelrouter_projections::live::RouteEntry;

    fn deployment(provider: &str, priority: u32) -> Deployment {
        Deployment {
            provider: provider.into(),
            upstream_model: format!("{provider}-model"),
            region: None,
            weight: 1,
            priority,
        }
    }

    fn view(rollout: Option<Rollout>, retry: RetryPolicy) -> LiveView {
        let mut view = LiveView::default();
        for id in ["old", "new", "spare"] {
            let provider = ProviderEntry {
                config: ProviderConfig {
                    protocol: UpstreamProtocol::Openai,
                    base_url: format!("http://{id}.example/v1"),
                    region: "local".into(),
                },
                enabled: true,
                credential: None,
                fingerprint: None,
                credential_rotated_at: None,
                last_test: None,
                registered_at: chrono::Utc::now(),
            };
            view.providers.insert(id.into(), provider);
        }
        let route = RouteEntry {
            deployments: vec![deployment("old", 0), deployment("spare", 1)],
            retry,
            rollout,
        };
        view.routes.insert("m".into(), route);
        view
    }

    #[test]
    fn a_rollout_takes_about_its_share_of_keys_and_each_key_stays_put() {
        let rollout = Rollout {
            id: "rollout-1".into(),
            candidate: vec![deployment("new", 0)],
            percent: 30,
        };
        let view = view(Some(rollout), RetryPolicy::default());
        let mut rng = rand::thread_rng();
        let mut candidate = 0;
        for i in 0..10_000 {
            let key = format!("key-{i}");
            let first = plan(&view, "m", &key, &mut rng);
            let arm = first.arm.clone().expect("a rollout arm");
            assert_eq!(arm.rollout_id, "rollout-1");
            if arm.candidate {
                candidate += 1;
                assert_eq!(first.targets[0].deployment.provider, "new");
            } else {
                assert_eq!(first.targets[0].deployment.provider, "old");
            }
            if i < 200 {
                let again = plan(&view, "m", &key, &mut rng);
                assert_eq!(again.arm, Some(arm), "{key} changed sides");
            }
        }
        assert!(
            (2_700..=3_300).contains(&candidate),
            "{candidate} of 10 000 keys"
        );
    }

    #[test]
    fn without_fallback_only_the_first_tier_is_tried() {
        let mut rng = rand::thread_rng();
        let with = plan(&view(None, RetryPolicy::default()), "m", "k", &mut rng);
        let providers: Vec<&str> = with
            .targets
            .iter()
            .map(|t| t.deployment.provider.as_str())
            .collect();
        assert_eq!(providers, ["old", "spare"]);
        assert_eq!(with.arm, None);
        let policy = RetryPolicy {
            max_attempts: 3,
            fallback: false,
            ..RetryPolicy::default()
        };
        let without = plan(&view(None, policy), "m", "k", &mut rng);
        let attempts: Vec<&str> = without
            .attempts()
            .map(|t| t.deployment.provider.as_str())
            .collect();
        assert_eq!(attempts, ["old", "old", "old"]);
    }

    #[test]
    fn only_the_failures_the_policy_names_retry() {
        let only_rate_limits = RetryOn {
            rate_limit: true,
            server_error: false,
            timeout: false,
            connect: false,
        };
        let status = |status| UpstreamError::Status {
            status,
            message: None,
        };
        assert!(retries(&only_rate_limits, &status(429)));
        assert!(!retries(&only_rate_limits, &status(503)));
        assert!(!retries(&only_rate_limits, &UpstreamError::Timeout));
        assert!(retries(&RetryOn::ALL, &status(503)));
        assert!(retries(&RetryOn::ALL, &UpstreamError::Connect));
        assert!(!retries(&RetryOn::ALL, &status(400)));
        assert!(!retries(&RetryOn::ALL, &status(422)));
        // A refusal of the platform itself moves on to other deployments.
        for refused in [
            status(401),
            status(403),
            status(404),
            UpstreamError::Credential,
        ] {
            assert!(retries(&RetryOn::ALL, &refused), "{refused:?}");
            assert!(!retries(&only_rate_limits, &refused), "{refused:?}");
        }
    }
}

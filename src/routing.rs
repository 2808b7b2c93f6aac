//! Route selection: which deployments a call tries, in order. Lower priority tiers first; within
//! a tier, a weighted random order, so traffic splits by weight and a failed deployment falls
//! back to the next. Disabled or unknown providers are skipped.

use modelrouter_domain::route::Deployment;
use modelrouter_projections::live::{LiveView, ProviderEntry};
use rand::Rng;

/// A deployment with its provider, ready to call.
#[derive(Debug, Clone)]
pub struct Target {
    pub deployment: Deployment,
    pub provider: ProviderEntry,
}

/// The deployments to try for `model`, best first; empty when the model has no usable route.
pub fn plan(view: &LiveView, model: &str, rng: &mut impl Rng) -> Vec<Target> {
    let Some(route) = view.routes.get(model) else {
        return Vec::new();
    };
    let mut usable: Vec<Target> = route
        .deployments
        .iter()
        .filter(|d| d.weight > 0)
        .filter_map(|d| {
            let provider = view.providers.get(&d.provider)?;
            provider.enabled.then(|| Target {
                deployment: d.clone(),
                provider: provider.clone(),
            })
        })
        .collect();
    // Weighted shuffle within each tier (Efraimidis–Spirakis keys), tiers ascending.
    let mut keyed: Vec<(u32, f64, Target)> = usable
        .drain(..)
        .map(|t| {
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            let key = u.powf(1.0 / f64::from(t.deployment.weight));
            (t.deployment.priority, -key, t)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    keyed.into_iter().map(|(_, _, t)| t).collect()
}

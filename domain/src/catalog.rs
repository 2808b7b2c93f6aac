//! CatalogModel: a public model name customers send, its display name, its prices and who may
//! see it. Every price change bumps the price version; a charge records the version it used.
//! A retired model is offered to nobody until it is restored (or published again).

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::{DomainError, Pricing};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDetails {
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// Output tokens reserved from the allowance for a request that sets no output limit.
    #[serde(default = "default_max_output_tokens")]
    pub max_output_tokens: u32,
    /// The context window in tokens, as customers are told it (informational; None: not said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// What the model does: chat (the default) or embeddings (only input tokens are priced).
    #[serde(default, skip_serializing_if = "ModelKind::is_chat")]
    pub kind: ModelKind,
}

/// What a model answers. Embedding models are never served on the chat endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    #[default]
    Chat,
    Embedding,
}

impl ModelKind {
    pub fn is_chat(&self) -> bool {
        *self == ModelKind::Chat
    }
}

/// Which tenants may see and call a model. A model a tenant may not see behaves, for that
/// tenant, as if it did not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Visibility {
    #[default]
    Everyone,
    /// Only the listed tenants (by id) and the tenants on one of the listed plans.
    Restricted {
        tenants: Vec<String>,
        plans: Vec<String>,
    },
}

impl Visibility {
    /// Whether a tenant with this id and plan may see the model.
    pub fn admits(&self, tenant_id: &str, plan: &str) -> bool {
        match self {
            Visibility::Everyone => true,
            Visibility::Restricted { tenants, plans } => {
                tenants.iter().any(|t| t == tenant_id) || plans.iter().any(|p| p == plan)
            }
        }
    }

    /// The same visibility with its lists trimmed, sorted and without duplicates, plan names
    /// spelled as tenants' plans are (lower case).
    fn normalized(self) -> Result<Visibility, DomainError> {
        let clean = |list: Vec<String>| {
            let mut list: Vec<String> = list
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            list.sort();
            list.dedup();
            list
        };
        Ok(match self {
            Visibility::Everyone => Visibility::Everyone,
            Visibility::Restricted { tenants, plans } => {
                let plans = clean(plans)
                    .iter()
                    .map(|p| {
                        crate::tenant::normalize_plan(p).map_err(|_| {
                            DomainError::invalid(
                                "visibility",
                                format!("plan '{p}' is not a plan name: use 1 to 40 letters, digits, dashes or underscores"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Visibility::Restricted {
                    tenants: clean(tenants),
                    plans: clean(plans),
                }
            }
        })
    }
}

pub fn default_max_output_tokens() -> u32 {
    4096
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogModelCommand {
    /// Publishes the model, or updates details and prices where they differ. New prices apply
    /// from `effective_at` (from when the change is recorded if None); calls made before then
    /// keep the price version they were charged at.
    Publish {
        details: ModelDetails,
        pricing: Pricing,
        #[serde(default)]
        effective_at: Option<DateTime<Utc>>,
    },
    /// Changes the display name, description and limits of a published, unretired model.
    ChangeDetails {
        details: ModelDetails,
    },
    /// A new price version from `effective_at` (from when it is recorded if None).
    ChangePricing {
        pricing: Pricing,
        #[serde(default)]
        effective_at: Option<DateTime<Utc>>,
    },
    SetVisibility {
        visibility: Visibility,
    },
    Retire,
    /// Offers a retired model again, with the details and prices it had.
    Restore,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogModelEvent {
    Published {
        details: ModelDetails,
        pricing: Pricing,
        price_version: u32,
    },
    DetailsChanged {
        details: ModelDetails,
    },
    /// A new price version. It applies to calls that start at or after `effective_at` (after
    /// the event's recorded time when None); earlier calls are never re-priced.
    PricingChanged {
        pricing: Pricing,
        price_version: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        effective_at: Option<DateTime<Utc>>,
    },
    VisibilityChanged {
        visibility: Visibility,
    },
    Retired,
    Restored,
}
crate::domain_event!(CatalogModelEvent, "1");

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CatalogModel {
    details: Option<ModelDetails>,
    /// The newest price version, whether or not it is in effect yet.
    pricing: Pricing,
    price_version: u32,
    effective_at: Option<DateTime<Utc>>,
    retired: bool,
    visibility: Visibility,
}

fn check_details(details: &ModelDetails) -> Result<(), DomainError> {
    if details.display_name.trim().is_empty() {
        return Err(DomainError::invalid("display_name", "must be given"));
    }
    if details.max_output_tokens == 0 {
        return Err(DomainError::invalid(
            "max_output_tokens",
            "must be positive",
        ));
    }
    if details.context_window == Some(0) {
        return Err(DomainError::invalid("context_window", "must be positive"));
    }
    Ok(())
}

impl CatalogModel {
    /// A price change, unless the same prices are already scheduled for the same time.
    async fn reprice(
        &mut self,
        pricing: Pricing,
        effective_at: Option<DateTime<Utc>>,
        sink: &EventSink<Self>,
    ) {
        // The same prices at the same time change nothing (a re-import); the same prices from
        // another time reschedule them as a new version.
        if self.pricing != pricing || effective_at != self.effective_at {
            let event = CatalogModelEvent::PricingChanged {
                pricing,
                price_version: self.price_version + 1,
                effective_at,
            };
            sink.write(event, self).await;
        }
    }
}

impl Aggregate for CatalogModel {
    const TYPE: &'static str = crate::aggregate_types::CATALOG_MODEL;
    type Command = CatalogModelCommand;
    type Event = CatalogModelEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CatalogModelCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            CatalogModelCommand::Publish {
                details,
                pricing,
                effective_at,
            } => {
                check_details(&details)?;
                pricing.validate()?;
                match &self.details {
                    None => {
                        let event = CatalogModelEvent::Published {
                            details,
                            pricing,
                            price_version: 1,
                        };
                        sink.write(event, self).await;
                    }
                    Some(current) => {
                        // Publishing again also restores a retired model (DetailsChanged
                        // always has, so old logs replay the same).
                        if *current != details || self.retired {
                            sink.write(CatalogModelEvent::DetailsChanged { details }, self)
                                .await;
                        }
                        self.reprice(pricing, effective_at, sink).await;
                    }
                }
            }
            _ if self.details.is_none() => return Err(DomainError::NotFound("model")),
            CatalogModelCommand::ChangeDetails { details } => {
                check_details(&details)?;
                if self.retired {
                    return Err(DomainError::invalid(
                        "model",
                        "is retired; restore it before changing its details",
                    ));
                }
                if self.details.as_ref() != Some(&details) {
                    sink.write(CatalogModelEvent::DetailsChanged { details }, self)
                        .await;
                }
            }
            CatalogModelCommand::ChangePricing {
                pricing,
                effective_at,
            } => {
                pricing.validate()?;
                self.reprice(pricing, effective_at, sink).await;
            }
            CatalogModelCommand::SetVisibility { visibility } => {
                let visibility = visibility.normalized()?;
                if let Visibility::Restricted { tenants, plans } = &visibility {
                    if tenants.is_empty() && plans.is_empty() {
                        return Err(DomainError::invalid(
                            "visibility",
                            "name at least one tenant or plan (retire the model to hide it from everyone)",
                        ));
                    }
                }
                if visibility != self.visibility {
                    sink.write(CatalogModelEvent::VisibilityChanged { visibility }, self)
                        .await;
                }
            }
            CatalogModelCommand::Retire if self.retired => {}
            CatalogModelCommand::Retire => sink.write(CatalogModelEvent::Retired, self).await,
            CatalogModelCommand::Restore if !self.retired => {}
            CatalogModelCommand::Restore => sink.write(CatalogModelEvent::Restored, self).await,
        }
        Ok(())
    }

    fn apply(&mut self, event: CatalogModelEvent) {
        match event {
            CatalogModelEvent::Published {
                details,
                pricing,
                price_version,
            } => {
                self.details = Some(details);
                self.pricing = pricing;
                self.price_version = price_version;
            }
            CatalogModelEvent::DetailsChanged { details } => {
                self.details = Some(details);
                self.retired = false;
            }
            CatalogModelEvent::PricingChanged {
                pricing,
                price_version,
                effective_at,
            } => {
                self.pricing = pricing;
                self.price_version = price_version;
                self.effective_at = effective_at;
            }
            CatalogModelEvent::VisibilityChanged { visibility } => self.visibility = visibility,
            CatalogModelEvent::Retired => self.retired = true,
            CatalogModelEvent::Restored => self.retired = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<CatalogModel>;

    fn details() -> ModelDetails {
        ModelDetails {
            display_name: "ACC GPT".into(),
            description: String::new(),
            max_output_tokens: 4096,
            context_window: Some(128_000),
            kind: ModelKind::Chat,
        }
    }
    fn pricing(input: i64) -> Pricing {
        Pricing {
            input,
            output: 8_000_000,
            cached_input: 500_000,
            cache_write: None,
        }
    }
    fn published() -> CatalogModelEvent {
        CatalogModelEvent::Published {
            details: details(),
            pricing: pricing(2_000_000),
            price_version: 1,
        }
    }

    #[test]
    fn republishing_the_same_emits_nothing() {
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::Publish {
                details: details(),
                pricing: pricing(2_000_000),
                effective_at: None,
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_price_change_bumps_the_version() {
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::Publish {
                details: details(),
                pricing: pricing(3_000_000),
                effective_at: None,
            })
            .then_expect_events(vec![CatalogModelEvent::PricingChanged {
                pricing: pricing(3_000_000),
                price_version: 2,
                effective_at: None,
            }]);
    }

    #[test]
    fn a_scheduled_price_change_is_a_version_with_its_effective_time() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .expect("a valid time")
            .with_timezone(&Utc);
        let scheduled = CatalogModelEvent::PricingChanged {
            pricing: pricing(3_000_000),
            price_version: 2,
            effective_at: Some(at),
        };
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::Publish {
                details: details(),
                pricing: pricing(3_000_000),
                effective_at: Some(at),
            })
            .then_expect_events(vec![scheduled.clone()]);
        // Importing the same schedule again changes nothing.
        Given::with(())
            .given(vec![published(), scheduled])
            .when(CatalogModelCommand::Publish {
                details: details(),
                pricing: pricing(3_000_000),
                effective_at: Some(at),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn negative_prices_are_refused() {
        Given::with(())
            .given_no_previous_events()
            .when(CatalogModelCommand::Publish {
                details: details(),
                pricing: pricing(-1),
                effective_at: None,
            })
            .then_expect_error_message("invalid input_price: must not be negative");
    }

    #[test]
    fn details_written_before_the_context_window_existed_still_load() {
        let old = serde_json::json!({"Published": {
            "details": {"display_name": "Old", "description": "", "max_output_tokens": 1024},
            "pricing": {"input": 1, "output": 1, "cached_input": 1, "cache_write": null},
            "price_version": 1}});
        let event: CatalogModelEvent = serde_json::from_value(old).expect("an old event loads");
        let CatalogModelEvent::Published { details, .. } = event else {
            panic!("a Published event");
        };
        assert_eq!(details.context_window, None);
    }

    #[test]
    fn visibility_is_normalized_and_an_empty_restriction_is_refused() {
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::SetVisibility {
                visibility: Visibility::Restricted {
                    tenants: vec![" t-2 ".into(), "t-1".into(), "t-2".into()],
                    plans: vec!["".into(), "Enterprise ".into()],
                },
            })
            .then_expect_events(vec![CatalogModelEvent::VisibilityChanged {
                visibility: Visibility::Restricted {
                    tenants: vec!["t-1".into(), "t-2".into()],
                    plans: vec!["enterprise".into()],
                },
            }]);
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::SetVisibility {
                visibility: Visibility::Restricted {
                    tenants: vec![],
                    plans: vec![" ".into()],
                },
            })
            .then_expect_error_message(
                "invalid visibility: name at least one tenant or plan (retire the model to hide it from everyone)",
            );
        // Everyone again, when it already is, changes nothing.
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::SetVisibility {
                visibility: Visibility::Everyone,
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_restriction_admits_the_listed_tenants_and_plans_only() {
        let visibility = Visibility::Restricted {
            tenants: vec!["t-1".into()],
            plans: vec!["enterprise".into()],
        };
        assert!(visibility.admits("t-1", "standard"));
        assert!(visibility.admits("t-9", "enterprise"));
        assert!(!visibility.admits("t-9", "standard"));
        assert!(Visibility::Everyone.admits("t-9", "standard"));
    }

    #[test]
    fn a_retired_model_is_restored_and_only_then_edited() {
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::Retire)
            .then_expect_events(vec![CatalogModelEvent::Retired]);
        Given::with(())
            .given(vec![published(), CatalogModelEvent::Retired])
            .when(CatalogModelCommand::ChangeDetails { details: details() })
            .then_expect_error_message(
                "invalid model: is retired; restore it before changing its details",
            );
        Given::with(())
            .given(vec![published(), CatalogModelEvent::Retired])
            .when(CatalogModelCommand::Restore)
            .then_expect_events(vec![CatalogModelEvent::Restored]);
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::Restore)
            .then_expect_events(vec![]);
        // Publishing again restores it too.
        Given::with(())
            .given(vec![published(), CatalogModelEvent::Retired])
            .when(CatalogModelCommand::Publish {
                details: details(),
                pricing: pricing(2_000_000),
                effective_at: None,
            })
            .then_expect_events(vec![CatalogModelEvent::DetailsChanged {
                details: details(),
            }]);
    }

    #[test]
    fn details_and_prices_change_separately_and_only_when_they_differ() {
        let mut renamed = details();
        renamed.display_name = "ACC GPT 2".into();
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::ChangeDetails {
                details: renamed.clone(),
            })
            .then_expect_events(vec![CatalogModelEvent::DetailsChanged { details: renamed }]);
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::ChangePricing {
                pricing: pricing(2_000_000),
                effective_at: None,
            })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::ChangePricing {
                pricing: pricing(4_000_000),
                effective_at: None,
            })
            .then_expect_events(vec![CatalogModelEvent::PricingChanged {
                pricing: pricing(4_000_000),
                price_version: 2,
                effective_at: None,
            }]);
        let mut zero_window = details();
        zero_window.context_window = Some(0);
        Given::with(())
            .given(vec![published()])
            .when(CatalogModelCommand::ChangeDetails {
                details: zero_window,
            })
            .then_expect_error_message("invalid context_window: must be positive");
    }

    #[test]
    fn an_unpublished_model_cannot_be_changed() {
        Given::with(())
            .given_no_previous_events()
            .when(CatalogModelCommand::Retire)
            .then_expect_error(DomainError::NotFound("model"));
        Given::with(())
            .given_no_previous_events()
            .when(CatalogModelCommand::SetVisibility {
                visibility: Visibility::Everyone,
            })
            .then_expect_error(DomainError::NotFound("model"));
    }
}

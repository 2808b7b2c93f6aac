//! CatalogModel: a public model name customers send, its display name and its prices.
//! Every price change bumps the price version; a charge records the version it used.

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
    Retire,
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
    Retired,
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
    Ok(())
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
                        if *current != details || self.retired {
                            sink.write(CatalogModelEvent::DetailsChanged { details }, self)
                                .await;
                        }
                        // The same prices at the same time change nothing (a re-import);
                        // the same prices from another time reschedule them as a new version.
                        let rescheduled = effective_at != self.effective_at;
                        if self.pricing != pricing || rescheduled {
                            let price_version = self.price_version + 1;
                            let event = CatalogModelEvent::PricingChanged {
                                pricing,
                                price_version,
                                effective_at,
                            };
                            sink.write(event, self).await;
                        }
                    }
                }
            }
            CatalogModelCommand::Retire => {
                if self.details.is_none() {
                    return Err(DomainError::NotFound("model"));
                }
                if !self.retired {
                    sink.write(CatalogModelEvent::Retired, self).await;
                }
            }
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
            CatalogModelEvent::Retired => self.retired = true,
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
}

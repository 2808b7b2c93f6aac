//! The tenant usage reports over the `usage_calls` read model, on every configured store: date
//! ranges, key and model filters, paging, counts, totals per model, per day and per key, and
//! tenant isolation. Most tests seed calls with chosen times through the metering appender (the
//! gateway's own write path) and the usage projection; one runs real calls through a replica.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use modelrouter::store::{spool, MeteringRecord};
use modelrouter_domain::inference::{Attempt, CallRecord, Usage};
use modelrouter_domain::Money;
use modelrouter_projections::sql::usage_report::{
    self, DayTotals, KeyTotals, ModelTotals, UsageFilter,
};
use modelrouter_projections::sql::{self, usage, Projection, UsageRow};
use modelrouter_projections::Db;
use serde_json::json;

const ACME: &str = "tenant-acme";
const OTHER: &str = "tenant-other";

/// A call to seed: request id, tenant, key, model, started_at, status, input, output, cached
/// tokens, cost.
type Seed = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u16,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    i64,
);

/// Acme's calls span four UTC days with one empty day (11-23), two calls at the same instant
/// (a3, a4) and calls a millisecond either side of midnight. The other tenant uses the same
/// models, on the same days, and has the newest and most expensive call of all; two of its
/// models cost nothing, to show how equal costs are ordered.
#[rustfmt::skip] // A table reads best one call per line.
const CALLS: [Seed; 10] = [
    ("a0", ACME, "k1", "gpt", "2026-11-22T06:00:00.000Z", 200, Some(1), Some(1), None, 10),
    ("a1", ACME, "k1", "gpt", "2026-11-24T23:59:59.999Z", 200, Some(100), Some(50), Some(10), 1000),
    ("a2", ACME, "k1", "mini", "2026-11-25T00:00:00.000Z", 200, Some(10), Some(5), None, 20),
    ("a3", ACME, "k2", "gpt", "2026-11-25T12:00:00.000Z", 500, None, None, None, 0),
    ("a4", ACME, "k2", "gpt", "2026-11-25T12:00:00.000Z", 200, Some(200), Some(100), Some(0), 2000),
    ("a5", ACME, "k1", "gpt", "2026-11-26T08:30:00.250Z", 429, None, None, None, 0),
    ("a6", ACME, "k2", "mini", "2026-11-26T09:00:00.000Z", 200, Some(30), Some(30), Some(5), 60),
    ("b1", OTHER, "kb", "gpt", "2026-11-25T10:00:00.000Z", 200, Some(999), Some(999), Some(9), 50_000),
    ("b2", OTHER, "kb", "mini", "2026-11-27T00:00:00.000Z", 400, None, None, None, 0),
    ("b3", OTHER, "kb", "alpha", "2026-11-27T01:00:00.000Z", 400, None, None, None, 0),
];

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn record(
    (_, tenant, key, model, started, status, input, output, cached, cost): Seed,
) -> CallRecord {
    CallRecord {
        tenant_id: tenant.into(),
        key_id: key.into(),
        model: model.into(),
        inbound_protocol: "openai".into(),
        stream: false,
        status,
        usage: Usage {
            input_total: input,
            cache_read: cached,
            output_total: output,
            ..Usage::default()
        },
        cost: Money(cost),
        price_version: 1,
        latency_ms: 120,
        ttft_ms: None,
        attempts: vec![Attempt {
            provider: "mock-openai".into(),
            upstream_model: format!("upstream-{model}"),
            status: Some(status),
            error: None,
            latency_ms: 110,
        }],
        started_at: at(started),
        lease_id: None,
        rollout: None,
    }
}

/// The store with [`CALLS`] metered and projected into `usage_calls`.
async fn seeded(store: &Store) -> Db {
    let db = store.core().await.db;
    let records: Vec<MeteringRecord> = CALLS
        .iter()
        .map(|seed| MeteringRecord {
            request_id: seed.0.into(),
            client_ip: None,
            record: record(*seed),
        })
        .collect();
    spool::write(&db, &records).await.unwrap();
    projected(&db, CALLS.len()).await;
    db
}

/// Runs the usage projection until `usage_calls` holds `calls` rows. On PostgreSQL the tail
/// holds back events while any transaction on the server is older (see docs/architecture.md),
/// and other tests' databases share the server, so one catch-up may not yet see them.
async fn projected(db: &Db, calls: usize) {
    let caught_up = eventually(Duration::from_secs(10), || async {
        sql::catch_up(db, Projection::Usage, 1000).await.unwrap();
        usage::calls(db, None, 1000).await.unwrap().len() == calls
    })
    .await;
    assert!(
        caught_up,
        "the usage projection never reached {calls} calls"
    );
}

fn acme() -> UsageFilter<'static> {
    UsageFilter {
        tenant_id: ACME,
        from: None,
        until: None,
        key_id: None,
        model: None,
    }
}

fn ids(rows: &[UsageRow]) -> Vec<&str> {
    rows.iter().map(|row| row.request_id.as_str()).collect()
}

/// Every matching call, and checks `count` agrees with it.
async fn all(db: &Db, filter: &UsageFilter<'_>) -> Vec<UsageRow> {
    let rows = usage_report::page(db, filter, 1000, 0).await.unwrap();
    assert_eq!(
        usage_report::count(db, filter).await.unwrap(),
        rows.len() as i64
    );
    rows
}

/// What `totals_by_model` should say about `rows`, worked out by hand from the rows themselves.
fn expected_totals(rows: &[UsageRow]) -> Vec<ModelTotals> {
    let mut totals: Vec<ModelTotals> = Vec::new();
    for row in rows {
        let index = match totals.iter().position(|t| t.model == row.model) {
            Some(index) => index,
            None => {
                totals.push(ModelTotals {
                    model: row.model.clone(),
                    requests: 0,
                    errors: 0,
                    input_tokens: 0,
                    output_tokens: 0,
                    cached_tokens: 0,
                    cost: 0,
                });
                totals.len() - 1
            }
        };
        let total = &mut totals[index];
        total.requests += 1;
        total.errors += i64::from(row.status >= 400);
        total.input_tokens += row.input_tokens.unwrap_or(0);
        total.output_tokens += row.output_tokens.unwrap_or(0);
        total.cached_tokens += row.cached_tokens.unwrap_or(0);
        total.cost += row.cost;
    }
    totals.sort_by(|a, b| b.cost.cmp(&a.cost).then_with(|| a.model.cmp(&b.model)));
    totals
}

#[tokio::test]
async fn a_page_lists_the_tenants_calls_newest_first_and_offset_walks_through_them() {
    for store in stores().await {
        let db = seeded(&store).await;
        let everything = all(&db, &acme()).await;
        // Same instant (a3, a4): request id decides, so pages never overlap or skip.
        assert_eq!(
            ids(&everything),
            ["a6", "a5", "a3", "a4", "a2", "a1", "a0"],
            "{}",
            store.name
        );
        let mut walked = Vec::new();
        for offset in (0..8).step_by(3) {
            let page = usage_report::page(&db, &acme(), 3, offset).await.unwrap();
            assert!(page.len() <= 3);
            walked.extend(page);
        }
        assert_eq!(walked, everything, "{}", store.name);
        assert!(usage_report::page(&db, &acme(), 3, 7)
            .await
            .unwrap()
            .is_empty());
        assert!(usage_report::page(&db, &acme(), 0, 0)
            .await
            .unwrap()
            .is_empty());

        // A row is the call as metered, with unreported tokens still absent rather than zero.
        let a3 = &everything[2];
        assert_eq!(
            (a3.tenant_id.as_str(), a3.key_id.as_str(), a3.model.as_str()),
            (ACME, "k2", "gpt")
        );
        assert_eq!((a3.status, a3.cost), (500, 0));
        assert_eq!((a3.input_tokens, a3.output_tokens), (None, None));
        assert_eq!(a3.started_at, "2026-11-25T12:00:00.000Z");
        assert_eq!(a3.provider.as_deref(), Some("mock-openai"));
    }
}

#[tokio::test]
async fn a_date_range_includes_its_start_and_excludes_its_end() {
    for store in stores().await {
        let db = seeded(&store).await;
        // From midnight 11-25 up to exactly a5's instant: a1 (a millisecond before midnight)
        // and a5 (at the end) are out.
        let range = UsageFilter {
            from: Some(at("2026-11-25T00:00:00Z")),
            until: Some(at("2026-11-26T08:30:00.250Z")),
            ..acme()
        };
        assert_eq!(
            ids(&all(&db, &range).await),
            ["a3", "a4", "a2"],
            "{}",
            store.name
        );
        let from_only = UsageFilter {
            from: Some(at("2026-11-26T08:30:00.250Z")),
            ..acme()
        };
        assert_eq!(ids(&all(&db, &from_only).await), ["a6", "a5"]);
        let until_only = UsageFilter {
            until: Some(at("2026-11-25T00:00:00Z")),
            ..acme()
        };
        assert_eq!(ids(&all(&db, &until_only).await), ["a1", "a0"]);
        // Bounds in another offset mean the same instant.
        let from_tokyo = UsageFilter {
            from: Some(at("2026-11-25T09:00:00+09:00")),
            until: Some(at("2026-11-25T09:00:00.001+09:00")),
            ..acme()
        };
        assert_eq!(ids(&all(&db, &from_tokyo).await), ["a2"]);
        // An empty or inverted range matches nothing; far-off bounds match everything.
        let empty = UsageFilter {
            from: Some(at("2026-11-25T12:00:00Z")),
            until: Some(at("2026-11-25T12:00:00Z")),
            ..acme()
        };
        assert!(all(&db, &empty).await.is_empty());
        let inverted = UsageFilter {
            from: Some(at("2026-11-26T00:00:00Z")),
            until: Some(at("2026-11-25T00:00:00Z")),
            ..acme()
        };
        assert!(all(&db, &inverted).await.is_empty());
        let wide = UsageFilter {
            from: Some(DateTime::<Utc>::MIN_UTC),
            until: Some(DateTime::<Utc>::MAX_UTC),
            ..acme()
        };
        assert_eq!(all(&db, &wide).await.len(), 7);
    }
}

#[tokio::test]
async fn key_and_model_filters_narrow_the_calls_and_combine_with_a_date_range() {
    for store in stores().await {
        let db = seeded(&store).await;
        let k1 = UsageFilter {
            key_id: Some("k1"),
            ..acme()
        };
        assert_eq!(
            ids(&all(&db, &k1).await),
            ["a5", "a2", "a1", "a0"],
            "{}",
            store.name
        );
        let gpt = UsageFilter {
            model: Some("gpt"),
            ..acme()
        };
        assert_eq!(ids(&all(&db, &gpt).await), ["a5", "a3", "a4", "a1", "a0"]);
        let combined = UsageFilter {
            from: Some(at("2026-11-25T00:00:00Z")),
            until: Some(at("2026-11-26T00:00:00Z")),
            key_id: Some("k2"),
            model: Some("gpt"),
            ..acme()
        };
        assert_eq!(ids(&all(&db, &combined).await), ["a3", "a4"]);
        let page = usage_report::page(&db, &combined, 1, 1).await.unwrap();
        assert_eq!(ids(&page), ["a4"]);
        // A key and a model that were never used together, and an unknown key.
        let none = UsageFilter {
            key_id: Some("k2"),
            model: Some("gpt"),
            from: Some(at("2026-11-26T00:00:00Z")),
            ..acme()
        };
        assert!(all(&db, &none).await.is_empty());
        let unknown = UsageFilter {
            key_id: Some("k9"),
            ..acme()
        };
        assert!(all(&db, &unknown).await.is_empty());
    }
}

#[tokio::test]
async fn totals_by_model_add_up_exactly_the_matching_calls() {
    for store in stores().await {
        let db = seeded(&store).await;
        let totals = usage_report::totals_by_model(&db, &acme()).await.unwrap();
        assert_eq!(
            totals,
            [
                ModelTotals {
                    model: "gpt".into(),
                    requests: 5,
                    errors: 2,
                    input_tokens: 301,
                    output_tokens: 151,
                    cached_tokens: 10,
                    cost: 3010,
                },
                ModelTotals {
                    model: "mini".into(),
                    requests: 2,
                    errors: 0,
                    input_tokens: 40,
                    output_tokens: 35,
                    cached_tokens: 5,
                    cost: 80,
                },
            ],
            "{}",
            store.name
        );
        // Dearest first, whatever the names; equal costs by name.
        let order = |totals: Vec<ModelTotals>| -> Vec<(String, i64)> {
            totals.into_iter().map(|t| (t.model, t.cost)).collect()
        };
        let acme_on_the_26th = UsageFilter {
            from: Some(at("2026-11-26T00:00:00Z")),
            ..acme()
        };
        assert_eq!(
            order(
                usage_report::totals_by_model(&db, &acme_on_the_26th)
                    .await
                    .unwrap()
            ),
            [("mini".into(), 60), ("gpt".into(), 0)]
        );
        let other = UsageFilter {
            tenant_id: OTHER,
            ..acme()
        };
        assert_eq!(
            order(usage_report::totals_by_model(&db, &other).await.unwrap()),
            [
                ("gpt".into(), 50_000),
                ("alpha".into(), 0),
                ("mini".into(), 0)
            ]
        );
        let filters = [
            acme(),
            UsageFilter {
                from: Some(at("2026-11-25T00:00:00Z")),
                ..acme()
            },
            UsageFilter {
                key_id: Some("k2"),
                ..acme()
            },
            UsageFilter {
                model: Some("mini"),
                until: Some(at("2026-11-26T00:00:00Z")),
                ..acme()
            },
            UsageFilter {
                tenant_id: OTHER,
                ..acme()
            },
        ];
        for filter in &filters {
            let rows = all(&db, filter).await;
            assert_eq!(
                usage_report::totals_by_model(&db, filter).await.unwrap(),
                expected_totals(&rows),
                "{} {filter:?}",
                store.name
            );
        }
        let nothing = UsageFilter {
            key_id: Some("k9"),
            ..acme()
        };
        assert!(usage_report::totals_by_model(&db, &nothing)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn daily_totals_are_per_utc_day_oldest_first_without_empty_days() {
    for store in stores().await {
        let db = seeded(&store).await;
        let day = |day: &str, requests, cost| DayTotals {
            day: day.into(),
            requests,
            cost,
        };
        assert_eq!(
            usage_report::daily(&db, &acme()).await.unwrap(),
            [
                day("2026-11-22", 1, 10),
                day("2026-11-24", 1, 1000),
                day("2026-11-25", 3, 2020),
                day("2026-11-26", 2, 60),
            ],
            "{}",
            store.name
        );
        let k2_from_noon = UsageFilter {
            from: Some(at("2026-11-25T12:00:00Z")),
            key_id: Some("k2"),
            ..acme()
        };
        assert_eq!(
            usage_report::daily(&db, &k2_from_noon).await.unwrap(),
            [day("2026-11-25", 2, 2000), day("2026-11-26", 1, 60)]
        );
        assert_eq!(
            usage_report::daily(
                &db,
                &UsageFilter {
                    tenant_id: OTHER,
                    ..acme()
                }
            )
            .await
            .unwrap(),
            [day("2026-11-25", 1, 50_000), day("2026-11-27", 2, 0)]
        );
    }
}

#[tokio::test]
async fn by_key_gives_each_keys_totals_and_its_newest_call() {
    for store in stores().await {
        let db = seeded(&store).await;
        let key = |key_id: &str, requests, cost, last_used: &str| KeyTotals {
            key_id: key_id.into(),
            requests,
            cost,
            last_used: Some(last_used.into()),
        };
        // Most recently used first.
        assert_eq!(
            usage_report::by_key(&db, ACME).await.unwrap(),
            [
                key("k2", 3, 2060, "2026-11-26T09:00:00.000Z"),
                key("k1", 4, 1030, "2026-11-26T08:30:00.250Z"),
            ],
            "{}",
            store.name
        );
        assert_eq!(
            usage_report::by_key(&db, OTHER).await.unwrap(),
            [key("kb", 3, 50_000, "2026-11-27T01:00:00.000Z")]
        );
        assert!(usage_report::by_key(&db, "tenant-nobody")
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn one_tenants_report_never_shows_another_tenants_calls() {
    for store in stores().await {
        let db = seeded(&store).await;
        // The other tenant's calls share models and days with acme's and are the newest and
        // dearest, so a leak would show at the top of every acme report.
        let acme_gpt_on_the_25th = UsageFilter {
            from: Some(at("2026-11-25T00:00:00Z")),
            until: Some(at("2026-11-26T00:00:00Z")),
            model: Some("gpt"),
            ..acme()
        };
        for filter in [acme(), acme_gpt_on_the_25th] {
            let rows = all(&db, &filter).await;
            assert!(
                rows.iter().all(|row| row.tenant_id == ACME),
                "{}",
                store.name
            );
            assert!(usage_report::totals_by_model(&db, &filter)
                .await
                .unwrap()
                .iter()
                .all(|totals| totals.cost < 50_000));
        }
        let other = UsageFilter {
            tenant_id: OTHER,
            ..acme()
        };
        assert_eq!(ids(&all(&db, &other).await), ["b3", "b2", "b1"]);
        // Naming another tenant's key under acme finds nothing.
        let acme_with_their_key = UsageFilter {
            key_id: Some("kb"),
            ..acme()
        };
        assert!(all(&db, &acme_with_their_key).await.is_empty());
        assert!(usage_report::daily(&db, &acme_with_their_key)
            .await
            .unwrap()
            .is_empty());
        let nobody = UsageFilter {
            tenant_id: "tenant-nobody",
            ..acme()
        };
        assert!(all(&db, &nobody).await.is_empty());
        assert!(usage_report::totals_by_model(&db, &nobody)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn calls_made_through_the_gateway_show_up_in_their_tenants_report() {
    for store in stores().await {
        let env = env_with(store, 1_000_000, |_| {}).await;
        // On PostgreSQL the replica may start before the tail lets it see the imported keys
        // (see `projected`), so wait until it accepts each one.
        for key in [KEY_AUTO, KEY_FIXED, KEY_BROKE] {
            let accepted = eventually(Duration::from_secs(10), || async {
                let models = env.http.get(env.url("/v1/models")).bearer_auth(key);
                models.send().await.unwrap().status() == 200
            })
            .await;
            assert!(accepted, "the replica never learned {key}");
        }
        for (key, model) in [
            (KEY_AUTO, "test-gpt"),
            (KEY_AUTO, "test-gpt"),
            (KEY_FIXED, "test-mini"),
            (KEY_BROKE, "test-gpt"),
        ] {
            let response = env
                .chat(
                    key,
                    json!({"model": model, "messages": user("Hello there")}),
                )
                .await;
            assert_eq!(response.status(), 200);
        }
        let (store, db) = env.finish().await;
        projected(&db, 4).await;
        let acme = tenant_id(&db, "acme@example.com").await;
        let filter = UsageFilter {
            tenant_id: &acme,
            from: None,
            until: None,
            key_id: None,
            model: None,
        };
        let rows = all(&db, &filter).await;
        assert_eq!(rows.len(), 3, "{}", store.name);
        assert_eq!(
            rows,
            usage::calls(&db, Some(&acme), 100).await.unwrap(),
            "the report's page is the tenant's usage list"
        );
        // prompt 5 tokens, reply 5: test-gpt 5×2 + 5×8 = 50, test-mini 5 + 5 = 10 micro-units.
        let totals = usage_report::totals_by_model(&db, &filter).await.unwrap();
        assert_eq!(totals, expected_totals(&rows));
        assert_eq!(
            totals
                .iter()
                .map(|t| (t.model.as_str(), t.requests, t.cost))
                .collect::<Vec<_>>(),
            [("test-gpt", 2, 100), ("test-mini", 1, 10)]
        );
        let daily = usage_report::daily(&db, &filter).await.unwrap();
        assert_eq!(daily.iter().map(|d| d.requests).sum::<i64>(), 3);
        assert_eq!(daily.iter().map(|d| d.cost).sum::<i64>(), 110);

        let keys = usage_report::by_key(&db, &acme).await.unwrap();
        let mini_key = &rows.iter().find(|r| r.model == "test-mini").unwrap().key_id;
        let gpt_key = &rows.iter().find(|r| r.model == "test-gpt").unwrap().key_id;
        let mut per_key: Vec<(&str, i64, i64)> = keys
            .iter()
            .map(|k| (k.key_id.as_str(), k.requests, k.cost))
            .collect();
        per_key.sort();
        let mut expected = vec![(gpt_key.as_str(), 2, 100), (mini_key.as_str(), 1, 10)];
        expected.sort();
        assert_eq!(per_key, expected);
        for key in &keys {
            let newest = rows.iter().find(|r| r.key_id == key.key_id).unwrap();
            assert_eq!(key.last_used.as_deref(), Some(newest.started_at.as_str()));
        }
        let by_fixed_key = UsageFilter {
            key_id: Some(mini_key),
            ..filter
        };
        assert_eq!(
            all(&db, &by_fixed_key)
                .await
                .iter()
                .map(|r| r.model.as_str())
                .collect::<Vec<_>>(),
            ["test-mini"]
        );

        // The broke tenant's call is in its own report only.
        let broke = tenant_id(&db, "broke@example.com").await;
        assert_eq!(usage_report::by_key(&db, &broke).await.unwrap().len(), 1);
        assert!(rows.iter().all(|row| row.tenant_id == acme));
    }
}

/// Provider health keeps a week of minutes before the newest call: an attempt from long before
/// is counted nowhere, and a rebuild keeps the same rows.
#[tokio::test]
async fn provider_health_keeps_a_week_before_the_newest_call() {
    for store in stores().await {
        let db = seeded(&store).await;
        let old = (
            "old",
            ACME,
            "k1",
            "gpt",
            "2026-11-10T06:00:00.000Z",
            200,
            Some(1),
            Some(1),
            None,
            10,
        );
        let old = MeteringRecord {
            request_id: "old".into(),
            client_ip: None,
            record: record(old),
        };
        spool::write(&db, &[old]).await.unwrap();
        projected(&db, CALLS.len() + 1).await;
        sql::catch_up(&db, Projection::ProviderHealth, 1000)
            .await
            .unwrap();
        let rows = sql::dump(&db, Projection::ProviderHealth).await.unwrap();
        let text = format!("{rows:?}");
        assert!(
            text.contains("2026-11-22T06:00:00Z"),
            "{}: {text}",
            store.name
        );
        assert!(!text.contains("2026-11-10"), "{}: {text}", store.name);
        sql::rebuild(&db, Projection::ProviderHealth).await.unwrap();
        let rebuilt = sql::dump(&db, Projection::ProviderHealth).await.unwrap();
        assert_eq!(rows, rebuilt, "{}", store.name);
    }
}

#![allow(clippy::unwrap_used)]

use std::sync::Mutex as StdMutex;

use chrono::Utc;
use modelrouter_domain::inference::{CallRecord, Usage};
use modelrouter_domain::Money;

use super::*;

fn record(request_id: &str, lease: &str, cost: i64) -> MeteringRecord {
    MeteringRecord {
        request_id: request_id.to_string(),
        client_ip: None,
        record: CallRecord {
            tenant_id: "t1".into(),
            key_id: "k1".into(),
            model: "m".into(),
            inbound_protocol: "openai".into(),
            stream: false,
            status: 200,
            usage: Usage::default(),
            cost: Money(cost),
            price_version: 1,
            latency_ms: 1,
            ttft_ms: None,
            attempts: Vec::new(),
            started_at: Utc::now(),
            lease_id: Some(lease.to_string()),
            rollout: None,
        },
    }
}

fn settings(dir: &Path) -> SpoolSettings {
    SpoolSettings {
        dir: dir.join("spool"),
        fsync_every: Duration::from_millis(5),
        max_backlog: 1 << 20,
        flush_every: Duration::from_millis(5),
        max_batch: 16,
    }
}

async fn store(dir: &Path) -> Db {
    crate::store::open(dir.join("t.db").to_str().unwrap())
        .await
        .unwrap()
}

/// How many InferenceCall events the store holds per request id.
async fn calls_in_store(db: &Db) -> std::collections::BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT aggregate_id, count(*) FROM events WHERE aggregate_type = 'InferenceCall'
              GROUP BY aggregate_id",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    });
    rows.into_iter().collect()
}

type Counted = Arc<StdMutex<Vec<(String, String, i64)>>>;

fn counting() -> (Counted, OnRecorded) {
    let counted: Counted = Arc::default();
    let sink = counted.clone();
    (
        counted,
        Box::new(move |calls| sink.lock().unwrap().extend_from_slice(calls)),
    )
}

#[tokio::test]
async fn every_record_reaches_the_store_once_and_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path()).await;
    let (counted, on_recorded) = counting();
    let (spool, task) =
        Spool::start(settings(dir.path()), "node-a", db.clone(), on_recorded).unwrap();
    let mut writers = Vec::new();
    for w in 0..4 {
        let spool = spool.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..50 {
                spool
                    .append(&record(&format!("req-{w}-{i}"), "node-a/t1", 10))
                    .await
                    .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    drop(spool);
    assert!(task.drained(Duration::from_secs(10)).await);
    let calls = calls_in_store(&db).await;
    assert_eq!(calls.len(), 200);
    assert!(calls.values().all(|n| *n == 1));
    let counted = counted.lock().unwrap();
    assert_eq!(counted.len(), 200);
    assert_eq!(counted.iter().map(|c| c.2).sum::<i64>(), 2000);
    // A clean stop leaves no segment behind.
    let slot = dir.path().join("spool").join("0");
    let left: u64 = segments(&slot)
        .unwrap()
        .iter()
        .map(|s| fs::metadata(segment_path(&slot, *s)).unwrap().len())
        .sum();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn records_the_store_did_not_take_are_sent_by_the_next_start_and_their_leases_reported() {
    let dir = tempfile::tempdir().unwrap();
    // The first run's store is unreachable: its pool is closed.
    let down = store(dir.path()).await;
    if let Db::Sqlite(pool) = &down {
        pool.close().await;
    }
    let (_, on_recorded) = counting();
    let (spool, task) = Spool::start(settings(dir.path()), "node-old", down, on_recorded).unwrap();
    for i in 0..30 {
        spool
            .append(&record(&format!("left-{i}"), "node-old/t1", 7))
            .await
            .unwrap();
    }
    assert!(spool.backlog() > 0);
    // The process dies: nothing more is drained.
    drop(spool);
    task.crash().await;

    let db = store(dir.path()).await;
    let (counted, on_recorded) = counting();
    let (spool, mut task) =
        Spool::start(settings(dir.path()), "node-new", db.clone(), on_recorded).unwrap();
    let recovered = task.recovered().unwrap().await.unwrap();
    assert_eq!(recovered.previous_node.as_deref(), Some("node-old"));
    assert_eq!(recovered.records, 30);
    assert_eq!(
        recovered.leases.into_iter().collect::<Vec<_>>(),
        [("t1".to_string(), "node-old/t1".to_string())]
    );
    let calls = calls_in_store(&db).await;
    assert_eq!(calls.len(), 30);
    assert!(calls.values().all(|n| *n == 1));
    assert_eq!(counted.lock().unwrap().len(), 30);
    drop(spool);
    assert!(task.drained(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_record_sent_twice_is_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path()).await;
    let batch = [record("twice", "n/t1", 5), record("once", "n/t1", 5)];
    write(&db, &batch[..1]).await.unwrap();
    write(&db, &batch).await.unwrap();
    let calls = calls_in_store(&db).await;
    assert_eq!(calls.get("twice"), Some(&1));
    assert_eq!(calls.get("once"), Some(&1));
}

#[tokio::test]
async fn a_torn_last_record_is_skipped_and_the_ones_before_it_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool").join("0");
    fs::create_dir_all(&spool_dir).unwrap();
    let mut text = Vec::new();
    for i in 0..3 {
        text.extend(serde_json::to_vec(&record(&format!("whole-{i}"), "old/t1", 1)).unwrap());
        text.push(b'\n');
    }
    text.extend_from_slice(br#"{"request_id":"torn","client_ip":nu"#);
    fs::write(segment_path(&spool_dir, 1), &text).unwrap();

    let db = store(dir.path()).await;
    let (_, on_recorded) = counting();
    let (spool, mut task) =
        Spool::start(settings(dir.path()), "n", db.clone(), on_recorded).unwrap();
    let recovered = task.recovered().unwrap().await.unwrap();
    assert_eq!(recovered.records, 3);
    let calls = calls_in_store(&db).await;
    assert_eq!(
        calls.keys().cloned().collect::<Vec<_>>(),
        ["whole-0", "whole-1", "whole-2"]
    );
    assert_eq!(spool.backlog(), 0);
    drop(spool);
    assert!(task.drained(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn past_its_bound_the_spool_says_it_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let down = store(dir.path()).await;
    if let Db::Sqlite(pool) = &down {
        pool.close().await;
    }
    let mut small = settings(dir.path());
    small.max_backlog = 2_000;
    let (_, on_recorded) = counting();
    let (spool, _task) = Spool::start(small, "n", down, on_recorded).unwrap();
    let mut appended = 0;
    while !spool.is_full() {
        spool
            .append(&record(&format!("r{appended}"), "n/t1", 1))
            .await
            .unwrap();
        appended += 1;
        assert!(appended < 100, "never full");
    }
    assert!(spool.backlog() > 2_000);
}

#[tokio::test]
async fn replicas_on_one_data_directory_write_slots_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path()).await;
    let (_, first) = counting();
    let (a, _a) = Spool::start(settings(dir.path()), "a", db.clone(), first).unwrap();
    let (_, second) = counting();
    let (b, _b) = Spool::start(settings(dir.path()), "b", db, second).unwrap();
    assert_ne!(a.shared.dir, b.shared.dir);
    assert_eq!(a.shared.dir, dir.path().join("spool").join("0"));
    assert_eq!(b.shared.dir, dir.path().join("spool").join("1"));
}

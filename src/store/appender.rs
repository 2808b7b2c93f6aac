//! The metering appender: InferenceCall events are handed over after the response is on its way
//! and written in batches — one multi-row INSERT per batch, every `flush_every` or `max_batch`
//! events, whichever comes first. Each InferenceCall is born complete (sequence 1 under a fresh
//! request id), so no optimistic lock is needed. A crash loses at most the unflushed window.

use std::time::Duration;

use cqrs_es::DomainEvent;
use modelrouter_domain::aggregate_types;
use modelrouter_domain::inference::{CallRecord, InferenceCallEvent};
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_projections::on_db;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Db;

/// One call to record.
#[derive(Debug)]
pub struct MeteringRecord {
    pub request_id: String,
    pub client_ip: Option<String>,
    pub record: CallRecord,
}

/// The sending side. Cloning is cheap; the writer drains everything sent before `close`.
#[derive(Clone)]
pub struct Appender {
    sender: mpsc::Sender<MeteringRecord>,
}

pub struct AppenderTask {
    handle: JoinHandle<()>,
}

impl AppenderTask {
    /// Waits until every record sent before all senders were dropped is written.
    pub async fn drained(self) {
        if let Err(error) = self.handle.await {
            tracing::error!(%error, "metering appender task failed");
        }
    }
}

impl Appender {
    pub fn start(db: Db, flush_every: Duration, max_batch: usize) -> (Appender, AppenderTask) {
        let (sender, receiver) = mpsc::channel(max_batch * 64);
        let handle = tokio::spawn(run(db, receiver, flush_every, max_batch));
        (Appender { sender }, AppenderTask { handle })
    }

    /// Hands a record over. Waits only if the writer is far behind (back-pressure, not loss).
    pub async fn send(&self, record: MeteringRecord) {
        if self.sender.send(record).await.is_err() {
            tracing::error!("metering appender is gone; a call was not recorded");
        }
    }
}

async fn run(
    db: Db,
    mut receiver: mpsc::Receiver<MeteringRecord>,
    flush_every: Duration,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + flush_every;
        while batch.len() < max_batch {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(record)) => batch.push(record),
                Ok(None) | Err(_) => break,
            }
        }
        write_with_retry(&db, &mut batch).await;
    }
}

async fn write_with_retry(db: &Db, batch: &mut Vec<MeteringRecord>) {
    for attempt in 0..5u32 {
        match write(db, batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, attempt, size = batch.len(), "metering batch write failed");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    tracing::error!(
        size = batch.len(),
        "metering batch dropped after retries; calls were served but not recorded"
    );
    batch.clear();
}

async fn write(db: &Db, batch: &[MeteringRecord]) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    // Placeholders only — never data — go into the SQL text.
    let mut sql = String::from(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ",
    );
    for i in 0..batch.len() {
        let b = i * 5;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "($1, ${}, 1, ${}, ${}, ${}, ${})",
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6
        ));
    }
    let rows: Vec<(String, String, String, serde_json::Value, serde_json::Value)> = batch
        .iter()
        .map(|item| {
            let event = InferenceCallEvent::Completed(Box::new(item.record.clone()));
            let mut metadata = Metadata::new(&Actor::System).request_id(&item.request_id);
            if let Some(ip) = &item.client_ip {
                metadata = metadata.client_ip(ip);
            }
            (
                item.request_id.clone(),
                event.event_type(),
                event.event_version(),
                serde_json::to_value(&event).unwrap_or_default(),
                serde_json::to_value(metadata.into_map()).unwrap_or_default(),
            )
        })
        .collect();
    let _writing = db.write_lock().await;
    on_db!(db, pool => {
        let mut query = sqlx::query(&sql).bind(aggregate_types::INFERENCE_CALL);
        for (id, event_type, version, payload, metadata) in &rows {
            query = query.bind(id).bind(event_type).bind(version).bind(payload).bind(metadata);
        }
        query.execute(pool).await.map(|_| ())
    })
}

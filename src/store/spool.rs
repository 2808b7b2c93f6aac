//! The metering spool: every call's record is made durable on the replica before the last byte
//! of its answer leaves, then drained into the event store in batches.
//!
//! - **Writing.** One writer thread appends records to a segment file in the data directory
//!   (`spool/NNNN.spool`, one JSON line per record), grouping whatever arrived while it wrote
//!   into one `write` (group commit). A call waits only for its group's `write`: from then on a
//!   crash of the process (kill -9) cannot lose it — the kernel has the bytes. The file is
//!   fsynced every `fsync_every` (or after every group when that is zero): that interval bounds
//!   what a power loss can lose.
//! - **Draining.** The appender task reads the records back in order and inserts them into the
//!   events table, one multi-row INSERT per batch, `ON CONFLICT DO NOTHING`: an InferenceCall is
//!   born complete (sequence 1, id = the request id), so a record sent twice — a retry after a
//!   lost answer, a replay after a crash — is the same event, never a second one. Then it moves
//!   its cursor (`spool/cursor`) and deletes segments it has finished. A batch the store refuses
//!   is tried again, forever, with backoff: nothing is ever dropped.
//! - **Bounding.** While the store is unreachable the spool grows; past `max_backlog` bytes the
//!   gateway refuses new calls ([`Spool::is_full`]) rather than serve calls it cannot record.
//! - **Recovering.** A replica that starts on a data directory with records left by its
//!   predecessor (a crash, a store outage at shutdown) drains them first and reports which
//!   leases they were charged to ([`SpoolTask::recovered`]), so their settlement can be
//!   completed. Replicas sharing a data directory each lock a slot of their own
//!   (`spool/0`, `spool/1`, …); a replica starting there takes the first free one.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use cqrs_es::DomainEvent;
use modelrouter_domain::aggregate_types;
use modelrouter_domain::inference::{CallRecord, InferenceCallEvent};
use modelrouter_domain::metadata::{Actor, Metadata};
use modelrouter_projections::on_db;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};

use super::Db;
#[cfg(test)]
use dir::segments;
use dir::{open_dir, replace_file, segment_path, sync_dir};

/// One call to record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeteringRecord {
    pub request_id: String,
    pub client_ip: Option<String>,
    pub record: CallRecord,
}

/// How the spool is run.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// The directory its slots are in (`<data dir>/spool`).
    pub dir: PathBuf,
    /// How often written records are fsynced; zero fsyncs every group before answering.
    pub fsync_every: Duration,
    /// Past this many bytes not yet in the store, new calls are refused.
    pub max_backlog: u64,
    /// The appender gathers records for this long before writing a batch…
    pub flush_every: Duration,
    /// …or until it has this many.
    pub max_batch: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the metering spool could not write: {0}")]
    Write(String),
    #[error("the metering spool is closed")]
    Closed,
    #[error("{0}")]
    Open(String),
}

/// A segment file is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 8 << 20;
/// One `write` takes at most this much of the waiting records.
const GROUP_BYTES: usize = 1 << 20;
const LONGEST_BACKOFF: Duration = Duration::from_secs(1);
/// Replicas that may share one data directory.
const MAX_SLOTS: u32 = 64;

/// A place in the spool: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    segment: u64,
    offset: u64,
}

struct Shared {
    dir: PathBuf,
    /// The spool's lock, held until the writer and the appender are both done.
    _lock: File,
    max_backlog: u64,
    /// Bytes written and not yet in the store.
    backlog: AtomicU64,
    /// How far whole records have been written (never inside a record).
    written: Mutex<Position>,
    /// The writer thread has ended: nothing more will be written.
    closed: AtomicBool,
    /// The newest write failed (a full or failing disk); cleared by the next one that works.
    failing: AtomicBool,
    wake_appender: Notify,
}

impl Shared {
    fn written(&self) -> Position {
        *self.written.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct WriteRequest {
    line: Vec<u8>,
    done: oneshot::Sender<Result<(), SpoolError>>,
}

/// The writing side. Cloning is cheap; when every clone is gone the writer thread ends.
#[derive(Clone)]
pub struct Spool {
    sender: mpsc::Sender<WriteRequest>,
    shared: Arc<Shared>,
}

/// What the caller learns once the records a predecessor left are in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The node that wrote the spool before this process, if another did.
    pub previous_node: Option<String>,
    /// How many records were left.
    pub records: u64,
    /// (tenant id, lease id) of every lease those records were charged to.
    pub leases: BTreeSet<(String, String)>,
}

/// The background side: the writer thread and the appender task.
pub struct SpoolTask {
    writer: std::thread::JoinHandle<()>,
    appender: tokio::task::JoinHandle<()>,
    recovered: Option<oneshot::Receiver<Recovered>>,
}

/// Called with each batch of calls once it is in the store: (tenant, lease, cost).
pub type OnRecorded = Box<dyn Fn(&[(String, String, i64)]) + Send + Sync>;

impl SpoolTask {
    /// Resolves once every record left by the predecessor is in the store (at once when there
    /// was none). Taken once.
    pub fn recovered(&mut self) -> Option<oneshot::Receiver<Recovered>> {
        self.recovered.take()
    }

    /// Waits until everything written is in the store, or `timeout` passes (the store is
    /// down: the records stay in the spool for the next start). Every [`Spool`] must be
    /// dropped first.
    pub async fn drained(self, timeout: Duration) -> bool {
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        match tokio::time::timeout(timeout, self.appender).await {
            Ok(result) => {
                if let Err(error) = result {
                    tracing::error!(%error, "metering appender task failed");
                }
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
impl SpoolTask {
    /// Stops like a killed process: the appender goes without draining.
    async fn crash(self) {
        self.appender.abort();
        let _ = self.appender.await;
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
}

impl Spool {
    /// Opens the spool in `settings.dir` for `node`, recovering what a predecessor left, and
    /// starts the writer thread and the appender.
    pub fn start(
        settings: SpoolSettings,
        node: &str,
        db: Db,
        on_recorded: OnRecorded,
    ) -> Result<(Spool, SpoolTask), SpoolError> {
        let (dir, opened) = open_dir(&settings.dir, node).map_err(|e| {
            SpoolError::Open(format!(
                "cannot open the metering spool in {}: {e}",
                settings.dir.display()
            ))
        })?;
        let shared = Arc::new(Shared {
            dir,
            _lock: opened.lock,
            max_backlog: settings.max_backlog,
            backlog: AtomicU64::new(opened.backlog),
            written: Mutex::new(Position {
                segment: opened.segment,
                offset: 0,
            }),
            closed: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            wake_appender: Notify::new(),
        });
        let (sender, receiver) = mpsc::channel();
        let writer = {
            let shared = shared.clone();
            let (file, segment, fsync_every) = (opened.file, opened.segment, settings.fsync_every);
            std::thread::Builder::new()
                .name("metering-spool".into())
                .spawn(move || write_loop(receiver, shared, file, segment, fsync_every))
                .map_err(|e| SpoolError::Open(e.to_string()))?
        };
        let (recovered_sender, recovered) = oneshot::channel();
        let appender = tokio::spawn(drain_loop(Drain {
            db,
            own_leases: format!("{node}/"),
            shared: shared.clone(),
            cursor: opened.cursor,
            recovery_end: opened.recovery_end,
            recovered: Some((
                recovered_sender,
                Recovered {
                    previous_node: opened.previous_node.filter(|n| n != node),
                    ..Recovered::default()
                },
            )),
            flush_every: settings.flush_every,
            max_batch: settings.max_batch.max(1),
            on_recorded,
        }));
        Ok((
            Spool { sender, shared },
            SpoolTask {
                writer,
                appender,
                recovered: Some(recovered),
            },
        ))
    }

    /// Makes `record` durable on this replica (see the module comment for what that means)
    /// and queues it for the store. Fails when the disk refused the write.
    pub async fn append(&self, record: &MeteringRecord) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(record).map_err(|e| SpoolError::Write(e.to_string()))?;
        line.push(b'\n');
        let (done, answer) = oneshot::channel();
        self.sender
            .send(WriteRequest { line, done })
            .map_err(|_| SpoolError::Closed)?;
        answer.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// Whether new calls must be refused: the records not yet in the store passed the bound,
    /// or the disk refused the last write.
    pub fn is_full(&self) -> bool {
        self.shared.backlog.load(Ordering::Relaxed) > self.shared.max_backlog
            || self.shared.failing.load(Ordering::Relaxed)
    }

    /// Bytes of records not yet in the store.
    pub fn backlog(&self) -> u64 {
        self.shared.backlog.load(Ordering::Relaxed)
    }
}

fn write_loop(
    receiver: mpsc::Receiver<WriteRequest>,
    shared: Arc<Shared>,
    mut file: File,
    mut segment: u64,
    fsync_every: Duration,
) {
    let mut size = 0u64;
    let mut unsynced = false;
    let mut synced_at = Instant::now();
    loop {
        let first = if unsynced {
            let wait = fsync_every.saturating_sub(synced_at.elapsed());
            match receiver.recv_timeout(wait) {
                Ok(request) => Some(request),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match receiver.recv() {
                Ok(request) => Some(request),
                Err(_) => break,
            }
        };
        if let Some(first) = first {
            let mut group = vec![first];
            let mut bytes = group[0].line.len();
            while bytes < GROUP_BYTES {
                match receiver.try_recv() {
                    Ok(request) => {
                        bytes += request.line.len();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            let mut buffer = Vec::with_capacity(bytes);
            for request in &group {
                buffer.extend_from_slice(&request.line);
            }
            let mut result = file.write_all(&buffer);
            if result.is_ok() && fsync_every.is_zero() {
                result = file.sync_data();
            }
            match result {
                Ok(()) => {
                    size += buffer.len() as u64;
                    unsynced = !fsync_every.is_zero();
                    shared.failing.store(false, Ordering::Relaxed);
                    shared
                        .backlog
                        .fetch_add(buffer.len() as u64, Ordering::Relaxed);
                    *shared.written.lock().unwrap_or_else(|e| e.into_inner()) = Position {
                        segment,
                        offset: size,
                    };
                    for request in group {
                        let _ = request.done.send(Ok(()));
                    }
                    shared.wake_appender.notify_one();
                }
                Err(error) => {
                    tracing::error!(%error, "the metering spool cannot write; refusing calls until it can");
                    shared.failing.store(true, Ordering::Relaxed);
                    // Cut off whatever part of the group reached the file: only whole,
                    // acknowledged records may follow.
                    let _ = file.set_len(size);
                    let _ = file.seek(SeekFrom::End(0));
                    for request in group {
                        let _ = request.done.send(Err(SpoolError::Write(error.to_string())));
                    }
                }
            }
        }
        if unsynced && synced_at.elapsed() >= fsync_every {
            if let Err(error) = file.sync_data() {
                tracing::error!(%error, "the metering spool cannot fsync");
            }
            unsynced = false;
            synced_at = Instant::now();
        }
        if size >= SEGMENT_BYTES {
            let next = segment + 1;
            match OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(segment_path(&shared.dir, next))
            {
                Ok(new_file) => {
                    let _ = file.sync_data();
                    sync_dir(&shared.dir);
                    file = new_file;
                    segment = next;
                    size = 0;
                    unsynced = false;
                    *shared.written.lock().unwrap_or_else(|e| e.into_inner()) =
                        Position { segment, offset: 0 };
                }
                Err(error) => {
                    tracing::error!(%error, "no new spool segment; the current one grows")
                }
            }
        }
    }
    let _ = file.sync_data();
    shared.closed.store(true, Ordering::Release);
    shared.wake_appender.notify_one();
}

struct Drain {
    db: Db,
    /// The prefix of this process's own lease ids (`node/`): never "recovered".
    own_leases: String,
    shared: Arc<Shared>,
    cursor: Position,
    recovery_end: Position,
    recovered: Option<(oneshot::Sender<Recovered>, Recovered)>,
    flush_every: Duration,
    max_batch: usize,
    on_recorded: OnRecorded,
}

/// Records read from the spool, and where reading stopped.
struct Batch {
    records: Vec<MeteringRecord>,
    bytes: u64,
    next: Position,
}

async fn drain_loop(mut drain: Drain) {
    loop {
        let closed = drain.shared.closed.load(Ordering::Acquire);
        let written = drain.shared.written();
        if drain.cursor >= written {
            drain.note_recovery_done();
            if closed {
                // A clean stop leaves nothing behind: every segment is in the store.
                drain.advance(Position {
                    segment: written.segment + 1,
                    offset: 0,
                });
                return;
            }
            drain.shared.wake_appender.notified().await;
            continue;
        }
        // Let a batch gather, unless a backlog is waiting already.
        if !closed && drain.shared.backlog.load(Ordering::Relaxed) < 64 * 1024 {
            tokio::time::sleep(drain.flush_every).await;
        }
        let (dir, cursor, written, max) = (
            drain.shared.dir.clone(),
            drain.cursor,
            drain.shared.written(),
            drain.max_batch,
        );
        let batch =
            match tokio::task::spawn_blocking(move || read_batch(&dir, cursor, written, max)).await
            {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    tracing::error!(%error, "the metering spool cannot be read; retrying");
                    tokio::time::sleep(LONGEST_BACKOFF).await;
                    continue;
                }
                Err(error) => {
                    tracing::error!(%error, "reading the metering spool failed");
                    return;
                }
            };
        drain.store(&batch.records).await;
        if drain.cursor < drain.recovery_end {
            if let Some((_, recovered)) = drain.recovered.as_mut() {
                let before_end = batch.records.len();
                recovered.records += before_end as u64;
                for item in &batch.records {
                    let ours = |lease: &&String| lease.starts_with(&drain.own_leases);
                    if let Some(lease) = item.record.lease_id.as_ref().filter(|l| !ours(l)) {
                        recovered
                            .leases
                            .insert((item.record.tenant_id.clone(), lease.clone()));
                    }
                }
            }
        }
        let summary: Vec<(String, String, i64)> = batch
            .records
            .iter()
            .filter_map(|item| {
                let lease = item.record.lease_id.clone()?;
                Some((
                    item.record.tenant_id.clone(),
                    lease,
                    item.record.cost.micros(),
                ))
            })
            .collect();
        (drain.on_recorded)(&summary);
        let _ = drain
            .shared
            .backlog
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(batch.bytes))
            });
        drain.advance(batch.next);
    }
}

impl Drain {
    /// Writes the records into the store, trying until it works.
    async fn store(&self, records: &[MeteringRecord]) {
        let mut pause = Duration::from_millis(50);
        let mut attempt = 0u32;
        loop {
            match write(&self.db, records).await {
                Ok(()) => return,
                Err(error) => {
                    attempt += 1;
                    tracing::warn!(
                        %error,
                        attempt,
                        size = records.len(),
                        backlog = self.shared.backlog.load(Ordering::Relaxed),
                        "metering batch not written yet; kept in the spool and tried again"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_BACKOFF);
                }
            }
        }
    }

    /// Moves the cursor on, saves it, and deletes the segments before it.
    fn advance(&mut self, next: Position) {
        let previous = self.cursor;
        self.cursor = next;
        if let Err(error) = replace_file(
            &self.shared.dir.join("cursor"),
            &format!("{} {}", next.segment, next.offset),
        ) {
            tracing::warn!(%error, "spool cursor not saved; a restart re-sends some records (harmless)");
        }
        for segment in previous.segment..next.segment {
            let path = segment_path(&self.shared.dir, segment);
            if path.exists() {
                if let Err(error) = fs::remove_file(&path) {
                    tracing::warn!(%error, "drained spool segment not removed");
                }
            }
        }
        if self.cursor >= self.recovery_end {
            self.note_recovery_done();
        }
    }

    fn note_recovery_done(&mut self) {
        if let Some((sender, recovered)) = self.recovered.take() {
            if recovered.records > 0 {
                tracing::info!(
                    records = recovered.records,
                    leases = recovered.leases.len(),
                    "metering records left by the previous run are in the store"
                );
            }
            let _ = sender.send(recovered);
        }
    }
}

/// Reads up to `max` whole records from `cursor`, not past `written`. A segment before the
/// one being written is read to its end; a torn last record there (a crash mid-write) is
/// skipped.
fn read_batch(
    dir: &Path,
    mut cursor: Position,
    written: Position,
    max: usize,
) -> std::io::Result<Batch> {
    let mut records = Vec::new();
    let mut bytes = 0u64;
    while records.len() < max && cursor < written {
        let path = segment_path(dir, cursor.segment);
        let end = if cursor.segment == written.segment {
            written.offset
        } else {
            match fs::metadata(&path) {
                Ok(meta) => meta.len(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => cursor.offset,
                Err(error) => return Err(error),
            }
        };
        if cursor.offset >= end {
            if cursor.segment < written.segment {
                cursor = Position {
                    segment: cursor.segment + 1,
                    offset: 0,
                };
                continue;
            }
            break;
        }
        let mut file = File::open(&path)?;
        file.seek(SeekFrom::Start(cursor.offset))?;
        let want = (end - cursor.offset).min(4 << 20);
        let mut buffer = Vec::with_capacity(want as usize);
        file.take(want).read_to_end(&mut buffer)?;
        let mut used = 0usize;
        for line in buffer.split_inclusive(|b| *b == b'\n') {
            if records.len() >= max || !line.ends_with(b"\n") {
                break;
            }
            used += line.len();
            match serde_json::from_slice::<MeteringRecord>(&line[..line.len() - 1]) {
                Ok(record) => records.push(record),
                Err(error) => tracing::error!(
                    %error,
                    segment = cursor.segment,
                    "a metering record in the spool does not decode; skipped"
                ),
            }
        }
        let reached_end = cursor.offset + used as u64 >= end;
        if used == 0 && !reached_end {
            // A torn record at the end of a finished segment (the process died mid-write).
            if cursor.segment < written.segment && want == end - cursor.offset {
                tracing::warn!(
                    segment = cursor.segment,
                    bytes = end - cursor.offset,
                    "a torn metering record at the end of a spool segment; skipped"
                );
                bytes += end - cursor.offset;
                cursor.offset = end;
                continue;
            }
            break;
        }
        bytes += used as u64;
        cursor.offset += used as u64;
    }
    Ok(Batch {
        records,
        bytes,
        next: cursor,
    })
}

/// Inserts the records as InferenceCall events in one statement; one already there is left
/// as it is. (What the appender does with each batch; tests seed calls with it.)
pub async fn write(db: &Db, batch: &[MeteringRecord]) -> Result<(), sqlx::Error> {
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
    sql.push_str(" ON CONFLICT (aggregate_type, aggregate_id, sequence) DO NOTHING");
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

#[path = "spool_dir.rs"]
mod dir;
#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;

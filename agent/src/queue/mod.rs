//! The durable queue between the pipeline and the exporter.
//!
//! A sled database in `<data-dir>/queue` holds one entry per batch, keyed by a sequence
//! number (big-endian, so keys sort in append order) that is persisted and never reused:
//! the batch id `<instance-id>:<queue-id>:<sequence>` is fixed when the batch is
//! appended, so a batch re-sent after a restart carries the id the collector already
//! knows. The queue id is random, created with the database.
//!
//! - [`Queue::append`] writes a group of batches and flushes before returning: only then
//!   does the pipeline acknowledge the sources.
//! - The exporter reads entries in order ([`Queue::next_after`], [`Queue::read`]) and
//!   removes each once the collector accepted or definitively refused it.
//! - [`Queue::admit`] is the byte bound: sources reserve room before handing data over,
//!   and wait (bounded or not) while the queue is full.
//! - [`open`](Queue::open) survives damage ([`recover`]): a database sled cannot open is
//!   moved aside, entries failing their checksum are deleted, both counted. Sequence
//!   numbers are also reserved in `<data-dir>/queue.seq` ([`seq_file`]), so they are
//!   never reused even when the storage engine silently loses the end of its log (which
//!   is then detected and counted too).
//!
//! [`codec`] is the on-disk form of an entry.

pub mod codec;
mod recover;
mod seq_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tracing::{error, warn};

use crate::export::Compression;
use crate::pipeline::{Batch, EncodedBatch, Payload};
use crate::stats::Stats;
use seq_file::{SeqFile, RESERVE_BLOCK};

/// Name of the queue's database directory inside the data directory.
pub const DIR_NAME: &str = "queue";
/// Default bound of the queue, in encoded bytes.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default size of the storage engine's page cache.
pub const DEFAULT_CACHE_BYTES: u64 = 8 * 1024 * 1024;

const META_NEXT_SEQ: &[u8] = b"next_seq";
const META_QUEUE_ID: &[u8] = b"queue_id";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue storage in {}: {source}", path.display())]
    Open { path: PathBuf, source: sled::Error },
    #[error("cannot move damaged queue {} aside: {source}", path.display())]
    MoveAside {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("queue storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("queue sequence file {}: {source}", path.display())]
    SeqFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Settings of [`Queue::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Bound of the queue, in stored (compressed) bytes.
    pub max_bytes: u64,
    /// Size of the storage engine's page cache.
    pub cache_bytes: u64,
    /// How new batches are stored, and so sent.
    pub compression: Compression,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            compression: Compression::Gzip,
        }
    }
}

/// A batch read back from the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub seq: u64,
    pub batch: Batch,
}

/// What a reader found at a sequence number.
#[derive(Debug)]
pub enum Read<T = Queued> {
    Batch(T),
    /// The entry failed its checksum or did not decode; it has been deleted and counted.
    Corrupt,
    /// Already removed.
    Gone,
}

/// Where [`Queue::open`] found the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    pub batches: u64,
    pub records: u64,
    pub corrupt_entries: u64,
    /// Whether the whole database had to be moved aside.
    pub reset: bool,
    /// Whether the database had lost batches it had flushed (the end of its log).
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    bytes: u64,
    records: u64,
    enqueued_unix_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    index: BTreeMap<u64, Meta>,
    next_seq: u64,
    bytes: u64,
    records: u64,
    /// Bytes admitted by sources but not appended yet.
    reserved: u64,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    batches: sled::Tree,
    meta: sled::Tree,
    id_prefix: String,
    max_bytes: u64,
    /// How new batches are stored (and then sent).
    compression: Compression,
    state: Mutex<State>,
    /// Bumped on every append and when input closes.
    appended: watch::Sender<u64>,
    /// Bumped whenever room is freed.
    freed: watch::Sender<u64>,
    closed: AtomicBool,
    stats: Arc<Stats>,
    seq_file: Mutex<SeqFile>,
}

/// Handle to the queue; clones share it.
#[derive(Debug, Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

/// Room reserved in the queue for data on its way to being appended; released on drop.
#[derive(Debug)]
pub struct Admission {
    queue: Queue,
    bytes: u64,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.reserved = state.reserved.saturating_sub(self.bytes);
        drop(state);
        self.queue.inner.freed.send_modify(|n| *n += 1);
    }
}

impl Queue {
    /// Opens (or creates) the queue in `data_dir`, recovering from damage. `instance_id`
    /// starts every batch id. New batches are stored gzip-compressed.
    pub fn open(
        data_dir: &Path,
        instance_id: &str,
        max_bytes: u64,
        stats: Arc<Stats>,
    ) -> Result<(Self, Recovered), QueueError> {
        let options = Options {
            max_bytes,
            ..Options::default()
        };
        Self::open_with(data_dir, instance_id, options, stats)
    }

    /// [`open`](Self::open), with every setting given.
    pub fn open_with(
        data_dir: &Path,
        instance_id: &str,
        options: Options,
        stats: Arc<Stats>,
    ) -> Result<(Self, Recovered), QueueError> {
        let Options {
            max_bytes,
            cache_bytes,
            compression,
        } = options;
        let opened = recover::open(&data_dir.join(DIR_NAME), data_dir, cache_bytes)?;
        let stored_id = opened
            .meta
            .get(META_QUEUE_ID)?
            .map(|id| String::from_utf8_lossy(&id).into_owned());
        let stored_next = match opened.meta.get(META_NEXT_SEQ)? {
            Some(v) if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v);
                u64::from_be_bytes(b)
            }
            _ => 0,
        };
        let db_next = stored_next.max(opened.last_seq.map_or(0, |s| s + 1));
        let seq_path = SeqFile::path(data_dir);
        let side = SeqFile::load(&seq_path)
            .filter(|side| stored_id.as_ref().is_none_or(|id| *id == side.queue_id));
        let (queue_id, next_seq, truncated) = match (stored_id, side) {
            (_, Some(side)) => {
                let truncated = side.appended > db_next;
                (side.queue_id, db_next.max(side.reserved), truncated)
            }
            (Some(id), None) => (id, db_next, false),
            (None, None) => (crate::identity::random_hex_id(), db_next, false),
        };
        if truncated {
            error!(
                path = %data_dir.join(DIR_NAME).display(),
                "queue storage lost batches it had written (damaged log): continuing with what is left"
            );
        }
        opened.meta.insert(META_QUEUE_ID, queue_id.as_bytes())?;
        opened.db.flush()?;
        let seq_file = SeqFile::new(
            &seq_path,
            queue_id.clone(),
            next_seq + RESERVE_BLOCK,
            db_next,
        );
        seq_file.store(true).map_err(|source| QueueError::SeqFile {
            path: seq_path.clone(),
            source,
        })?;
        let mut state = State {
            next_seq,
            ..State::default()
        };
        for (seq, meta) in opened.index {
            state.bytes += meta.bytes;
            state.records += meta.records;
            state.index.insert(seq, meta);
        }
        let recovered = Recovered {
            batches: state.index.len() as u64,
            records: state.records,
            corrupt_entries: opened.corrupt_entries,
            reset: opened.reset,
            truncated: truncated && !opened.reset,
        };
        stats
            .queue_corrupt_entries
            .fetch_add(opened.corrupt_entries, Ordering::Relaxed);
        if recovered.reset || recovered.truncated {
            Stats::incr(&stats.queue_corrupt_resets);
        }
        let queue = Self {
            inner: Arc::new(Inner {
                db: opened.db,
                batches: opened.batches,
                meta: opened.meta,
                id_prefix: format!("{}:{}:", sanitize(instance_id, 200), queue_id),
                max_bytes: max_bytes.max(1),
                compression,
                state: Mutex::new(state),
                appended: watch::Sender::new(0),
                freed: watch::Sender::new(0),
                closed: AtomicBool::new(false),
                stats,
                seq_file: Mutex::new(seq_file),
            }),
        };
        queue.publish(&queue.lock());
        Ok((queue, recovered))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The id the batch at `seq` carries.
    pub fn batch_id(&self, seq: u64) -> String {
        format!("{}{seq}", self.inner.id_prefix)
    }

    /// Waits until `bytes` more fit (or the queue holds nothing at all, so one oversized
    /// item cannot wait forever), then reserves them.
    pub async fn admit(&self, bytes: u64) -> Admission {
        let mut freed = self.inner.freed.subscribe();
        loop {
            freed.borrow_and_update();
            {
                let mut state = self.lock();
                let used = state.bytes + state.reserved;
                if used == 0 || used + bytes <= self.inner.max_bytes {
                    state.reserved += bytes;
                    return Admission {
                        queue: self.clone(),
                        bytes,
                    };
                }
            }
            if freed.changed().await.is_err() {
                // Unreachable while `self` holds the sender; wait forever rather than spin.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Durably appends batches, in order: returns once they are flushed to disk.
    /// Blocking: call from a blocking-capable thread.
    pub fn append(&self, batches: &[(Payload, usize)]) -> Result<Vec<u64>, QueueError> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let first = {
            let mut state = self.lock();
            let first = state.next_seq;
            state.next_seq += batches.len() as u64;
            first
        };
        let now = now_unix_ms();
        let mut writes = sled::Batch::default();
        let mut metas = Vec::with_capacity(batches.len());
        for (i, (payload, records)) in batches.iter().enumerate() {
            let seq = first + i as u64;
            let records = u32::try_from(*records).unwrap_or(u32::MAX);
            let value = codec::encode(
                &self.batch_id(seq),
                records,
                now,
                payload,
                self.inner.compression,
            );
            metas.push((
                seq,
                Meta {
                    bytes: value.len() as u64,
                    records: u64::from(records),
                    enqueued_unix_ms: now,
                },
            ));
            writes.insert(&seq.to_be_bytes(), value);
        }
        let next = first + batches.len() as u64;
        let mut seq_file = self
            .inner
            .seq_file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if next > seq_file.reserved {
            seq_file.reserved = next + RESERVE_BLOCK;
            seq_file.store(true).map_err(|source| QueueError::SeqFile {
                path: seq_file.file().to_owned(),
                source,
            })?;
        }
        self.inner.batches.apply_batch(writes)?;
        self.inner.meta.insert(META_NEXT_SEQ, &next.to_be_bytes())?;
        self.inner.db.flush()?;
        seq_file.appended = next;
        // Not synced: the note may lag behind the database, never run ahead of it.
        if let Err(e) = seq_file.store(false) {
            warn!(error = %e, "cannot note the queue sequence");
        }
        drop(seq_file);
        let mut state = self.lock();
        for (seq, meta) in &metas {
            state.bytes += meta.bytes;
            state.records += meta.records;
            state.index.insert(*seq, *meta);
        }
        self.publish(&state);
        drop(state);
        self.inner.appended.send_modify(|n| *n += 1);
        Ok(metas.into_iter().map(|(seq, _)| seq).collect())
    }

    /// The first queued sequence number after `cursor` (from the start when `None`).
    pub fn next_after(&self, cursor: Option<u64>) -> Option<u64> {
        let state = self.lock();
        let mut range = match cursor {
            Some(c) => state.index.range(c.saturating_add(1)..),
            None => state.index.range(..),
        };
        range.next().map(|(seq, _)| *seq)
    }

    /// Reads the batch at `seq`; a damaged entry is deleted and counted.
    pub fn read(&self, seq: u64) -> Result<Read, QueueError> {
        self.read_with(seq, |value| {
            codec::decode(value).map(|(_, batch)| Queued { seq, batch })
        })
    }

    /// Reads the batch at `seq` in its wire form, without decoding the payload; a
    /// damaged entry is deleted and counted.
    pub fn read_encoded(&self, seq: u64) -> Result<Read<EncodedBatch>, QueueError> {
        self.read_with(seq, |value| codec::decode_encoded(value).map(|(_, b)| b))
    }

    fn read_with<T>(
        &self,
        seq: u64,
        decode: impl FnOnce(&[u8]) -> Result<T, codec::DecodeError>,
    ) -> Result<Read<T>, QueueError> {
        let Some(value) = self.inner.batches.get(seq.to_be_bytes())? else {
            self.forget(seq);
            return Ok(Read::Gone);
        };
        match decode(&value) {
            Ok(batch) => Ok(Read::Batch(batch)),
            Err(error) => {
                warn!(seq, error = %error, "queued batch is damaged, deleting it");
                let stats = &self.inner.stats;
                Stats::incr(&stats.queue_corrupt_entries);
                let records = self.lock().index.get(&seq).map_or(0, |m| m.records);
                stats.dropped(crate::stats::DropReason::Corrupt, records);
                self.remove(seq)?;
                Ok(Read::Corrupt)
            }
        }
    }

    /// Deletes the batch at `seq` (delivered or dropped). Not flushed by itself: a crash
    /// right after may bring it back, and the collector ignores the re-sent batch id.
    pub fn remove(&self, seq: u64) -> Result<(), QueueError> {
        self.inner.batches.remove(seq.to_be_bytes())?;
        self.forget(seq);
        Ok(())
    }

    fn forget(&self, seq: u64) {
        let mut state = self.lock();
        if let Some(meta) = state.index.remove(&seq) {
            state.bytes -= meta.bytes;
            state.records -= meta.records;
        }
        self.publish(&state);
        drop(state);
        self.inner.freed.send_modify(|n| *n += 1);
    }

    /// Flushes removals to disk. Blocking.
    pub fn flush(&self) -> Result<(), QueueError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// Marks the end of appends: readers waiting in [`wait_for_more`](Self::wait_for_more)
    /// learn there is nothing more to come.
    pub fn close_input(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.appended.send_modify(|n| *n += 1);
    }

    /// Waits until something after `cursor` is queued (`true`) or input is closed with
    /// nothing left after it (`false`).
    pub async fn wait_for_more(&self, cursor: Option<u64>) -> bool {
        let mut appended = self.inner.appended.subscribe();
        loop {
            appended.borrow_and_update();
            if self.next_after(cursor).is_some() {
                return true;
            }
            if self.inner.closed.load(Ordering::SeqCst) {
                return false;
            }
            if appended.changed().await.is_err() {
                return false;
            }
        }
    }

    /// (batches, records, bytes) queued now.
    pub fn len(&self) -> (u64, u64, u64) {
        let state = self.lock();
        (state.index.len() as u64, state.records, state.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.lock().index.is_empty()
    }

    fn publish(&self, state: &State) {
        let stats = &self.inner.stats;
        stats
            .queue_batches
            .store(state.index.len() as u64, Ordering::Relaxed);
        stats.queue_records.store(state.records, Ordering::Relaxed);
        stats.queue_bytes.store(state.bytes, Ordering::Relaxed);
        let oldest = state
            .index
            .values()
            .next()
            .map_or(0, |m| m.enqueued_unix_ms.max(1));
        stats.queue_oldest_unix_ms.store(oldest, Ordering::Relaxed);
    }
}

/// Batch ids travel as gRPC metadata, which must be visible ASCII.
fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Parses a byte size: `65536`, `64KiB`, `256MiB`, `1GiB` (also `K`, `M`, `G`, `KB`, `MB`,
/// `GB`, all binary multiples).
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("expected a size like 65536, 64KiB or 256MiB, got {text:?}"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    match value.checked_mul(multiplier) {
        Some(0) | None => Err(format!("size must be between 1 byte and 16 EiB: {text:?}")),
        Some(bytes) => Ok(bytes),
    }
}

#[cfg(test)]
mod tests;

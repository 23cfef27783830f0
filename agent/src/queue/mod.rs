//! The durable queue between the pipeline and the exporter.
//!
//! Batches are stored in append-only segment files in `<data-dir>/queue-segments`
//! ([`segments`]), each under a sequence number that is persisted and never reused: the
//! batch id `<instance-id>:<queue-id>:<sequence>` is fixed when the batch is appended,
//! so a batch re-sent after a restart carries the id the collector already knows. A sled
//! database in `<data-dir>/queue` keeps the rest: the queue id (random, created with the
//! database), the next sequence number, and which batches were delivered.
//!
//! - [`Queue::append`] writes a group of batches and syncs them to disk before returning:
//!   only then does the pipeline acknowledge the sources.
//! - The exporter reads entries in order ([`Queue::next_after`], [`Queue::read`]) and
//!   removes each once the collector accepted or definitively refused it. A removal is
//!   noted in the database (made durable by the next append or [`Queue::flush`]); a
//!   segment whose batches are all removed is deleted.
//! - [`Queue::admit`] is the byte bound: sources reserve room before handing data over,
//!   and wait (bounded or not) while the queue is full.
//! - [`open`](Queue::open) survives damage: damaged batches in the segments are skipped
//!   and counted; a database sled cannot open is moved aside ([`recover`]), and then every
//!   stored batch is sent again. Sequence numbers are also reserved in
//!   `<data-dir>/queue.seq` ([`seq_file`]), so they are never reused even when stored
//!   data is lost (which is then detected and counted too).
//!
//! [`codec`] is the form of one entry. The handle's methods are grouped by what they do:
//! `open.rs` rebuilds the state at start-up, `write.rs` appends and removes, `read.rs`
//! reads back in order; this file holds the state they share and the byte bound.

pub mod codec;
pub mod disk;
mod open;
mod read;
mod recover;
mod segments;
mod seq_file;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::batch::{Batch, Compression};
use crate::stats::Stats;
use seq_file::SeqFile;

/// Name of the queue's database directory inside the data directory.
pub const DIR_NAME: &str = "queue";
/// Name of the directory of segment files inside the data directory.
pub const SEGMENTS_DIR_NAME: &str = "queue-segments";
/// Size at which a new segment file is started.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
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
    #[error("queue segments in {}: {source}", path.display())]
    Segments {
        path: PathBuf,
        source: std::io::Error,
    },
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
    /// Size at which a new segment file is started.
    pub segment_bytes: u64,
    /// Space kept free on the data directory's file system; 0 turns the check off.
    pub disk_reserve: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            compression: Compression::Gzip,
            segment_bytes: SEGMENT_BYTES,
            disk_reserve: disk::DEFAULT_RESERVE_BYTES,
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
    loc: segments::Loc,
}

#[derive(Debug, Default)]
struct State {
    index: BTreeMap<u64, Meta>,
    next_seq: u64,
    bytes: u64,
    records: u64,
    /// Bytes admitted by sources but not appended yet.
    reserved: u64,
    /// Segments whose batches were all delivered, taken off the database's list: their
    /// files are deleted once that is durable (the next append or flush).
    unlisted: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    meta: sled::Tree,
    /// Delivered sequence numbers whose segment file still exists.
    acked: sled::Tree,
    /// The segment files that should exist (keys: first sequence number).
    segment_list: sled::Tree,
    segments: Mutex<segments::Segments>,
    segments_dir: PathBuf,
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
    disk: disk::DiskGuard,
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
    /// item cannot wait forever) and the data directory's disk has its reserve free, then
    /// reserves them.
    pub async fn admit(&self, bytes: u64) -> Admission {
        let mut freed = self.inner.freed.subscribe();
        loop {
            freed.borrow_and_update();
            let disk_room = self.inner.disk.has_room();
            if disk_room {
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
            if disk_room {
                if freed.changed().await.is_err() {
                    // Unreachable while `self` holds the sender; wait forever rather than spin.
                    std::future::pending::<()>().await;
                }
            } else {
                // Space also comes back from outside the agent: look again now and then.
                let _ = tokio::time::timeout(disk::POLL, freed.changed()).await;
            }
        }
    }

    /// Whether admission is held back by a full disk (rather than by the queue's bound).
    pub fn disk_full(&self) -> bool {
        self.inner.disk.is_full()
    }

    /// The counters the queue keeps current.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    fn segments(&self) -> MutexGuard<'_, segments::Segments> {
        self.inner
            .segments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

fn segments_error(dir: &Path, source: std::io::Error) -> QueueError {
    QueueError::Segments {
        path: dir.to_owned(),
        source,
    }
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

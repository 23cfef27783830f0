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
//! [`codec`] is the form of one entry.

pub mod codec;
mod recover;
mod segments;
mod seq_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tracing::{error, warn};

use crate::batch::{Batch, Compression, EncodedBatch, Payload};
use crate::stats::{now_unix_ms, Stats};
use seq_file::{SeqFile, RESERVE_BLOCK};

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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            compression: Compression::Gzip,
            segment_bytes: SEGMENT_BYTES,
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
            segment_bytes,
        } = options;
        let mut opened = recover::open(&data_dir.join(DIR_NAME), data_dir, cache_bytes)?;
        let segments_dir = data_dir.join(SEGMENTS_DIR_NAME);
        let segments_error = |source| segments_error(&segments_dir, source);
        let (mut segments, mut scan) =
            segments::Segments::open(&segments_dir, segment_bytes).map_err(segments_error)?;
        if !opened.legacy.is_empty() {
            // Batches stored by an earlier version: move them into a segment.
            let legacy = std::mem::take(&mut opened.legacy);
            let locs = segments.append(&legacy).map_err(segments_error)?;
            for ((seq, entry), loc) in legacy.iter().zip(locs) {
                if let Ok(header) = codec::header(entry) {
                    scan.entries.push(segments::Found {
                        seq: *seq,
                        loc,
                        header,
                    });
                }
            }
            scan.entries.sort_by_key(|f| f.seq);
            opened.legacy_tree.clear()?;
        }
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
        let last_seq = scan.entries.last().map(|f| f.seq);
        let db_next = stored_next.max(last_seq.map_or(0, |s| s + 1));
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
        // A segment the database lists but the disk lacks was lost whole.
        let on_disk: std::collections::BTreeSet<u64> = segments.firsts().collect();
        let mut lost_segments = 0u64;
        for item in opened.segments.iter() {
            let (key, _) = item?;
            let first = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes);
            if !first.is_ok_and(|first| on_disk.contains(&first)) {
                lost_segments += 1;
                opened.segments.remove(key)?;
            }
        }
        for first in &on_disk {
            opened.segments.insert(first.to_be_bytes(), &[])?;
        }
        let truncated = truncated || lost_segments > 0;
        if truncated {
            error!(
                path = %segments_dir.display(),
                lost_segments,
                "queue storage lost batches it had written: continuing with what is left"
            );
        }
        opened.meta.insert(META_QUEUE_ID, queue_id.as_bytes())?;
        opened.meta.insert(META_NEXT_SEQ, &db_next.to_be_bytes())?;
        // Deliveries noted for batches that are gone with their segment are forgotten.
        let mut acked = std::collections::BTreeSet::new();
        for item in opened.acked.iter() {
            let (key, _) = item?;
            match <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes) {
                Ok(seq) if segments.holds(seq) => {
                    acked.insert(seq);
                }
                _ => {
                    opened.acked.remove(key)?;
                }
            }
        }
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
        for found in scan.entries {
            if acked.contains(&found.seq) {
                // Delivered: only its segment's count of live batches goes down.
                if let Some(range) = segments.release(found.loc.segment) {
                    opened.segments.remove(range.0.to_be_bytes())?;
                    state.unlisted.push(range);
                }
                continue;
            }
            let meta = Meta {
                bytes: u64::from(found.loc.len),
                records: u64::from(found.header.records),
                enqueued_unix_ms: found.header.enqueued_unix_ms,
                loc: found.loc,
            };
            state.bytes += meta.bytes;
            state.records += meta.records;
            state.index.insert(found.seq, meta);
        }
        opened.db.flush()?;
        let corrupt_entries = opened.corrupt_entries + scan.damaged;
        let recovered = Recovered {
            batches: state.index.len() as u64,
            records: state.records,
            corrupt_entries,
            reset: opened.reset,
            truncated: truncated && !opened.reset,
        };
        stats
            .queue_corrupt_entries
            .fetch_add(corrupt_entries, Ordering::Relaxed);
        if recovered.reset || recovered.truncated {
            Stats::incr(&stats.queue_corrupt_resets);
        }
        let unlisted = std::mem::take(&mut state.unlisted);
        delete_segments(&segments_dir, &mut segments, &opened.acked, unlisted)?;
        let queue = Self {
            inner: Arc::new(Inner {
                db: opened.db,
                meta: opened.meta,
                acked: opened.acked,
                segment_list: opened.segments,
                segments: Mutex::new(segments),
                segments_dir,
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

    /// Durably appends batches, in order: returns once they are synced to disk.
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
        let mut entries = Vec::with_capacity(batches.len());
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
            metas.push((seq, u64::from(records), value.len() as u64));
            entries.push((seq, value));
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
        let (locs, retired) = {
            let mut segments = self.segments();
            let locs = segments
                .append(&entries)
                .map_err(|source| segments_error(&self.inner.segments_dir, source))?;
            (locs, segments.take_retired())
        };
        if let Some(loc) = locs.first() {
            self.inner
                .segment_list
                .insert(loc.segment.to_be_bytes(), &[])?;
        }
        if let Some(range) = retired {
            self.unlist(range)?;
        }
        // Also makes the deliveries noted since the last append durable.
        self.inner.meta.insert(META_NEXT_SEQ, &next.to_be_bytes())?;
        self.flush()?;
        seq_file.appended = next;
        // Not synced: the note may lag behind the segments, never run ahead of them.
        if let Err(e) = seq_file.store(false) {
            warn!(error = %e, "cannot note the queue sequence");
        }
        drop(seq_file);
        let mut state = self.lock();
        for ((seq, records, bytes), loc) in metas.iter().zip(locs) {
            state.bytes += bytes;
            state.records += records;
            state.index.insert(
                *seq,
                Meta {
                    bytes: *bytes,
                    records: *records,
                    enqueued_unix_ms: now,
                    loc,
                },
            );
        }
        self.publish(&state);
        drop(state);
        self.inner.appended.send_modify(|n| *n += 1);
        Ok(metas.into_iter().map(|(seq, _, _)| seq).collect())
    }

    fn segments(&self) -> MutexGuard<'_, segments::Segments> {
        self.inner
            .segments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let Some(meta) = self.lock().index.get(&seq).copied() else {
            return Ok(Read::Gone);
        };
        let read = self.segments().read(meta.loc);
        let decoded = match read {
            Ok(value) => decode(&value).map_err(|e| e.to_string()),
            // The file was there when the batch was appended or found at start-up.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(e.to_string()),
            Err(source) => return Err(segments_error(&self.inner.segments_dir, source)),
        };
        match decoded {
            Ok(batch) => Ok(Read::Batch(batch)),
            Err(error) => {
                warn!(seq, error = %error, "queued batch is damaged, deleting it");
                let stats = &self.inner.stats;
                Stats::incr(&stats.queue_corrupt_entries);
                stats.dropped(crate::stats::DropReason::Corrupt, meta.records);
                self.remove(seq)?;
                Ok(Read::Corrupt)
            }
        }
    }

    /// Deletes the batch at `seq` (delivered or dropped). Not synced by itself: a crash
    /// before the next append or [`flush`](Self::flush) may bring it back, and the
    /// collector ignores the re-sent batch id.
    pub fn remove(&self, seq: u64) -> Result<(), QueueError> {
        let Some(meta) = self.forget(seq) else {
            return Ok(());
        };
        self.inner.acked.insert(seq.to_be_bytes(), &[])?;
        match self.segments().release(meta.loc.segment) {
            Some(range) => self.unlist(range),
            None => Ok(()),
        }
    }

    /// Takes an emptied segment off the database's list; its file is deleted once that is
    /// durable (next append or flush). A crash in between leaves a file whose batches are
    /// all noted as delivered, which the next start deletes; never a listed file that is
    /// gone (which would be reported as lost).
    fn unlist(&self, range: (u64, u64)) -> Result<(), QueueError> {
        self.inner.segment_list.remove(range.0.to_be_bytes())?;
        self.lock().unlisted.push(range);
        Ok(())
    }

    fn forget(&self, seq: u64) -> Option<Meta> {
        let mut state = self.lock();
        let meta = state.index.remove(&seq);
        if let Some(meta) = &meta {
            state.bytes -= meta.bytes;
            state.records -= meta.records;
        }
        self.publish(&state);
        drop(state);
        self.inner.freed.send_modify(|n| *n += 1);
        meta
    }

    /// Makes removals durable, and deletes the segment files they emptied. Blocking.
    pub fn flush(&self) -> Result<(), QueueError> {
        let unlisted = std::mem::take(&mut self.lock().unlisted);
        self.inner.db.flush()?;
        let dir = &self.inner.segments_dir;
        delete_segments(dir, &mut self.segments(), &self.inner.acked, unlisted)
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

/// Deletes segment files taken off the database's list (durably), then forgets the
/// deliveries noted for their batches.
fn delete_segments(
    dir: &Path,
    segments: &mut segments::Segments,
    acked: &sled::Tree,
    ranges: Vec<(u64, u64)>,
) -> Result<(), QueueError> {
    for (first, last) in ranges {
        segments
            .delete(first)
            .map_err(|source| segments_error(dir, source))?;
        for item in acked.range(first.to_be_bytes()..=last.to_be_bytes()) {
            let (key, _) = item?;
            acked.remove(key)?;
        }
    }
    Ok(())
}

fn segments_error(dir: &Path, source: std::io::Error) -> QueueError {
    QueueError::Segments {
        path: dir.to_owned(),
        source,
    }
}

/// Batch ids travel as gRPC metadata, which must be visible ASCII.
fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
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

//! Appending batches, removing delivered ones, and making both durable.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::warn;

use super::seq_file::RESERVE_BLOCK;
use super::{codec, segments, segments_error, Meta, Queue, QueueError, META_NEXT_SEQ};
use crate::batch::Payload;
use crate::stats::{now_unix_ms, Stage};

impl Queue {
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
        let stages = &self.inner.stats.stages;
        let encoding = Instant::now();
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
        stages.add(Stage::Encode, encoding.elapsed());
        let next = first + batches.len() as u64;
        let committing = Instant::now();
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
        let mut committed = committing.elapsed();
        let (locs, retired) = {
            let writing = Instant::now();
            let mut segments = self.segments();
            let locs = segments
                .append(&entries)
                .map_err(|source| segments_error(&self.inner.segments_dir, source))?;
            let retired = segments.take_retired();
            stages.add(Stage::Write, writing.elapsed());
            (locs, retired)
        };
        let committing = Instant::now();
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
        committed += committing.elapsed();
        stages.add(Stage::Commit, committed);
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
}

/// Deletes segment files taken off the database's list (durably), then forgets the
/// deliveries noted for their batches.
pub(super) fn delete_segments(
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

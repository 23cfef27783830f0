//! Start-up: the queue's state rebuilt from the segment files, the database and the
//! sequence file, after whatever damage they took.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::error;

use super::seq_file::{SeqFile, RESERVE_BLOCK};
use super::write::delete_segments;
use super::{
    codec, recover, segments, segments_error, Inner, Meta, Options, Queue, QueueError, Recovered,
    State, DIR_NAME, META_NEXT_SEQ, META_QUEUE_ID, SEGMENTS_DIR_NAME,
};
use crate::stats::Stats;

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
            disk_reserve,
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
                disk: super::disk::DiskGuard::new(data_dir, disk_reserve, stats.clone()),
                stats,
                seq_file: Mutex::new(seq_file),
            }),
        };
        queue.publish(&queue.lock());
        Ok((queue, recovered))
    }
}

/// Batch ids travel as gRPC metadata, which must be visible ASCII.
fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

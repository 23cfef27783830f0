//! Reading batches back in order, and waiting for more.

use std::sync::atomic::Ordering;

use tracing::warn;

use super::{codec, segments_error, Queue, QueueError, Queued, Read};
use crate::batch::EncodedBatch;
use crate::stats::{DropReason, Stats};

impl Queue {
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
                stats.dropped(DropReason::Corrupt, meta.records);
                self.remove(seq)?;
                Ok(Read::Corrupt)
            }
        }
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
}

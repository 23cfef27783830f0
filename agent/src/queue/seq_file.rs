//! `<data-dir>/queue.seq`: the queue id and sequence numbers, kept outside the database.
//!
//! The storage engine recovers a damaged log by cutting it at the damage, silently: the
//! batches after it vanish and so does the persisted next sequence number. Reusing those
//! numbers would give new batches the ids of batches the collector may have counted
//! already, and it would ignore them. So sequence numbers are reserved here in blocks
//! (written and synced before a block is used), and after every append the number reached
//! is noted (not synced: it only ever lags behind the database). At start-up, a database
//! that is behind the noted number has lost data it had flushed: that is reported as
//! damage, and numbering continues after the reservation.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Sequence numbers reserved at once.
pub(super) const RESERVE_BLOCK: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeqFile {
    path: PathBuf,
    pub queue_id: String,
    /// No sequence number at or above this one has been used.
    pub reserved: u64,
    /// The database's next sequence number after the last append known to be flushed.
    pub appended: u64,
}

impl SeqFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("queue.seq")
    }

    /// Reads the file; `None` when missing or unreadable (then the database decides).
    pub fn load(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut words = text.split_whitespace();
        if words.next()? != "v1" {
            return None;
        }
        let queue_id = words.next()?.to_owned();
        let reserved = words.next()?.parse().ok()?;
        let appended = words.next()?.parse().ok()?;
        Some(Self {
            path: path.to_owned(),
            queue_id,
            reserved,
            appended,
        })
    }

    pub fn file(&self) -> &Path {
        &self.path
    }

    pub fn new(path: &Path, queue_id: String, reserved: u64, appended: u64) -> Self {
        Self {
            path: path.to_owned(),
            queue_id,
            reserved,
            appended,
        }
    }

    /// Replaces the file atomically; `sync` makes it durable before returning.
    pub fn store(&self, sync: bool) -> std::io::Result<()> {
        let tmp = self.path.with_extension("seq.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(
            file,
            "v1 {} {} {}",
            self.queue_id, self.reserved, self.appended
        )?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        if sync {
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = SeqFile::path(dir.path());
        assert_eq!(SeqFile::load(&path), None);
        let file = SeqFile::new(&path, "abc".into(), 4096, 17);
        file.store(true).expect("stores");
        assert_eq!(SeqFile::load(&path), Some(file));
        std::fs::write(&path, "v1 abc notanumber 1").expect("writes");
        assert_eq!(SeqFile::load(&path), None);
    }
}

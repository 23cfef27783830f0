//! Free space on the data directory's file system, as a second bound of the queue.
//!
//! A write that meets a full disk fails half-way, and the storage engine of the queue's
//! database does not recover from a failed write without a restart. So the queue stops
//! admitting data while the file system has less than the reserve free
//! (`--disk-reserve`): sources wait as they do for a full queue (OTLP answers
//! RESOURCE_EXHAUSTED / 503 after its wait, files stop advancing), what was acknowledged
//! stays queued, and admission resumes by itself once space is back, found by polling
//! every [`POLL`] while something waits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::stats::Stats;

/// Default space kept free on the data directory's file system.
pub const DEFAULT_RESERVE_BYTES: u64 = 32 * 1024 * 1024;
/// How often a source waiting for disk space looks again.
pub const POLL: Duration = Duration::from_millis(250);

/// Free space of a directory's file system, in bytes an unprivileged writer may use.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// Parses `--disk-reserve`: a byte size, or 0 to turn the check off.
pub fn parse_reserve(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    super::parse_byte_size(text)
}

/// Watches the free space of the data directory's file system.
#[derive(Debug)]
pub(super) struct DiskGuard {
    dir: PathBuf,
    /// Bytes to keep free; 0 turns the check off.
    reserve: u64,
    /// Whether the last look found too little room (logged on every change).
    full: AtomicBool,
    stats: Arc<Stats>,
}

impl DiskGuard {
    pub(super) fn new(dir: &Path, reserve: u64, stats: Arc<Stats>) -> Self {
        stats.disk_reserve_bytes.store(reserve, Ordering::Relaxed);
        let guard = Self {
            dir: dir.to_owned(),
            reserve,
            full: AtomicBool::new(false),
            stats,
        };
        guard.has_room();
        guard
    }

    /// Whether the file system has at least the reserve free (the reserve is the margin
    /// for the batch being admitted and the database's own writes). A file system that
    /// cannot be asked counts as having room: the write itself then reports the error.
    pub(super) fn has_room(&self) -> bool {
        if self.reserve == 0 {
            return true;
        }
        let free = match free_bytes(&self.dir) {
            Ok(free) => free,
            Err(e) => {
                warn!(dir = %self.dir.display(), error = %e, "cannot read the data directory's free space");
                return true;
            }
        };
        self.stats.disk_free_bytes.store(free, Ordering::Relaxed);
        let room = free >= self.reserve;
        let was_full = self.full.swap(!room, Ordering::Relaxed);
        if !room && !was_full {
            Stats::incr(&self.stats.disk_full_episodes);
            self.stats.disk_full.store(1, Ordering::Relaxed);
            warn!(
                dir = %self.dir.display(),
                free_bytes = free,
                reserve_bytes = self.reserve,
                "data directory's disk is full: holding sources back until space is free; everything acknowledged stays queued"
            );
        } else if room && was_full {
            self.stats.disk_full.store(0, Ordering::Relaxed);
            info!(dir = %self.dir.display(), free_bytes = free, "disk space is back: taking data again");
        }
        room
    }

    /// Whether the last look found the disk full.
    pub(super) fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }
}

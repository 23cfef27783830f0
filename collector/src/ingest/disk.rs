//! Ingest stops before the data directory's disk is full.
//!
//! A store write that meets a full disk fails half-way, and the storage engine does not
//! take writes again after a failed one without a restart. So while the data directory's
//! file system has less than `limits.min_free_disk_bytes` free, OTLP requests are refused
//! before anything of them is applied, with a retryable status (gRPC UNAVAILABLE, HTTP
//! 503, both with a retry-after of [`DISK_FULL_RETRY_AFTER_SECS`]): senders keep their
//! data and send it again. Reads and the rest of the API go on; ingest resumes by itself
//! at the first request that finds the space back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use bellwether_model::limit::Limit;

use crate::error::{Error, DISK_FULL_RETRY_AFTER_SECS};

/// Free space of a directory's file system, in bytes an unprivileged writer may use.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// Checks the data directory's free space before each ingest.
#[derive(Debug)]
pub struct FreeDisk {
    dir: PathBuf,
    min_free: u64,
    /// Whether the last look refused (so each change is logged once).
    full: AtomicBool,
}

impl FreeDisk {
    pub fn new(dir: &Path, min_free: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            min_free,
            full: AtomicBool::new(false),
        }
    }

    /// `Ok` while at least `min_free` bytes are free (or the file system cannot be asked:
    /// the write then reports its own error).
    pub fn check(&self) -> Result<(), Error> {
        if self.min_free == 0 {
            return Ok(());
        }
        let free = match free_bytes(&self.dir) {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the data directory's free space");
                return Ok(());
            }
        };
        crate::metrics::registry::data_dir_free(free);
        let full = free < self.min_free;
        let was_full = self.full.swap(full, Ordering::Relaxed);
        if full && !was_full {
            tracing::error!(
                dir = %self.dir.display(),
                free_bytes = free,
                min_free_disk_bytes = self.min_free,
                "data directory's disk is full: refusing ingest (retryably) until space is free; reads go on"
            );
        } else if !full && was_full {
            tracing::info!(dir = %self.dir.display(), free_bytes = free, "disk space is back: ingest resumes");
        }
        if full {
            bellwether_model::limit::hit(Limit::FreeDisk, 1);
            return Err(Error::DiskFull(format!(
                "collector's disk is full ({free} bytes free, limits.min_free_disk_bytes = {}): \
                 nothing was stored, retry in {DISK_FULL_RETRY_AFTER_SECS} s",
                self.min_free
            )));
        }
        Ok(())
    }
}

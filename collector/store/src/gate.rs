//! The write gate: every sled write of the collector passes it, and a backup closes it for
//! as long as it reads the databases, so the archive is one point in time.
//!
//! A write takes a [`WriteGate::pass`] (shared); [`WriteGate::close`] (exclusive) waits for
//! the writes under way and holds back new ones. The lock prefers the closer, so a steady
//! stream of writes cannot starve a backup. Writers wait, they are never refused. No pass
//! may be taken while holding another one: the closer waiting between them would
//! deadlock both.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Cheap to clone; clones share the gate.
#[derive(Clone, Debug, Default)]
pub struct WriteGate(Arc<RwLock<()>>);

impl WriteGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Held while one write is applied.
    pub fn pass(&self) -> RwLockReadGuard<'_, ()> {
        // The lock guards no data, so a panicked holder leaves nothing half-changed.
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Held while a snapshot is read: no write is applied meanwhile.
    pub fn close(&self) -> RwLockWriteGuard<'_, ()> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

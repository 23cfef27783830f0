//! Counters of limit violations (requests refused, attributes dropped, values cut,
//! fingerprints folded into `other`), kept here so that every layer can count one and
//! `/metrics` can report them all.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a limit counter is labelled with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    RequestBytes,
    RecordsPerRequest,
    AttributesPerRecord,
    AttributeKeyBytes,
    AttributeValueBytes,
    Services,
    VersionsPerService,
    FingerprintsPerRelease,
    Inflight,
    /// Ingest refused because the data directory's disk had less than its reserve free.
    FreeDisk,
}

impl Limit {
    pub const ALL: [Limit; 10] = [
        Limit::RequestBytes,
        Limit::RecordsPerRequest,
        Limit::AttributesPerRecord,
        Limit::AttributeKeyBytes,
        Limit::AttributeValueBytes,
        Limit::Services,
        Limit::VersionsPerService,
        Limit::FingerprintsPerRelease,
        Limit::Inflight,
        Limit::FreeDisk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::RequestBytes => "request_bytes",
            Limit::RecordsPerRequest => "records_per_request",
            Limit::AttributesPerRecord => "attributes_per_record",
            Limit::AttributeKeyBytes => "attribute_key_bytes",
            Limit::AttributeValueBytes => "attribute_value_bytes",
            Limit::Services => "services",
            Limit::VersionsPerService => "versions_per_service",
            Limit::FingerprintsPerRelease => "fingerprints_per_release",
            Limit::Inflight => "inflight",
            Limit::FreeDisk => "free_disk",
        }
    }
}

static HITS: [AtomicU64; Limit::ALL.len()] = [const { AtomicU64::new(0) }; Limit::ALL.len()];

/// Counts `n` violations of `limit` (requests refused, attributes dropped, values cut…).
pub fn hit(limit: Limit, n: u64) {
    HITS[limit as usize].fetch_add(n, Ordering::Relaxed);
}

/// Violations of `limit` since the process started.
pub fn hits(limit: Limit) -> u64 {
    HITS[limit as usize].load(Ordering::Relaxed)
}

//! What ingest records for detection besides plain counts: error fingerprints (issues) and
//! sampled latencies, as they travel in an [`IngestBatch`](super::IngestBatch) and as the
//! store gives them back.
//!
//! Everything is bounded:
//! - at most [`MAX_FINGERPRINTS_PER_RELEASE`] fingerprints per release; errors of any
//!   further fingerprint count under [`OTHER_FINGERPRINT`] (so a release that throws a
//!   million distinct messages costs a thousand and one issue records, not a million);
//! - at most [`MAX_INSTANCES_PER_RELEASE`] instance ids and [`MAX_SAMPLES`] samples per
//!   (release, fingerprint), each sample's stack cut at [`MAX_STACK_BYTES`];
//! - at most [`MAX_LATENCY_SAMPLES`] durations per (release, 10 s bucket), a uniform
//!   reservoir sample of the server/root spans that ended in that bucket.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Fingerprints one release keeps apart; further ones count under [`OTHER_FINGERPRINT`].
pub const MAX_FINGERPRINTS_PER_RELEASE: u32 = 1_000;
/// The fingerprint of errors beyond [`MAX_FINGERPRINTS_PER_RELEASE`]. Computed ids are
/// 16 hex digits, so this one never collides with them.
pub const OTHER_FINGERPRINT: &str = "other";
/// Title of [`OTHER_FINGERPRINT`].
pub const OTHER_TITLE: &str = "other errors (fingerprint limit of the release reached)";
/// Instance ids kept per (release, fingerprint).
pub const MAX_INSTANCES_PER_RELEASE: usize = 32;
/// Samples kept per (release, fingerprint): the first ones seen.
pub const MAX_SAMPLES: usize = 5;
/// Longest stored stack trace of a sample, in bytes.
pub const MAX_STACK_BYTES: usize = 16 * 1024;
/// Longest stored message of a sample, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024;
/// Durations kept per (release, bucket).
pub const MAX_LATENCY_SAMPLES: usize = 256;

/// One occurrence of an error, kept as an example.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueSample {
    pub message: String,
    /// The stack trace text as received (at most [`MAX_STACK_BYTES`]), empty when none.
    pub stack: String,
    /// Lower-case hex; empty when the record had none.
    pub trace_id: String,
    pub span_id: String,
    /// `service.instance.id` of the resource; empty when unknown.
    pub instance: String,
    pub unix_ms: i64,
}

/// Where and when a fingerprint was first seen in its service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstSeen {
    pub unix_ms: i64,
    pub environment: String,
    pub version: String,
}

/// What one batch adds to one fingerprint of one release.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueDelta {
    pub title: String,
    pub exception_type: String,
    /// Errors after de-duplication per (trace, fingerprint).
    pub count: u64,
    pub first_seen_unix_ms: i64,
    pub last_seen_unix_ms: i64,
    /// At most [`MAX_INSTANCES_PER_RELEASE`].
    pub instances: BTreeSet<String>,
    /// At most [`MAX_SAMPLES`], oldest first.
    pub samples: Vec<IssueSample>,
    /// Bucket start (Unix ms) → errors.
    pub buckets: BTreeMap<i64, u64>,
}

/// A fingerprint of one service, over all its releases.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRecord {
    pub fingerprint: String,
    pub title: String,
    pub exception_type: String,
    pub first_seen: FirstSeen,
    pub last_seen_unix_ms: i64,
    /// Errors over all releases.
    pub count: u64,
}

/// A fingerprint within one release: how often, where, when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseIssue {
    pub fingerprint: String,
    pub count: u64,
    /// Instance ids that reported it (at most [`MAX_INSTANCES_PER_RELEASE`]).
    pub instances: BTreeSet<String>,
    pub first_seen_unix_ms: i64,
    pub last_seen_unix_ms: i64,
}

/// The counts the evaluator needs of one fingerprint in one release.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssueCount {
    pub fingerprint: String,
    pub count: u64,
    /// Distinct instances that reported it (at most [`MAX_INSTANCES_PER_RELEASE`]).
    pub instances: u32,
}

/// A uniform sample of the durations of server/root spans that ended in one bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyBucket {
    pub start_unix_ms: i64,
    /// Durations the sample was drawn from.
    pub seen: u64,
    /// At most [`MAX_LATENCY_SAMPLES`] durations, milliseconds.
    pub samples_ms: Vec<f64>,
}

/// One counted error, as [`IssueDelta::record`] takes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Occurrence<'a> {
    pub bucket_start_unix_ms: i64,
    pub unix_ms: i64,
    /// Empty when unknown.
    pub instance: &'a str,
}

impl IssueDelta {
    /// A fingerprint's delta before its first occurrence.
    pub fn new(title: &str, exception_type: &str) -> Self {
        Self {
            title: title.to_owned(),
            exception_type: exception_type.to_owned(),
            first_seen_unix_ms: i64::MAX,
            last_seen_unix_ms: i64::MIN,
            ..Self::default()
        }
    }

    /// Counts one error; `sample` is asked for only while samples are missing.
    pub fn record(&mut self, at: &Occurrence<'_>, sample: impl FnOnce() -> IssueSample) {
        self.count = self.count.saturating_add(1);
        self.first_seen_unix_ms = self.first_seen_unix_ms.min(at.unix_ms);
        self.last_seen_unix_ms = self.last_seen_unix_ms.max(at.unix_ms);
        if !at.instance.is_empty()
            && self.instances.len() < MAX_INSTANCES_PER_RELEASE
            && !self.instances.contains(at.instance)
        {
            self.instances.insert(at.instance.to_owned());
        }
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(sample());
        }
        let bucket = self.buckets.entry(at.bucket_start_unix_ms).or_default();
        *bucket = bucket.saturating_add(1);
    }
}

//! The release store: deployments, per-release time buckets of counts, error fingerprints
//! (issues) with samples, sampled latencies, and the ids of batches already applied.
//!
//! [`ReleaseStore`] is the seam the rest of the collector talks to; [`SledStore`] is the
//! embedded implementation. Every key starts with the service name, so all state of one
//! service sits in one contiguous key range and can later move between nodes as a unit.
//! The bounds on issues and latency samples are listed in [`detection`].

pub mod detection;
mod keys;
mod reservoir;
mod sled_issues;
mod sled_store;

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

pub use detection::{
    FirstSeen, IssueCount, IssueDelta, IssueRecord, IssueSample, LatencyBucket, Occurrence,
    ReleaseIssue,
};
pub use reservoir::{duration_micros, Reservoir};
pub use sled_store::SledStore;

/// Width of one statistics bucket, aligned on the Unix epoch.
pub const BUCKET_MS: i64 = 10_000;

/// Start of the bucket holding `unix_ms`.
pub fn bucket_start(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(BUCKET_MS) * BUCKET_MS
}

/// One release of a service in one environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReleaseKey {
    pub service: String,
    pub environment: String,
    pub version: String,
}

impl ReleaseKey {
    pub fn new(
        service: impl Into<String>,
        environment: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Self {
            service: service.into(),
            environment: environment.into(),
            version: version.into(),
        }
    }
}

/// Record counts of a release, in total or over one bucket.
///
/// `error_logs` and `error_spans` count every error record as received; `errors` counts
/// failing requests: errors of all signals (error logs, error spans, `exception` span
/// events) at most once per trace, so a request that is traced and logged counts once
/// and errors never exceed server spans (records without a trace id count each).
/// Exposure is `server_spans` (root
/// spans and spans of kind SERVER) when a release has traces, else `log_records`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub log_records: u64,
    pub error_logs: u64,
    pub spans: u64,
    pub error_spans: u64,
    /// Root spans (no parent) and spans of kind SERVER.
    #[serde(default)]
    pub server_spans: u64,
    /// Errors of all signals, at most one per trace.
    #[serde(default)]
    pub errors: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.log_records = self.log_records.saturating_add(other.log_records);
        self.error_logs = self.error_logs.saturating_add(other.error_logs);
        self.spans = self.spans.saturating_add(other.spans);
        self.error_spans = self.error_spans.saturating_add(other.error_spans);
        self.server_spans = self.server_spans.saturating_add(other.server_spans);
        self.errors = self.errors.saturating_add(other.errors);
    }
}

/// How the collector learned of a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Recorded through the API or the CLI.
    Recorded,
    /// Created when a release first reported telemetry.
    Detected,
}

/// A version starting to serve an environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub release: ReleaseKey,
    pub started_at_unix_ms: i64,
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    pub pipeline_url: Option<String>,
    pub notes: Option<String>,
    pub team: Option<String>,
    pub source: Source,
}

impl Deployment {
    fn detected(release: ReleaseKey, started_at_unix_ms: i64, identity: &ResourceIdentity) -> Self {
        Self {
            release,
            started_at_unix_ms,
            commit: identity.commit.clone(),
            deploy_id: identity.deploy_id.clone(),
            pipeline_url: None,
            notes: None,
            team: identity.team.clone(),
            source: Source::Detected,
        }
    }

    /// Fills commit, deploy id and team the deployment does not know yet; true if any changed.
    fn fill_identity(&mut self, identity: &ResourceIdentity) -> bool {
        let mut changed = false;
        for (slot, value) in [
            (&mut self.commit, &identity.commit),
            (&mut self.deploy_id, &identity.deploy_id),
            (&mut self.team, &identity.team),
        ] {
            if slot.is_none() && value.is_some() {
                slot.clone_from(value);
                changed = true;
            }
        }
        changed
    }

    /// Applies a recording of this same release: given fields replace, absent ones stay.
    fn merge_record(&mut self, record: &DeploymentRecord) {
        if let Some(started) = record.started_at_unix_ms {
            self.started_at_unix_ms = started;
        }
        for (slot, value) in [
            (&mut self.commit, &record.commit),
            (&mut self.deploy_id, &record.deploy_id),
            (&mut self.pipeline_url, &record.pipeline_url),
            (&mut self.notes, &record.notes),
            (&mut self.team, &record.team),
        ] {
            if value.is_some() {
                slot.clone_from(value);
            }
        }
        self.source = Source::Recorded;
    }
}

/// A deployment as recorded through the API: absent fields keep what the store knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentRecord {
    pub release: ReleaseKey,
    pub started_at_unix_ms: Option<i64>,
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    pub pipeline_url: Option<String>,
    pub notes: Option<String>,
    pub team: Option<String>,
}

/// Release metadata carried by telemetry resource attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceIdentity {
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    pub team: Option<String>,
}

impl ResourceIdentity {
    /// Keeps values already known, takes the others from `other`.
    pub fn merge(&mut self, other: &ResourceIdentity) {
        for (slot, value) in [
            (&mut self.commit, &other.commit),
            (&mut self.deploy_id, &other.deploy_id),
            (&mut self.team, &other.team),
        ] {
            if slot.is_none() {
                slot.clone_from(value);
            }
        }
    }
}

/// What one release gained from one ingest request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReleaseDelta {
    pub identity: ResourceIdentity,
    /// Bucket start (Unix ms) → counts to add.
    pub buckets: BTreeMap<i64, Counts>,
    /// Bucket start (Unix ms) → durations of server/root spans, sampled.
    pub latency: BTreeMap<i64, Reservoir>,
    /// Fingerprint id → what the batch adds to that issue of the release.
    pub issues: BTreeMap<String, IssueDelta>,
}

/// One ingest request, summarized; applied atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestBatch {
    pub batch_id: Option<String>,
    pub received_at_unix_ms: i64,
    pub releases: BTreeMap<ReleaseKey, ReleaseDelta>,
}

/// Whether a batch was counted now or had been counted before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    Duplicate,
}

/// Selects deployments; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentFilter {
    pub service: Option<String>,
    pub environment: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// A failed sled transaction as a store error.
pub(crate) fn from_tx(e: sled::transaction::TransactionError<StoreError>) -> StoreError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// How long opening waits for a database's lock: a handle this process dropped a moment
/// ago lets go of it only when sled's background flusher does.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the sled database in `dir`, waiting up to [`LOCK_WAIT`] while its lock is held.
pub fn open_sled(dir: &std::path::Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new().path(dir).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Durable state of releases. Methods block on IO; call them off the async executor.
pub trait ReleaseStore: Send + Sync + 'static {
    /// Applies a summarized batch atomically and durably: counts, auto-detected
    /// deployments, filled metadata and the batch id. A batch id seen before is a no-op.
    fn apply(&self, batch: &IngestBatch) -> Result<ApplyOutcome, StoreError>;

    /// Records (or re-records) a deployment durably and returns what is stored.
    fn record_deployment(
        &self,
        record: &DeploymentRecord,
        now_unix_ms: i64,
    ) -> Result<Deployment, StoreError>;

    fn deployment(&self, release: &ReleaseKey) -> Result<Option<Deployment>, StoreError>;

    fn deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>, StoreError>;

    fn totals(&self, release: &ReleaseKey) -> Result<Counts, StoreError>;

    /// Buckets whose start lies in `range` (Unix ms), oldest first.
    fn buckets(
        &self,
        release: &ReleaseKey,
        range: Range<i64>,
    ) -> Result<Vec<(i64, Counts)>, StoreError>;

    /// Fingerprints seen in `release` with their (de-duplicated) error counts and how many
    /// instances reported them; any order.
    fn release_issue_counts(&self, release: &ReleaseKey) -> Result<Vec<IssueCount>, StoreError>;

    /// The fingerprint ids seen in `release`, in key order (cheaper than the counts).
    fn release_fingerprints(&self, release: &ReleaseKey) -> Result<Vec<String>, StoreError>;

    /// Like [`ReleaseStore::release_issue_counts`], with instance ids and times.
    fn release_issues(&self, release: &ReleaseKey) -> Result<Vec<ReleaseIssue>, StoreError>;

    /// Up to [`detection::MAX_SAMPLES`] examples of `fingerprint` in `release`, oldest first.
    fn issue_samples(
        &self,
        release: &ReleaseKey,
        fingerprint: &str,
    ) -> Result<Vec<IssueSample>, StoreError>;

    /// A fingerprint of `service` over all its releases: title, type, first and last seen.
    fn issue(&self, service: &str, fingerprint: &str) -> Result<Option<IssueRecord>, StoreError>;

    /// Errors of `fingerprint` in `release` per bucket whose start lies in `range`, oldest
    /// first; buckets without any are left out.
    fn fingerprint_bucket_counts(
        &self,
        release: &ReleaseKey,
        fingerprint: &str,
        range: Range<i64>,
    ) -> Result<Vec<(i64, u64)>, StoreError>;

    /// Sampled durations of server/root spans of `release` per bucket whose start lies in
    /// `range`, oldest first.
    fn latency_buckets(
        &self,
        release: &ReleaseKey,
        range: Range<i64>,
    ) -> Result<Vec<LatencyBucket>, StoreError>;

    /// All sampled durations (ms) of `release` over the buckets starting in `range`.
    /// Each bucket holds at most [`detection::MAX_LATENCY_SAMPLES`] however busy it was;
    /// use [`ReleaseStore::latency_buckets`] to weight buckets by `seen`.
    fn latency_samples(
        &self,
        release: &ReleaseKey,
        range: Range<i64>,
    ) -> Result<Vec<f64>, StoreError> {
        Ok(self
            .latency_buckets(release, range)?
            .into_iter()
            .flat_map(|bucket| bucket.samples_ms)
            .collect())
    }

    /// Forgets batch ids applied before `before_unix_ms`; returns how many were removed.
    fn prune_batches(&self, before_unix_ms: i64) -> Result<usize, StoreError>;

    fn flush(&self) -> Result<(), StoreError>;
}

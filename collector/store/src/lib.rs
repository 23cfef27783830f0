//! Every durable state of the collector behind a trait, with its implementations. The
//! collector above talks to the traits only.
//!
//! | trait | what | single node | cluster |
//! |---|---|---|---|
//! | [`ReleaseStore`] | deployments, per-release buckets of counts, issues and samples, latency samples, applied batch ids | [`SledStore`] | (per-partition sled, to come) |
//! | [`verdicts::VerdictStore`] | the latest verdict and its timeline per release | [`verdicts::SledVerdicts`] | [`nats::KvVerdicts`] |
//! | [`alerts::AlertStore`], [`alerts::OutboxStore`] | alerts, silences, the notification outbox | [`alerts::SledAlertStore`] | [`nats::KvAlertStore`] |
//!
//! Beside them: [`schema`] (each sled database's schema version, checked on open),
//! [`WriteGate`] (every sled write of a single collector passes it) and [`backup`]
//! (point-in-time archives of the sled databases, taken with the gate closed, and their
//! staged restore).
//!
//! Every key starts with the service name, so all state of one service sits in one
//! contiguous key range and can move between nodes as a unit. The bounds on issues and
//! latency samples are listed in [`bellwether_model::issue`].

pub mod alerts;
pub mod backup;
mod gate;
mod keys;
pub mod nats;
mod reservoir;
pub mod schema;
mod sled_dependencies;
mod sled_issues;
mod sled_store;
pub mod verdicts;

use std::collections::BTreeMap;
use std::ops::Range;

use bellwether_model::dependency::{DependencyBucket, DependencyCounts};
use bellwether_model::issue::{
    IssueCount, IssueDelta, IssueRecord, IssueSample, LatencyBucket, ReleaseIssue,
};
use bellwether_model::release::{
    Counts, Deployment, DeploymentFilter, DeploymentRecord, ReleaseKey, ResourceIdentity,
};

pub use gate::WriteGate;
pub use reservoir::{duration_micros, Reservoir};
pub use sled_store::SledStore;

/// What one release gained from one ingest request.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseDelta {
    pub identity: ResourceIdentity,
    /// Bucket start (Unix ms) → counts to add.
    pub buckets: BTreeMap<i64, Counts>,
    /// Bucket start (Unix ms) → durations of server/root spans, sampled.
    pub latency: BTreeMap<i64, Reservoir>,
    /// Fingerprint id → what the batch adds to that issue of the release.
    pub issues: BTreeMap<String, IssueDelta>,
    /// Bucket start (Unix ms) → dependency name → calls to it (client and producer spans).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<i64, BTreeMap<String, DependencyCounts>>,
    /// Bucket start (Unix ms) → `<flag>\0<variant>` → requests that evaluated it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<i64, BTreeMap<String, DependencyCounts>>,
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The replicated store of a cluster (NATS JetStream) failed or did not answer.
    #[error("replicated store: {0}")]
    Replicated(String),
    /// The database was written by a newer Bellwether, in a layout this one cannot read.
    #[error(
        "{dir} has schema version {found}, newer than {supported}, the newest this bellwether \
         reads: run a bellwether that knows version {found}, or restore a backup made by \
         this one"
    )]
    NewerSchema {
        dir: String,
        found: u32,
        supported: u32,
    },
}

/// A stored value from its JSON; `what` names it in the error.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    what: &str,
    raw: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A value as stored JSON; `what` names it in the error.
pub(crate) fn encode_json<T: serde::Serialize>(
    what: &str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
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

/// Opens the sled database in `dir`, waiting up to [`LOCK_WAIT`] while its lock is held,
/// and checks its schema version ([`schema::check_and_stamp`]).
pub fn open_sled(dir: &std::path::Path) -> Result<sled::Db, StoreError> {
    let db = open_sled_unchecked(dir)?;
    schema::check_and_stamp(&db, dir)?;
    Ok(db)
}

/// [`open_sled`] without the schema check: for a restore's staging directory.
pub(crate) fn open_sled_unchecked(dir: &std::path::Path) -> Result<sled::Db, StoreError> {
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

    /// Up to [`bellwether_model::issue::MAX_SAMPLES`] examples of `fingerprint` in `release`, oldest first.
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

    /// Calls of `release` to its dependencies per bucket whose start lies in `range`,
    /// oldest bucket first.
    fn dependency_buckets(
        &self,
        release: &ReleaseKey,
        range: Range<i64>,
    ) -> Result<Vec<DependencyBucket>, StoreError>;

    /// Requests of `release` per feature-flag variant (named `<flag>\0<variant>`) per
    /// bucket whose start lies in `range`, oldest bucket first.
    fn flag_buckets(
        &self,
        release: &ReleaseKey,
        range: Range<i64>,
    ) -> Result<Vec<DependencyBucket>, StoreError>;

    /// All sampled durations (ms) of `release` over the buckets starting in `range`.
    /// Each bucket holds at most [`bellwether_model::issue::MAX_LATENCY_SAMPLES`] however busy it was;
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

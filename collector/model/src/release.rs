//! A release and what is known of it: its key (service, environment, version), the
//! counts of one time bucket, and its deployment record.

use serde::{Deserialize, Serialize};

use crate::change::ChangeSet;

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
/// Exposure is `server_spans` (root spans and spans of kind SERVER) when a release has
/// traces, else `metric_requests` (requests counted by the OpenTelemetry request-duration
/// histograms) when it sends those, else `log_records`.
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
    /// Requests counted by request-duration histograms (`http.server.request.duration`,
    /// `http.server.duration`, `rpc.server.duration`), as deltas.
    #[serde(default)]
    pub metric_requests: u64,
    /// Of those, the failed ones (HTTP status ≥ 500, `error.type` set, or a gRPC server
    /// error status).
    #[serde(default)]
    pub metric_errors: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.log_records = self.log_records.saturating_add(other.log_records);
        self.error_logs = self.error_logs.saturating_add(other.error_logs);
        self.spans = self.spans.saturating_add(other.spans);
        self.error_spans = self.error_spans.saturating_add(other.error_spans);
        self.server_spans = self.server_spans.saturating_add(other.server_spans);
        self.errors = self.errors.saturating_add(other.errors);
        self.metric_requests = self.metric_requests.saturating_add(other.metric_requests);
        self.metric_errors = self.metric_errors.saturating_add(other.metric_errors);
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
    /// The commits the release adds over the previous one; `None` when not recorded
    /// (deployments stored before change sets read back with none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<ChangeSet>,
}

impl Deployment {
    /// A deployment first seen in telemetry, with the identity its resource carried.
    pub fn detected(
        release: ReleaseKey,
        started_at_unix_ms: i64,
        identity: &ResourceIdentity,
    ) -> Self {
        Self {
            release,
            started_at_unix_ms,
            commit: identity.commit.clone(),
            deploy_id: identity.deploy_id.clone(),
            pipeline_url: None,
            notes: None,
            team: identity.team.clone(),
            source: Source::Detected,
            changes: None,
        }
    }

    /// Fills commit, deploy id and team the deployment does not know yet; true if any changed.
    pub fn fill_identity(&mut self, identity: &ResourceIdentity) -> bool {
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
    pub fn merge_record(&mut self, record: &DeploymentRecord) {
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
        if record.changes.is_some() {
            self.changes.clone_from(&record.changes);
        }
        self.source = Source::Recorded;
    }

    /// The deployment a first recording of its release makes, at `now_unix_ms` unless
    /// the record says when it started.
    pub fn recorded(record: &DeploymentRecord, now_unix_ms: i64) -> Self {
        Self {
            release: record.release.clone(),
            started_at_unix_ms: record.started_at_unix_ms.unwrap_or(now_unix_ms),
            commit: record.commit.clone(),
            deploy_id: record.deploy_id.clone(),
            pipeline_url: record.pipeline_url.clone(),
            notes: record.notes.clone(),
            team: record.team.clone(),
            source: Source::Recorded,
            changes: record.changes.clone(),
        }
    }
}

/// A deployment as recorded through the API: absent fields keep what the store knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub release: ReleaseKey,
    pub started_at_unix_ms: Option<i64>,
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    pub pipeline_url: Option<String>,
    pub notes: Option<String>,
    pub team: Option<String>,
    /// Replaces the stored change set when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<ChangeSet>,
}

/// Release metadata carried by telemetry resource attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Selects deployments; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentFilter {
    pub service: Option<String>,
    pub environment: Option<String>,
    pub version: Option<String>,
}

//! Release health: gathers a release's and its baseline's counts from the store and asks
//! [`crate::detect`] for a verdict.
//!
//! The baseline is the release of the same service and environment whose deployment
//! started most recently before this one; it is measured over the hour before this
//! deployment started. Exposure is spans when a release has any, else log records; errors
//! are error spans or error logs to match.

use std::time::Duration;

use crate::detect::{self, Sample, Thresholds, VerdictKind};
use crate::store::{
    bucket_start, Counts, Deployment, DeploymentFilter, ReleaseKey, ReleaseStore, StoreError,
};

/// How far back before a deployment its baseline is measured.
pub const BASELINE_WINDOW_MS: i64 = 60 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    Healthy,
    Degraded,
    Unhealthy,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub kind: String,
    pub summary: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseHealth {
    pub release: ReleaseKey,
    pub verdict: Verdict,
    pub evidence: Vec<Evidence>,
    pub totals: Counts,
    pub evaluated_at_unix_ms: i64,
}

impl ReleaseHealth {
    /// Whether a watcher should be told: the verdict or its evidence changed.
    pub fn differs_from(&self, other: &ReleaseHealth) -> bool {
        self.verdict != other.verdict || self.evidence != other.evidence
    }
}

/// Exposure and errors of a release whose overall totals are `kind` over the counts `window`.
pub fn sample(kind: &Counts, window: &Counts) -> Sample {
    if kind.spans > 0 {
        Sample {
            exposure: window.spans,
            errors: window.error_spans,
        }
    } else {
        Sample {
            exposure: window.log_records,
            errors: window.error_logs,
        }
    }
}

fn sum(buckets: &[(i64, Counts)]) -> Counts {
    let mut total = Counts::default();
    for (_, counts) in buckets {
        total.add(counts);
    }
    total
}

/// The deployment that served `deployment`'s environment before it, if any.
pub fn baseline_of(
    store: &dyn ReleaseStore,
    deployment: &Deployment,
) -> Result<Option<Deployment>, StoreError> {
    let filter = DeploymentFilter {
        service: Some(deployment.release.service.clone()),
        environment: Some(deployment.release.environment.clone()),
        version: None,
    };
    Ok(store
        .deployments(&filter)?
        .into_iter()
        .filter(|d| {
            d.release != deployment.release && d.started_at_unix_ms < deployment.started_at_unix_ms
        })
        .max_by_key(|d| d.started_at_unix_ms))
}

/// Evaluates `deployment` at `now_unix_ms`.
pub fn assess(
    store: &dyn ReleaseStore,
    deployment: &Deployment,
    now_unix_ms: i64,
) -> Result<ReleaseHealth, StoreError> {
    let start = deployment.started_at_unix_ms;
    let baseline = match baseline_of(store, deployment)? {
        Some(previous) => {
            let kind = store.totals(&previous.release)?;
            let window = store.buckets(&previous.release, start - BASELINE_WINDOW_MS..start)?;
            Some(sample(&kind, &sum(&window)))
        }
        None => None,
    };
    let totals = store.totals(&deployment.release)?;
    let since_start = store.buckets(&deployment.release, bucket_start(start)..i64::MAX)?;
    let new = sample(&totals, &sum(&since_start));
    let elapsed = Duration::from_millis(u64::try_from(now_unix_ms - start).unwrap_or(0));
    let assessment = detect::assess_cutover(baseline, new, elapsed, &Thresholds::default());
    let verdict = match assessment.verdict {
        VerdictKind::Pending => Verdict::Pending,
        VerdictKind::Healthy => Verdict::Healthy,
        VerdictKind::Degraded => Verdict::Degraded,
        VerdictKind::Unhealthy => Verdict::Unhealthy,
    };
    Ok(ReleaseHealth {
        release: deployment.release.clone(),
        verdict,
        evidence: assessment
            .evidence
            .into_iter()
            .map(|e| Evidence {
                kind: e.kind,
                summary: e.summary,
            })
            .collect(),
        totals,
        evaluated_at_unix_ms: now_unix_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::{DeploymentRecord, IngestBatch, ReleaseDelta, SledStore};

    fn record(store: &SledStore, version: &str, started: i64) -> Result<Deployment, StoreError> {
        let record = DeploymentRecord {
            release: ReleaseKey::new("api", "prod", version),
            started_at_unix_ms: Some(started),
            ..DeploymentRecord::default()
        };
        store.record_deployment(&record, started)
    }

    fn add_logs(
        store: &SledStore,
        version: &str,
        at: i64,
        logs: u64,
        errors: u64,
    ) -> Result<(), StoreError> {
        let mut delta = ReleaseDelta::default();
        delta.buckets.insert(
            bucket_start(at),
            Counts {
                log_records: logs,
                error_logs: errors,
                ..Counts::default()
            },
        );
        let batch = IngestBatch {
            batch_id: None,
            received_at_unix_ms: at,
            releases: [(ReleaseKey::new("api", "prod", version), delta)]
                .into_iter()
                .collect(),
        };
        store.apply(&batch).map(drop)
    }

    #[test]
    fn baseline_is_the_previous_release_over_the_hour_before() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = SledStore::open(dir.path())?;
        let hour = BASELINE_WINDOW_MS;
        let t0 = 1_700_000_000_000;
        record(&store, "1", t0)?;
        record(&store, "2", t0 + 3 * hour)?;
        let three = record(&store, "3", t0 + 5 * hour)?;
        let other_env = DeploymentRecord {
            release: ReleaseKey::new("api", "staging", "9"),
            started_at_unix_ms: Some(t0 + 4 * hour),
            ..DeploymentRecord::default()
        };
        store.record_deployment(&other_env, 0)?;
        // v2: outside the window (2 h before v3), then inside it (30 min before).
        add_logs(&store, "2", t0 + 3 * hour + 10_000, 1000, 500)?;
        add_logs(&store, "2", t0 + 5 * hour - hour / 2, 100, 1)?;
        add_logs(&store, "3", t0 + 5 * hour + 20_000, 50, 0)?;

        let baseline = baseline_of(&store, &three)?.map(|d| d.release.version);
        assert_eq!(baseline.as_deref(), Some("2"));
        let first = store
            .deployment(&ReleaseKey::new("api", "prod", "1"))?
            .ok_or(StoreError::Corrupt("missing".into()))?;
        assert_eq!(baseline_of(&store, &first)?, None);

        let health = assess(&store, &three, t0 + 5 * hour + 60_000)?;
        assert_eq!(health.totals.log_records, 50);
        assert_eq!(health.release.version, "3");
        assert_eq!(health.evaluated_at_unix_ms, t0 + 5 * hour + 60_000);
        let window = store.buckets(
            &ReleaseKey::new("api", "prod", "2"),
            t0 + 4 * hour..t0 + 5 * hour,
        )?;
        let s = sample(
            &store.totals(&ReleaseKey::new("api", "prod", "2"))?,
            &sum(&window),
        );
        assert_eq!((s.exposure, s.errors), (100, 1));
        Ok(())
    }

    #[test]
    fn exposure_follows_spans_when_present() {
        let with_spans = Counts {
            log_records: 100,
            error_logs: 9,
            spans: 10,
            error_spans: 1,
        };
        let s = sample(&with_spans, &with_spans);
        assert_eq!((s.exposure, s.errors), (10, 1));
        let logs_only = Counts {
            spans: 0,
            error_spans: 0,
            ..with_spans
        };
        let s = sample(&logs_only, &logs_only);
        assert_eq!((s.exposure, s.errors), (100, 9));
    }
}

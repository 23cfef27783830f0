//! Reads what [`super::analysis::judge`] needs about one deployment from the store:
//! its buckets since the deploy, the baseline's buckets before and since, classified
//! issues and sampled latencies.
//!
//! Exposure is server/root spans when both releases have traces (all spans for data
//! stored before server spans were counted), else requests counted by request-duration
//! metrics when both have those, else log records. Errors are the de-duplicated error
//! count when both releases have it, else error spans or error logs to match the
//! exposure; with metrics as exposure, the failed requests the metrics counted.

use std::time::Duration;

use crate::issues::{self, IssueStatus};
use bellwether_detect::Sample;
use bellwether_model::health::Verdict;
use bellwether_model::release::{bucket_start, Counts, Deployment, ReleaseKey};
use bellwether_store::{ReleaseStore, StoreError};

use crate::evaluate::analysis::{AnalysisInput, BaselineInput, Buckets};
use crate::evaluate::baseline::{choose_baseline, choose_method};
use crate::evaluate::dependencies::gather_dependencies;
use crate::evaluate::flags::gather_flags;
use crate::evaluate::settings::ServiceDetection;
use crate::evaluate::signatures::{IssueClass, IssueObservation};
use crate::evaluate::steady::{FingerprintSeries, MAX_FINGERPRINTS, MIN_STEADY_ERRORS};
use bellwether_store::verdicts::VerdictStore;

/// Longest sample message carried into evidence.
const MAX_SAMPLE_CHARS: usize = 300;

/// Which counts are exposure and errors for one comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measure {
    spans: bool,
    server: bool,
    metrics: bool,
    dedup: bool,
}

impl Measure {
    /// Chosen so that both releases are measured alike.
    pub fn choose(new: &Counts, baseline: Option<&Counts>) -> Self {
        let both = |f: fn(&Counts) -> bool| f(new) && baseline.is_none_or(f);
        let spans = both(|c| c.spans > 0);
        Measure {
            spans,
            server: spans && both(|c| c.server_spans > 0),
            metrics: !spans && both(|c| c.metric_requests > 0),
            dedup: both(|c| c.errors > 0 || (c.error_logs == 0 && c.error_spans == 0)),
        }
    }

    pub fn kind(self) -> &'static str {
        match (self.spans, self.server) {
            (true, true) => "server_spans",
            (true, false) => "spans",
            _ if self.metrics => "metric_requests",
            _ => "log_records",
        }
    }

    pub fn sample(self, c: &Counts) -> Sample {
        if self.metrics {
            return Sample {
                exposure: c.metric_requests,
                errors: c.metric_errors,
            };
        }
        let exposure = match (self.spans, self.server) {
            (true, true) => c.server_spans,
            (true, false) => c.spans,
            _ => c.log_records,
        };
        let errors = if self.dedup {
            c.errors
        } else if self.spans {
            c.error_spans
        } else {
            c.error_logs
        };
        Sample { exposure, errors }
    }
}

fn measured(buckets: Vec<(i64, Counts)>, m: Measure) -> Buckets {
    buckets
        .into_iter()
        .map(|(t, c)| (t, m.sample(&c)))
        .collect()
}

/// Reads the input of `deployment` at `now`; `same_env` are the deployments of its
/// service and environment. Also returns its totals and the baseline chosen.
pub fn gather(
    store: &dyn ReleaseStore,
    verdicts: &dyn VerdictStore,
    deployment: &Deployment,
    same_env: &[Deployment],
    settings: &ServiceDetection,
    now_unix_ms: i64,
) -> Result<(AnalysisInput, Counts, Option<Deployment>), StoreError> {
    let release = &deployment.release;
    let start = deployment.started_at_unix_ms;
    let deploy_bucket = bucket_start(start);
    let window = i64::try_from(settings.baseline_window.as_millis()).unwrap_or(i64::MAX);
    let totals = store.totals(release)?;
    let choice = choose_baseline(deployment, same_env, |key: &ReleaseKey| {
        verdicts.latest(key).ok().flatten().map(|h| h.verdict)
    });
    let baseline = choice.as_ref().map(|c| &c.deployment);
    let baseline_totals = match baseline {
        Some(b) => Some(store.totals(&b.release)?),
        None => None,
    };
    let measure = Measure::choose(&totals, baseline_totals.as_ref());
    let new = measured(store.buckets(release, deploy_bucket..i64::MAX)?, measure);
    let before_range = deploy_bucket.saturating_sub(window)..deploy_bucket;
    let mut method = super::analysis::Method::Cutover;
    let baseline_input = match &choice {
        Some(c) => {
            let key = &c.deployment.release;
            let before = measured(store.buckets(key, before_range.clone())?, measure);
            let since = measured(store.buckets(key, deploy_bucket..i64::MAX)?, measure);
            method = choose_method(&since, start, now_unix_ms);
            // The latency test's cut-off is fixed by the baseline's samples from before
            // the deploy (DETECTION.md G), also while it serves concurrently; only a
            // baseline that had no spans before the deploy falls back to its samples
            // since.
            let mut latency_ms = Vec::new();
            if measure.spans {
                latency_ms = store.latency_samples(key, before_range.clone())?;
                if latency_ms.is_empty() {
                    latency_ms = store.latency_samples(key, deploy_bucket..i64::MAX)?;
                }
            }
            let fingerprints =
                fingerprint_series(store, key, release, &before_range, deploy_bucket)?;
            Some(BaselineInput {
                version: key.version.clone(),
                before,
                since,
                latency_ms,
                note: c.note.clone(),
                fingerprints,
            })
        }
        None => None,
    };
    let latency_ms = if measure.spans && baseline_input.is_some() {
        store.latency_samples(release, deploy_bucket..i64::MAX)?
    } else {
        Vec::new()
    };
    let dependencies = match &choice {
        Some(c) => {
            let baseline_range = match method {
                super::analysis::Method::Concurrent => deploy_bucket..i64::MAX,
                super::analysis::Method::Cutover => before_range.clone(),
            };
            gather_dependencies(
                store,
                &c.deployment.release,
                baseline_range,
                release,
                deploy_bucket..i64::MAX,
            )?
        }
        None => Vec::new(),
    };
    let flags = gather_flags(store, release, deploy_bucket..i64::MAX)?;
    let issues = observe_issues(store, deployment, baseline)?;
    let elapsed = Duration::from_millis(u64::try_from(now_unix_ms - start).unwrap_or(0));
    let input = AnalysisInput {
        elapsed,
        exposure_kind: measure.kind(),
        method,
        baseline: baseline_input,
        new,
        issues,
        latency_ms,
        dependencies,
        flags,
    };
    Ok((input, totals, baseline.cloned()))
}

/// Per-bucket counts of the baseline's most frequent fingerprints (those with enough
/// errors to be steady), before and since the deploy, and of the same fingerprints in
/// the new release.
fn fingerprint_series(
    store: &dyn ReleaseStore,
    baseline: &ReleaseKey,
    release: &ReleaseKey,
    before: &std::ops::Range<i64>,
    deploy_bucket: i64,
) -> Result<Vec<FingerprintSeries>, StoreError> {
    let mut counts = store.release_issue_counts(baseline)?;
    counts.retain(|c| c.count >= MIN_STEADY_ERRORS);
    counts.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    counts.truncate(MAX_FINGERPRINTS);
    let since = deploy_bucket..i64::MAX;
    counts
        .into_iter()
        .map(|c| {
            Ok(FingerprintSeries {
                before: store.fingerprint_bucket_counts(
                    baseline,
                    &c.fingerprint,
                    before.clone(),
                )?,
                since: store.fingerprint_bucket_counts(baseline, &c.fingerprint, since.clone())?,
                new: store.fingerprint_bucket_counts(release, &c.fingerprint, since.clone())?,
                fingerprint: c.fingerprint,
            })
        })
        .collect()
}

/// The release's fingerprints, classified against its baseline and recent history,
/// with one sample message each for those that are not existing.
fn observe_issues(
    store: &dyn ReleaseStore,
    deployment: &Deployment,
    baseline: Option<&Deployment>,
) -> Result<Vec<IssueObservation>, StoreError> {
    let summaries = issues::classify_against(store, deployment, baseline.map(|b| &b.release))?;
    let mut out = Vec::with_capacity(summaries.len());
    for s in summaries {
        let class = match s.status {
            IssueStatus::New => IssueClass::New,
            IssueStatus::Regressed => IssueClass::Regressed,
            IssueStatus::Existing => IssueClass::Existing,
        };
        let sample = if class == IssueClass::Existing {
            None
        } else {
            store
                .issue_samples(&deployment.release, &s.fingerprint)?
                .into_iter()
                .next()
                .map(|sample| sample.message.chars().take(MAX_SAMPLE_CHARS).collect())
        };
        out.push(IssueObservation {
            fingerprint: s.fingerprint,
            title: s.title,
            class,
            count: s.count,
            instances: u32::try_from(s.instances.len()).unwrap_or(u32::MAX),
            sample,
        });
    }
    Ok(out)
}

/// How each release was last judged, for baseline selection.
pub fn latest_verdict(verdicts: &dyn VerdictStore, release: &ReleaseKey) -> Option<Verdict> {
    verdicts.latest(release).ok().flatten().map(|h| h.verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_releases_are_measured_alike() {
        let traced = Counts {
            log_records: 100,
            error_logs: 5,
            spans: 50,
            error_spans: 2,
            server_spans: 20,
            errors: 4,
            ..Counts::default()
        };
        let logs_only = Counts {
            spans: 0,
            error_spans: 0,
            server_spans: 0,
            ..traced
        };
        let m = Measure::choose(&traced, Some(&traced));
        assert_eq!(m.kind(), "server_spans");
        assert_eq!(
            m.sample(&traced),
            Sample {
                exposure: 20,
                errors: 4
            }
        );
        let m = Measure::choose(&traced, Some(&logs_only));
        assert_eq!(m.kind(), "log_records");
        assert_eq!(
            m.sample(&traced),
            Sample {
                exposure: 100,
                errors: 4
            }
        );
        // Data without de-duplicated errors falls back to raw error counts.
        let old = Counts {
            errors: 0,
            server_spans: 0,
            ..traced
        };
        let m = Measure::choose(&old, None);
        assert_eq!(m.kind(), "spans");
        assert_eq!(
            m.sample(&old),
            Sample {
                exposure: 50,
                errors: 2
            }
        );
    }

    #[test]
    fn traces_come_before_metrics_and_metrics_before_logs() {
        let metrics = Counts {
            log_records: 100,
            error_logs: 9,
            errors: 9,
            metric_requests: 40,
            metric_errors: 3,
            ..Counts::default()
        };
        let m = Measure::choose(&metrics, Some(&metrics));
        assert_eq!(m.kind(), "metric_requests");
        assert_eq!(
            m.sample(&metrics),
            Sample {
                exposure: 40,
                errors: 3
            }
        );
        let traced = Counts {
            spans: 30,
            server_spans: 30,
            errors: 2,
            ..metrics
        };
        assert_eq!(
            Measure::choose(&traced, Some(&traced)).kind(),
            "server_spans"
        );
        let logs_only = Counts {
            metric_requests: 0,
            metric_errors: 0,
            ..metrics
        };
        let m = Measure::choose(&metrics, Some(&logs_only));
        assert_eq!(m.kind(), "log_records", "both releases are measured alike");
    }
}

//! Retention: what is older than a configurable age is deleted by the collector's hourly
//! maintenance task, so the data directory stays bounded under constant load.
//!
//! | key (`[retention]`) | default | deletes |
//! |---|---|---|
//! | `buckets` | `30d` | per-release time buckets, latency samples and per-fingerprint bucket counts that started before |
//! | `samples` | `30d` | error samples (message, stack, trace id) taken before |
//! | `verdict_timeline` | `90d` | verdict timeline entries before (the latest verdict stays) |
//! | `resolved_alerts` | `30d` (at most 30d) | alerts resolved before |
//! | `interval` | `1h` | how often the task runs |
//!
//! Release totals, deployments and issue records stay: they are small and bounded by
//! [`crate::limits`] (services × versions × fingerprints). Every delete is a
//! compare-and-swap, so a value changed concurrently is left for the next run.

use std::time::Duration;

use serde::Deserialize;

use bellwether_alerting::alerts::engine::RETENTION_MS;
use bellwether_model::config::{parse_duration, ConfigError};
use bellwether_store::{SledStore, StoreError};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Validated retention ages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub buckets: Duration,
    pub samples: Duration,
    pub verdict_timeline: Duration,
    pub resolved_alerts: Duration,
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            buckets: 30 * DAY,
            samples: 30 * DAY,
            verdict_timeline: 90 * DAY,
            resolved_alerts: 30 * DAY,
            interval: Duration::from_secs(3600),
        }
    }
}

/// The `[retention]` table as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub buckets: Option<String>,
    pub samples: Option<String>,
    pub verdict_timeline: Option<String>,
    pub resolved_alerts: Option<String>,
    pub interval: Option<String>,
}

impl RawRetention {
    pub fn resolve(&self) -> Result<Retention, ConfigError> {
        let d = Retention::default();
        let age = |key: &str, raw: &Option<String>, default: Duration, min: Duration| {
            let Some(raw) = raw else {
                return Ok(default);
            };
            let invalid = |reason: String| ConfigError::Invalid {
                key: format!("retention.{key}"),
                value: raw.clone(),
                reason,
            };
            let value = parse_duration(raw).map_err(invalid)?;
            if value < min {
                return Err(invalid(format!("must be at least {}s", min.as_secs())));
            }
            Ok(value)
        };
        // Detection looks back over hours; shorter retention would blind it.
        let hour = Duration::from_secs(3600);
        let retention = Retention {
            buckets: age("buckets", &self.buckets, d.buckets, hour)?,
            samples: age("samples", &self.samples, d.samples, hour)?,
            verdict_timeline: age(
                "verdict_timeline",
                &self.verdict_timeline,
                d.verdict_timeline,
                hour,
            )?,
            resolved_alerts: age(
                "resolved_alerts",
                &self.resolved_alerts,
                d.resolved_alerts,
                hour,
            )?,
            interval: age(
                "interval",
                &self.interval,
                d.interval,
                Duration::from_secs(1),
            )?,
        };
        let alert_max = Duration::from_millis(RETENTION_MS as u64);
        if retention.resolved_alerts > alert_max {
            return Err(ConfigError::Invalid {
                key: "retention.resolved_alerts".to_owned(),
                value: self.resolved_alerts.clone().unwrap_or_default(),
                reason: "must be at most 30d".to_owned(),
            });
        }
        Ok(retention)
    }
}

/// What one run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub buckets: usize,
    pub latency: usize,
    pub issue_buckets: usize,
    pub samples: usize,
    pub timeline_entries: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.buckets + self.latency + self.issue_buckets + self.samples + self.timeline_entries
    }
}

/// The trees retention works on.
#[derive(Clone)]
pub struct Pruner {
    buckets: sled::Tree,
    latency: sled::Tree,
    issue_buckets: sled::Tree,
    issue_samples: sled::Tree,
    verdicts: sled::Tree,
}

fn ms(age: Duration) -> i64 {
    i64::try_from(age.as_millis()).unwrap_or(i64::MAX)
}

impl Pruner {
    /// `verdicts` is the evaluator's tree ([`bellwether_store::verdicts::SledVerdicts`]).
    pub fn open(store: &SledStore, verdicts: sled::Tree) -> Result<Self, StoreError> {
        Ok(Self {
            buckets: store.open_tree("buckets")?,
            latency: store.open_tree("latency")?,
            issue_buckets: store.open_tree("issue_buckets")?,
            issue_samples: store.open_tree("issue_samples")?,
            verdicts,
        })
    }

    /// Deletes what `retention` says is too old at `now_unix_ms` (blocks on IO).
    pub fn prune(&self, retention: &Retention, now_unix_ms: i64) -> Result<Pruned, StoreError> {
        let buckets_before = now_unix_ms.saturating_sub(ms(retention.buckets));
        let samples_before = now_unix_ms.saturating_sub(ms(retention.samples));
        let timeline_before = now_unix_ms.saturating_sub(ms(retention.verdict_timeline));
        Ok(Pruned {
            buckets: prune_by_bucket_start(&self.buckets, buckets_before)?,
            latency: prune_by_bucket_start(&self.latency, buckets_before)?,
            issue_buckets: prune_by_bucket_start(&self.issue_buckets, buckets_before)?,
            samples: prune_lists(&self.issue_samples, None, "unix_ms", samples_before)?,
            timeline_entries: prune_lists(
                &self.verdicts,
                Some("timeline"),
                "at_unix_ms",
                timeline_before,
            )?,
        })
    }
}

/// Bucket-keyed trees end every key with the bucket start (u64 big-endian).
fn prune_by_bucket_start(tree: &sled::Tree, before_unix_ms: i64) -> Result<usize, StoreError> {
    let mut removed = 0;
    for entry in tree.iter() {
        let (key, value) = entry?;
        let Some(tail) = key.len().checked_sub(8).and_then(|at| key.get(at..)) else {
            continue;
        };
        let mut start = [0u8; 8];
        start.copy_from_slice(tail);
        let start = i64::try_from(u64::from_be_bytes(start)).unwrap_or(i64::MAX);
        if start < before_unix_ms
            && tree
                .compare_and_swap(&key, Some(&value), None as Option<&[u8]>)?
                .is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// JSON values holding a list of entries with a time field (`unix_ms` of issue samples,
/// `at_unix_ms` of timeline entries): drops the old entries; a bare list left empty is
/// deleted. `field` names the list inside an object (None: the value is the list).
fn prune_lists(
    tree: &sled::Tree,
    field: Option<&str>,
    time: &str,
    before_unix_ms: i64,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for entry in tree.iter() {
        let (key, raw) = entry?;
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&raw) else {
            continue;
        };
        let list = match field {
            Some(field) => value.get_mut(field),
            None => Some(&mut value),
        };
        let Some(list) = list.and_then(serde_json::Value::as_array_mut) else {
            continue;
        };
        let before = list.len();
        list.retain(|e| {
            e.get(time)
                .and_then(serde_json::Value::as_i64)
                .is_none_or(|t| t >= before_unix_ms)
        });
        let dropped = before - list.len();
        if dropped == 0 {
            continue;
        }
        let replacement = if field.is_none() && list.is_empty() {
            None
        } else {
            Some(
                serde_json::to_vec(&value)
                    .map_err(|e| StoreError::Corrupt(format!("encoding: {e}")))?,
            )
        };
        if tree
            .compare_and_swap(&key, Some(&raw), replacement)?
            .is_ok()
        {
            removed += dropped;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_model::health::{Figures, ReleaseHealth, Verdict};
    use bellwether_model::issue::{IssueDelta, IssueSample, Occurrence};
    use bellwether_model::release::{Counts, ReleaseKey};
    use bellwether_store::verdicts::{SledVerdicts, VerdictStore};
    use bellwether_store::{IngestBatch, ReleaseDelta, ReleaseStore};

    const HOUR: i64 = 3_600_000;
    const NOW: i64 = 1_000 * 24 * HOUR;

    fn batch(release: &ReleaseKey, at: i64, fingerprint: &str) -> IngestBatch {
        let mut delta = ReleaseDelta::default();
        let counts = Counts {
            log_records: 1,
            error_logs: 1,
            errors: 1,
            ..Counts::default()
        };
        delta
            .buckets
            .entry(bellwether_model::release::bucket_start(at))
            .or_default()
            .add(&counts);
        let mut issue = IssueDelta::new("boom", "Error");
        let occurrence = Occurrence {
            bucket_start_unix_ms: bellwether_model::release::bucket_start(at),
            unix_ms: at,
            instance: "pod-1",
        };
        issue.record(&occurrence, || IssueSample {
            message: "boom".into(),
            unix_ms: at,
            ..IssueSample::default()
        });
        delta.issues.insert(fingerprint.to_owned(), issue);
        let mut batch = IngestBatch {
            received_at_unix_ms: at,
            ..IngestBatch::default()
        };
        batch.releases.insert(release.clone(), delta);
        batch
    }

    fn health(release: &ReleaseKey, verdict: Verdict, at: i64) -> ReleaseHealth {
        ReleaseHealth {
            release: release.clone(),
            verdict,
            evidence: Vec::new(),
            totals: Counts::default(),
            evaluated_at_unix_ms: at,
            started_at_unix_ms: 0,
            revision: 1,
            figures: Figures::default(),
        }
    }

    #[test]
    fn old_data_goes_recent_data_stays() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Sled(e.into()))?;
        let store = SledStore::open(dir.path())?;
        let verdicts = SledVerdicts::new(store.open_tree("verdicts")?);
        let release = ReleaseKey::new("api", "prod", "1");
        let old = NOW - 40 * 24 * HOUR;
        let recent = NOW - HOUR;
        store.apply(&batch(&release, old, "aaaa"))?;
        store.apply(&batch(&release, recent, "aaaa"))?;
        store.apply(&batch(&release, old, "bbbb"))?;
        verdicts.record(&health(&release, Verdict::Unhealthy, NOW - 100 * 24 * HOUR))?;
        verdicts.record(&health(&release, Verdict::Healthy, recent))?;

        let pruner = Pruner::open(&store, store.open_tree("verdicts")?)?;
        let pruned = pruner.prune(&Retention::default(), NOW)?;
        assert_eq!(pruned.buckets, 1, "{pruned:?}");
        assert_eq!(pruned.issue_buckets, 2, "{pruned:?}");
        assert_eq!(pruned.samples, 2, "{pruned:?}");
        assert_eq!(pruned.timeline_entries, 1, "{pruned:?}");

        let buckets = store.buckets(&release, 0..i64::MAX)?;
        assert_eq!(buckets.len(), 1);
        assert!(buckets.iter().all(|(start, _)| *start >= NOW - 2 * HOUR));
        // Totals stay all-time.
        assert_eq!(store.totals(&release)?.log_records, 3);
        let samples = store.issue_samples(&release, "aaaa")?;
        assert_eq!(
            samples.iter().map(|s| s.unix_ms).collect::<Vec<_>>(),
            [recent]
        );
        assert!(store.issue_samples(&release, "bbbb")?.is_empty());
        let timeline = verdicts.timeline(&release)?;
        assert_eq!(timeline.len(), 1);
        assert_eq!(
            verdicts.latest(&release)?.map(|h| h.verdict),
            Some(Verdict::Healthy)
        );

        // A second run finds nothing more.
        assert_eq!(pruner.prune(&Retention::default(), NOW)?.total(), 0);
        Ok(())
    }

    #[test]
    fn ages_are_validated() {
        let raw = RawRetention {
            buckets: Some("7d".into()),
            ..RawRetention::default()
        };
        assert_eq!(raw.resolve().ok().map(|r| r.buckets), Some(7 * DAY));
        for (raw, key) in [
            (
                RawRetention {
                    buckets: Some("1m".into()),
                    ..RawRetention::default()
                },
                "retention.buckets",
            ),
            (
                RawRetention {
                    samples: Some("soon".into()),
                    ..RawRetention::default()
                },
                "retention.samples",
            ),
            (
                RawRetention {
                    resolved_alerts: Some("60d".into()),
                    ..RawRetention::default()
                },
                "retention.resolved_alerts",
            ),
        ] {
            let err = raw
                .resolve()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(key), "{err}");
        }
    }
}

//! The issue and latency part of [`SledStore`](super::SledStore): written inside the
//! batch's transaction, read by prefix and range scans. Key layouts are in [`keys`].

use std::collections::BTreeMap;
use std::ops::Range;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::{decode_json, encode_json, keys, ReleaseDelta, Reservoir, StoreError};
use bellwether_model::issue::{FirstSeen, IssueCount};
use bellwether_model::issue::{
    IssueDelta, IssueRecord, IssueSample, LatencyBucket, ReleaseIssue,
    MAX_FINGERPRINTS_PER_RELEASE, MAX_INSTANCES_PER_RELEASE, MAX_SAMPLES, OTHER_FINGERPRINT,
    OTHER_TITLE,
};
use bellwether_model::release::ReleaseKey;

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

/// The trees one batch's issues and latency samples are written to.
pub(super) struct DetectionTrees<'a> {
    pub latency: &'a TransactionalTree,
    pub issues: &'a TransactionalTree,
    pub issue_releases: &'a TransactionalTree,
    pub issue_samples: &'a TransactionalTree,
    pub issue_buckets: &'a TransactionalTree,
    pub release_fingerprints: &'a TransactionalTree,
}

impl DetectionTrees<'_> {
    /// Writes the latency samples and issues of one release's delta.
    pub fn apply(
        &self,
        release: &ReleaseKey,
        release_key: &[u8],
        delta: &ReleaseDelta,
    ) -> TxResult<()> {
        for (start, reservoir) in &delta.latency {
            let key = keys::bucket_key(release_key, *start);
            let merged = match self.latency.get(&key)? {
                Some(raw) => {
                    let mut stored = Reservoir::decode(&raw).map_err(abort)?;
                    stored.merge(reservoir);
                    stored
                }
                None => reservoir.clone(),
            };
            self.latency.insert(key, merged.encode())?;
        }
        if delta.issues.is_empty() {
            return Ok(());
        }
        for (fingerprint, deltas) in self.admit(release_key, &delta.issues)? {
            self.apply_issue(release, release_key, fingerprint, &deltas)?;
        }
        Ok(())
    }

    /// Groups the batch's fingerprints by the fingerprint they are stored under: their own
    /// while the release is under its cap (or already knows them), else `other`.
    fn admit<'d>(
        &self,
        release_key: &[u8],
        issues: &'d BTreeMap<String, IssueDelta>,
    ) -> TxResult<BTreeMap<&'d str, Vec<&'d IssueDelta>>> {
        let stored = self.release_fingerprints.get(release_key)?;
        let mut distinct = match &stored {
            Some(raw) => keys::decode_u64(raw).map_err(abort)?,
            None => 0,
        };
        let before = distinct;
        let mut admitted: BTreeMap<&str, Vec<&IssueDelta>> = BTreeMap::new();
        for (fingerprint, issue) in issues {
            let known = fingerprint == OTHER_FINGERPRINT
                || self
                    .issue_releases
                    .get(keys::release_issue_key(release_key, fingerprint))?
                    .is_some();
            let target = if known {
                fingerprint.as_str()
            } else if distinct < u64::from(MAX_FINGERPRINTS_PER_RELEASE) {
                distinct += 1;
                fingerprint.as_str()
            } else {
                // Counted per attempt: a retried transaction may count twice.
                bellwether_model::limit::hit(
                    bellwether_model::limit::Limit::FingerprintsPerRelease,
                    1,
                );
                OTHER_FINGERPRINT
            };
            admitted.entry(target).or_default().push(issue);
        }
        if distinct != before {
            self.release_fingerprints
                .insert(release_key, &distinct.to_le_bytes()[..])?;
        }
        Ok(admitted)
    }

    fn apply_issue(
        &self,
        release: &ReleaseKey,
        release_key: &[u8],
        fingerprint: &str,
        deltas: &[&IssueDelta],
    ) -> TxResult<()> {
        let is_other = fingerprint == OTHER_FINGERPRINT;
        let issue_key = keys::release_issue_key(release_key, fingerprint);
        let mut issue = match self.issue_releases.get(&issue_key)? {
            Some(raw) => decode_json::<ReleaseIssue>("issue", &raw).map_err(abort)?,
            None => ReleaseIssue {
                fingerprint: fingerprint.to_owned(),
                first_seen_unix_ms: i64::MAX,
                last_seen_unix_ms: i64::MIN,
                ..ReleaseIssue::default()
            },
        };
        // Samples are the first ones offered, and every counted error offers one, so a
        // release issue with MAX_SAMPLES errors already has all its samples.
        let wants_samples = issue.count < MAX_SAMPLES as u64;
        let mut samples: Vec<IssueSample> = match (wants_samples, issue.count) {
            (false, _) | (true, 0) => Vec::new(),
            (true, _) => match self.issue_samples.get(&issue_key)? {
                Some(raw) => decode_json("issue samples", &raw).map_err(abort)?,
                None => Vec::new(),
            },
        };
        for delta in deltas {
            issue.count = issue.count.saturating_add(delta.count);
            issue.first_seen_unix_ms = issue.first_seen_unix_ms.min(delta.first_seen_unix_ms);
            issue.last_seen_unix_ms = issue.last_seen_unix_ms.max(delta.last_seen_unix_ms);
            for instance in &delta.instances {
                if issue.instances.len() >= MAX_INSTANCES_PER_RELEASE {
                    break;
                }
                issue.instances.insert(instance.clone());
            }
            if wants_samples {
                let room = MAX_SAMPLES.saturating_sub(samples.len());
                samples.extend(delta.samples.iter().take(room).cloned());
            }
            for (start, count) in &delta.buckets {
                let key = keys::bucket_key(&issue_key, *start);
                let stored = match self.issue_buckets.get(&key)? {
                    Some(raw) => keys::decode_u64(&raw).map_err(abort)?,
                    None => 0,
                };
                self.issue_buckets
                    .insert(key, &stored.saturating_add(*count).to_le_bytes()[..])?;
            }
        }
        let raw = encode_json("issue", &issue).map_err(abort)?;
        self.issue_releases.insert(&issue_key[..], raw)?;
        if wants_samples {
            let raw = encode_json("issue samples", &samples).map_err(abort)?;
            self.issue_samples.insert(&issue_key[..], raw)?;
        }
        self.update_record(release, fingerprint, is_other, &issue, deltas)
    }

    /// The service-wide record of the fingerprint: title, first and last seen, count.
    fn update_record(
        &self,
        release: &ReleaseKey,
        fingerprint: &str,
        is_other: bool,
        issue: &ReleaseIssue,
        deltas: &[&IssueDelta],
    ) -> TxResult<()> {
        let key = keys::issue_key(&release.service, fingerprint);
        let added: u64 = deltas.iter().fold(0, |n, d| n.saturating_add(d.count));
        let first_delta = deltas.first().copied();
        let mut record = match self.issues.get(&key)? {
            Some(raw) => decode_json::<IssueRecord>("issue record", &raw).map_err(abort)?,
            None => IssueRecord {
                fingerprint: fingerprint.to_owned(),
                title: if is_other {
                    OTHER_TITLE.to_owned()
                } else {
                    first_delta.map(|d| d.title.clone()).unwrap_or_default()
                },
                exception_type: if is_other {
                    String::new()
                } else {
                    first_delta
                        .map(|d| d.exception_type.clone())
                        .unwrap_or_default()
                },
                first_seen: FirstSeen {
                    unix_ms: i64::MAX,
                    environment: String::new(),
                    version: String::new(),
                },
                last_seen_unix_ms: i64::MIN,
                count: 0,
            },
        };
        if issue.first_seen_unix_ms < record.first_seen.unix_ms {
            record.first_seen = FirstSeen {
                unix_ms: issue.first_seen_unix_ms,
                environment: release.environment.clone(),
                version: release.version.clone(),
            };
        }
        record.last_seen_unix_ms = record.last_seen_unix_ms.max(issue.last_seen_unix_ms);
        record.count = record.count.saturating_add(added);
        let raw = encode_json("issue record", &record).map_err(abort)?;
        self.issues.insert(key, raw)?;
        Ok(())
    }
}

pub(super) fn release_issues(
    tree: &sled::Tree,
    release: &ReleaseKey,
) -> Result<Vec<ReleaseIssue>, StoreError> {
    let release_key = keys::release_key(release);
    let mut out = Vec::new();
    for entry in tree.scan_prefix(keys::release_issue_prefix(&release_key)) {
        let (_, raw) = entry?;
        out.push(decode_json("issue", &raw)?);
    }
    Ok(out)
}

pub(super) fn release_fingerprints(
    tree: &sled::Tree,
    release: &ReleaseKey,
) -> Result<Vec<String>, StoreError> {
    let release_key = keys::release_key(release);
    let mut out = Vec::new();
    for key in tree
        .scan_prefix(keys::release_issue_prefix(&release_key))
        .keys()
    {
        out.push(keys::fingerprint_of(&key?, release_key.len())?);
    }
    Ok(out)
}

pub(super) fn release_issue_counts(
    tree: &sled::Tree,
    release: &ReleaseKey,
) -> Result<Vec<IssueCount>, StoreError> {
    Ok(release_issues(tree, release)?
        .into_iter()
        .map(|issue| IssueCount {
            instances: u32::try_from(issue.instances.len()).unwrap_or(u32::MAX),
            fingerprint: issue.fingerprint,
            count: issue.count,
        })
        .collect())
}

pub(super) fn issue_samples(
    tree: &sled::Tree,
    release: &ReleaseKey,
    fingerprint: &str,
) -> Result<Vec<IssueSample>, StoreError> {
    let key = keys::release_issue_key(&keys::release_key(release), fingerprint);
    match tree.get(key)? {
        Some(raw) => decode_json("issue samples", &raw),
        None => Ok(Vec::new()),
    }
}

pub(super) fn issue(
    tree: &sled::Tree,
    service: &str,
    fingerprint: &str,
) -> Result<Option<IssueRecord>, StoreError> {
    tree.get(keys::issue_key(service, fingerprint))?
        .map(|raw| decode_json("issue record", &raw))
        .transpose()
}

pub(super) fn fingerprint_bucket_counts(
    tree: &sled::Tree,
    release: &ReleaseKey,
    fingerprint: &str,
    range: Range<i64>,
) -> Result<Vec<(i64, u64)>, StoreError> {
    let prefix = keys::release_issue_key(&keys::release_key(release), fingerprint);
    let mut out = Vec::new();
    let Some(span) = keys::bucket_range(&prefix, &range) else {
        return Ok(out);
    };
    for entry in tree.range(span) {
        let (key, raw) = entry?;
        out.push((
            keys::bucket_start_of(&key, prefix.len())?,
            keys::decode_u64(&raw)?,
        ));
    }
    Ok(out)
}

pub(super) fn latency_buckets(
    tree: &sled::Tree,
    release: &ReleaseKey,
    range: Range<i64>,
) -> Result<Vec<LatencyBucket>, StoreError> {
    let release_key = keys::release_key(release);
    let mut out = Vec::new();
    let Some(span) = keys::bucket_range(&release_key, &range) else {
        return Ok(out);
    };
    for entry in tree.range(span) {
        let (key, raw) = entry?;
        let reservoir = Reservoir::decode(&raw)?;
        out.push(LatencyBucket {
            start_unix_ms: keys::bucket_start_of(&key, release_key.len())?,
            seen: reservoir.seen,
            samples_ms: reservoir.millis(),
        });
    }
    Ok(out)
}

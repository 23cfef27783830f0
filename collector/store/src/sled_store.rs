//! [`ReleaseStore`] over sled: one database directory, one transaction per ingest batch.

use std::ops::Range;
use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use crate::sled_dependencies::{self, DependencyTrees};
use crate::sled_issues::{self, DetectionTrees};
use crate::{from_tx, keys};
use crate::{ApplyOutcome, IngestBatch, ReleaseStore, StoreError, WriteGate};
use bellwether_model::dependency::{DependencyBucket, MAX_DEPENDENCIES, MAX_FLAG_VARIANTS, OTHER};
use bellwether_model::issue::{IssueCount, IssueRecord, IssueSample, LatencyBucket, ReleaseIssue};
use bellwether_model::release::{
    Counts, Deployment, DeploymentFilter, DeploymentRecord, ReleaseKey,
};

/// The sled-backed store. Cloning shares the same database.
#[derive(Clone, Debug)]
pub struct SledStore {
    db: sled::Db,
    deployments: sled::Tree,
    buckets: sled::Tree,
    totals: sled::Tree,
    batches: sled::Tree,
    latency: sled::Tree,
    issues: sled::Tree,
    issue_releases: sled::Tree,
    issue_samples: sled::Tree,
    issue_buckets: sled::Tree,
    release_fingerprints: sled::Tree,
    dependencies: sled::Tree,
    dependency_names: sled::Tree,
    flags: sled::Tree,
    flag_names: sled::Tree,
    flush_each_write: bool,
    gate: WriteGate,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`; every write is flushed before it returns.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, true)
    }

    /// Like [`SledStore::open`]; with `flush_each_write` false, writes reach disk with
    /// sled's periodic background flush instead (faster, but an acknowledged batch can
    /// be lost in a crash). Benchmarks use that, and a cluster node's replica, whose
    /// source of truth is the replicated stream it reads again from its last recorded
    /// sequence (recorded in the same store after the writes it follows, so a crash
    /// loses the two together and the batch ids make the replay count once).
    pub fn open_with(dir: &Path, flush_each_write: bool) -> Result<Self, StoreError> {
        let db = super::open_sled(dir)?;
        Ok(Self {
            deployments: db.open_tree("deployments")?,
            buckets: db.open_tree("buckets")?,
            totals: db.open_tree("totals")?,
            batches: db.open_tree("batches")?,
            latency: db.open_tree("latency")?,
            issues: db.open_tree("issues")?,
            issue_releases: db.open_tree("issue_releases")?,
            issue_samples: db.open_tree("issue_samples")?,
            issue_buckets: db.open_tree("issue_buckets")?,
            release_fingerprints: db.open_tree("release_fingerprints")?,
            dependencies: db.open_tree("dependencies")?,
            dependency_names: db.open_tree("dependency_names")?,
            flags: db.open_tree("flag_variants")?,
            flag_names: db.open_tree("flag_variant_names")?,
            db,
            flush_each_write,
            gate: WriteGate::new(),
        })
    }

    /// Another tree of the same database, for state kept beside the releases (verdicts).
    pub fn open_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// The gate this store's writes pass; give it to the other stores of the data
    /// directory, so that a backup holds them all still at once.
    pub fn gate(&self) -> WriteGate {
        self.gate.clone()
    }

    /// The database, for a backup.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

fn decode_deployment(raw: &[u8]) -> Result<Deployment, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt(format!("deployment: {e}")))
}

fn encode_deployment(deployment: &Deployment) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(deployment).map_err(|e| StoreError::Corrupt(format!("deployment: {e}")))
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

/// Adds `delta` to the counts stored under `key`.
fn add_counts(
    tree: &TransactionalTree,
    key: &[u8],
    delta: &Counts,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let mut counts = match tree.get(key)? {
        Some(raw) => keys::decode_counts(&raw).map_err(abort)?,
        None => Counts::default(),
    };
    counts.add(delta);
    tree.insert(key, &keys::encode_counts(&counts)[..])?;
    Ok(())
}

impl ReleaseStore for SledStore {
    fn apply(&self, batch: &IngestBatch) -> Result<ApplyOutcome, StoreError> {
        let _pass = self.gate.pass();
        let outcome = (
            &self.deployments,
            &self.buckets,
            &self.totals,
            &self.batches,
            &self.latency,
            &self.issues,
            &self.issue_releases,
            &self.issue_samples,
            &self.issue_buckets,
            &self.release_fingerprints,
            &self.dependencies,
            &self.dependency_names,
            &self.flags,
            &self.flag_names,
        )
            .transaction(|trees| {
                let (deployments, buckets, totals, batches) =
                    (&trees.0, &trees.1, &trees.2, &trees.3);
                let detection = DetectionTrees {
                    latency: &trees.4,
                    issues: &trees.5,
                    issue_releases: &trees.6,
                    issue_samples: &trees.7,
                    issue_buckets: &trees.8,
                    release_fingerprints: &trees.9,
                };
                let dependencies = DependencyTrees {
                    calls: &trees.10,
                    names: &trees.11,
                    max: MAX_DEPENDENCIES,
                    overflow: Some(OTHER),
                };
                let flags = DependencyTrees {
                    calls: &trees.12,
                    names: &trees.13,
                    max: MAX_FLAG_VARIANTS,
                    overflow: None,
                };
                if let Some(id) = &batch.batch_id {
                    if batches.get(id.as_bytes())?.is_some() {
                        return Ok(ApplyOutcome::Duplicate);
                    }
                    let applied_at = batch.received_at_unix_ms.max(0) as u64;
                    batches.insert(id.as_bytes(), &applied_at.to_be_bytes()[..])?;
                }
                for (release, delta) in &batch.releases {
                    let release_key = keys::release_key(release);
                    match deployments.get(&release_key)? {
                        None => {
                            let detected = Deployment::detected(
                                release.clone(),
                                batch.received_at_unix_ms,
                                &delta.identity,
                            );
                            let raw = encode_deployment(&detected).map_err(abort)?;
                            deployments.insert(&release_key[..], raw)?;
                        }
                        Some(raw) => {
                            let mut deployment = decode_deployment(&raw).map_err(abort)?;
                            if deployment.fill_identity(&delta.identity) {
                                let raw = encode_deployment(&deployment).map_err(abort)?;
                                deployments.insert(&release_key[..], raw)?;
                            }
                        }
                    }
                    let mut total = Counts::default();
                    for (start, counts) in &delta.buckets {
                        add_counts(buckets, &keys::bucket_key(&release_key, *start), counts)?;
                        total.add(counts);
                    }
                    add_counts(totals, &release_key, &total)?;
                    detection.apply(release, &release_key, delta)?;
                    dependencies.apply(&release_key, &delta.dependencies)?;
                    flags.apply(&release_key, &delta.flags)?;
                }
                Ok(ApplyOutcome::Applied)
            })
            .map_err(from_tx)?;
        if outcome == ApplyOutcome::Applied && self.flush_each_write {
            // The batch is acknowledged only after this returns: make it survive a crash.
            self.db.flush()?;
        }
        Ok(outcome)
    }

    fn record_deployment(
        &self,
        record: &DeploymentRecord,
        now_unix_ms: i64,
    ) -> Result<Deployment, StoreError> {
        let key = keys::release_key(&record.release);
        let _pass = self.gate.pass();
        let stored = self
            .deployments
            .transaction(|tree| {
                let deployment = match tree.get(&key)? {
                    Some(raw) => {
                        let mut deployment = decode_deployment(&raw).map_err(abort)?;
                        deployment.merge_record(record);
                        deployment
                    }
                    None => Deployment::recorded(record, now_unix_ms),
                };
                let raw = encode_deployment(&deployment).map_err(abort)?;
                tree.insert(&key[..], raw)?;
                Ok(deployment)
            })
            .map_err(from_tx)?;
        if self.flush_each_write {
            self.db.flush()?;
        }
        Ok(stored)
    }

    fn deployment(&self, release: &ReleaseKey) -> Result<Option<Deployment>, StoreError> {
        self.deployments
            .get(keys::release_key(release))?
            .map(|raw| decode_deployment(&raw))
            .transpose()
    }

    fn deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>, StoreError> {
        let iter = match &filter.service {
            Some(service) => self
                .deployments
                .scan_prefix(keys::service_prefix(service, filter.environment.as_deref())),
            None => self.deployments.iter(),
        };
        let mut out = Vec::new();
        for entry in iter {
            let (_, raw) = entry?;
            let deployment = decode_deployment(&raw)?;
            let release = &deployment.release;
            let matches = |wanted: &Option<String>, actual: &str| {
                wanted.as_deref().is_none_or(|wanted| wanted == actual)
            };
            if matches(&filter.environment, &release.environment)
                && matches(&filter.version, &release.version)
            {
                out.push(deployment);
            }
        }
        Ok(out)
    }

    fn totals(&self, release: &ReleaseKey) -> Result<Counts, StoreError> {
        match self.totals.get(keys::release_key(release))? {
            Some(raw) => keys::decode_counts(&raw),
            None => Ok(Counts::default()),
        }
    }

    fn buckets(
        &self,
        release: &ReleaseKey,
        range: Range<i64>,
    ) -> Result<Vec<(i64, Counts)>, StoreError> {
        let release_key = keys::release_key(release);
        let mut out = Vec::new();
        let Some(span) = keys::bucket_range(&release_key, &range) else {
            return Ok(out);
        };
        for entry in self.buckets.range(span) {
            let (key, raw) = entry?;
            let start = keys::bucket_start_of(&key, release_key.len())?;
            out.push((start, keys::decode_counts(&raw)?));
        }
        Ok(out)
    }

    fn release_issue_counts(&self, release: &ReleaseKey) -> Result<Vec<IssueCount>, StoreError> {
        sled_issues::release_issue_counts(&self.issue_releases, release)
    }

    fn release_fingerprints(&self, release: &ReleaseKey) -> Result<Vec<String>, StoreError> {
        sled_issues::release_fingerprints(&self.issue_releases, release)
    }

    fn release_issues(&self, release: &ReleaseKey) -> Result<Vec<ReleaseIssue>, StoreError> {
        sled_issues::release_issues(&self.issue_releases, release)
    }

    fn issue_samples(
        &self,
        release: &ReleaseKey,
        fingerprint: &str,
    ) -> Result<Vec<IssueSample>, StoreError> {
        sled_issues::issue_samples(&self.issue_samples, release, fingerprint)
    }

    fn issue(&self, service: &str, fingerprint: &str) -> Result<Option<IssueRecord>, StoreError> {
        sled_issues::issue(&self.issues, service, fingerprint)
    }

    fn fingerprint_bucket_counts(
        &self,
        release: &ReleaseKey,
        fingerprint: &str,
        range: Range<i64>,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        sled_issues::fingerprint_bucket_counts(&self.issue_buckets, release, fingerprint, range)
    }

    fn dependency_buckets(
        &self,
        release: &ReleaseKey,
        range: Range<i64>,
    ) -> Result<Vec<DependencyBucket>, StoreError> {
        sled_dependencies::dependency_buckets(&self.dependencies, release, range)
    }

    fn flag_buckets(
        &self,
        release: &ReleaseKey,
        range: Range<i64>,
    ) -> Result<Vec<DependencyBucket>, StoreError> {
        sled_dependencies::dependency_buckets(&self.flags, release, range)
    }

    fn latency_buckets(
        &self,
        release: &ReleaseKey,
        range: Range<i64>,
    ) -> Result<Vec<LatencyBucket>, StoreError> {
        sled_issues::latency_buckets(&self.latency, release, range)
    }

    fn prune_batches(&self, before_unix_ms: i64) -> Result<usize, StoreError> {
        let _pass = self.gate.pass();
        let mut removed = 0;
        for entry in self.batches.iter() {
            let (key, raw) = entry?;
            let applied_at = <[u8; 8]>::try_from(raw.as_ref())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if (applied_at as i64) < before_unix_ms {
                self.batches.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "sled_store_tests.rs"]
mod tests;

//! The dependency part of [`SledStore`](super::SledStore): calls per release, bucket and
//! dependency (`<bucket key><name>` → [`DependencyCounts`]), written inside the ingest
//! transaction, with the names each release has (at most a bound; calls to any further
//! one count under `other`). Requests per feature-flag variant are kept the same way, in
//! trees of their own.

use std::ops::Range;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use std::collections::BTreeMap;

use crate::{keys, StoreError};
use bellwether_model::dependency::{DependencyBucket, DependencyCounts};
use bellwether_model::release::ReleaseKey;

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn corrupt(what: String) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(StoreError::Corrupt(what))
}

/// The trees one batch's dependency calls are written to.
pub(super) struct DependencyTrees<'a> {
    /// `<bucket key><name>` → counts.
    pub calls: &'a TransactionalTree,
    /// Release key → the JSON list of its dependency names, in the order first seen.
    pub names: &'a TransactionalTree,
    /// Names kept per release; calls under further ones count as `overflow`, or not at
    /// all when that is None.
    pub max: usize,
    pub overflow: Option<&'static str>,
}

impl DependencyTrees<'_> {
    /// Adds `counts` (bucket start → name → counts) of one release.
    pub fn apply(
        &self,
        release_key: &[u8],
        counts: &BTreeMap<i64, BTreeMap<String, DependencyCounts>>,
    ) -> TxResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = match self.names.get(release_key)? {
            Some(raw) => serde_json::from_slice(&raw)
                .map_err(|e| corrupt(format!("dependency names: {e}")))?,
            None => Vec::new(),
        };
        let known = names.len();
        for (start, calls) in counts {
            let bucket = keys::bucket_key(release_key, *start);
            for (name, counts) in calls {
                let name = if Some(name.as_str()) == self.overflow || names.contains(name) {
                    name.as_str()
                } else if names.len() < self.max {
                    names.push(name.clone());
                    name.as_str()
                } else if let Some(overflow) = self.overflow {
                    overflow
                } else {
                    continue;
                };
                let mut key = bucket.clone();
                key.extend_from_slice(name.as_bytes());
                let mut stored = match self.calls.get(&key)? {
                    Some(raw) => DependencyCounts::decode(&raw).ok_or_else(|| {
                        corrupt(format!("dependency counts of {} bytes", raw.len()))
                    })?,
                    None => DependencyCounts::default(),
                };
                stored.add(counts);
                self.calls.insert(key, &stored.encode()[..])?;
            }
        }
        if names.len() != known {
            let raw = serde_json::to_vec(&names)
                .map_err(|e| corrupt(format!("dependency names: {e}")))?;
            self.names.insert(release_key, raw)?;
        }
        Ok(())
    }
}

/// Calls of `release` to each dependency per bucket whose start lies in `range`, oldest
/// bucket first.
pub(super) fn dependency_buckets(
    tree: &sled::Tree,
    release: &ReleaseKey,
    range: Range<i64>,
) -> Result<Vec<DependencyBucket>, StoreError> {
    let release_key = keys::release_key(release);
    let mut out = Vec::new();
    let Some(span) = keys::bucket_range(&release_key, &range) else {
        return Ok(out);
    };
    let start_at = release_key.len() + 1;
    for entry in tree.range(span) {
        let (key, raw) = entry?;
        let bad = || StoreError::Corrupt(format!("dependency key of {} bytes", key.len()));
        let start: [u8; 8] = key
            .get(start_at..start_at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        let name = key.get(start_at + 8..).ok_or_else(bad)?;
        let counts = DependencyCounts::decode(&raw).ok_or_else(|| {
            StoreError::Corrupt(format!("dependency counts of {} bytes", raw.len()))
        })?;
        out.push(DependencyBucket {
            bucket_start_unix_ms: i64::try_from(u64::from_be_bytes(start)).unwrap_or(i64::MAX),
            dependency: String::from_utf8_lossy(name).into_owned(),
            counts,
        });
    }
    Ok(out)
}

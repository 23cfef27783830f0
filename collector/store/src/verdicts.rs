//! Verdicts that outlive a restart: per release, the latest [`ReleaseHealth`] and a
//! timeline of verdict changes. [`VerdictStore`] is the seam; [`SledVerdicts`] keeps them
//! in the `verdicts` tree of the collector's database, keyed `service \0 environment \0
//! version` so that all of one service is one key range.

use serde::{Deserialize, Serialize};

use crate::{StoreError, WriteGate};
use bellwether_model::health::{headline, ReleaseHealth, TimelineEntry};
use bellwether_model::release::ReleaseKey;

/// Timeline entries kept per release (oldest dropped first).
pub const MAX_TIMELINE: usize = 500;

/// What is kept per release, in every backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) latest: ReleaseHealth,
    pub(crate) timeline: Vec<TimelineEntry>,
}

impl Stored {
    /// `health` recorded over `previous`: the latest replaced, a timeline entry added
    /// when the verdict changed, the oldest dropped past [`MAX_TIMELINE`].
    pub(crate) fn next(previous: Option<Stored>, health: &ReleaseHealth) -> Stored {
        let (previous, mut timeline) = match previous {
            Some(stored) => (Some(stored.latest.verdict), stored.timeline),
            None => (None, Vec::new()),
        };
        if previous != Some(health.verdict) {
            timeline.push(TimelineEntry {
                at_unix_ms: health.evaluated_at_unix_ms,
                verdict: health.verdict,
                summary: headline(health),
                revision: health.revision,
            });
            if timeline.len() > MAX_TIMELINE {
                let excess = timeline.len() - MAX_TIMELINE;
                timeline.drain(..excess);
            }
        }
        Stored {
            latest: health.clone(),
            timeline,
        }
    }
}

/// Durable verdict history.
pub trait VerdictStore: Send + Sync + 'static {
    fn latest(&self, release: &ReleaseKey) -> Result<Option<ReleaseHealth>, StoreError>;
    fn timeline(&self, release: &ReleaseKey) -> Result<Vec<TimelineEntry>, StoreError>;
    /// Saves `health` as the latest; appends a timeline entry when its verdict differs
    /// from the previous latest (or there was none).
    fn record(&self, health: &ReleaseHealth) -> Result<(), StoreError>;
}

/// [`VerdictStore`] over a sled tree.
#[derive(Clone, Debug)]
pub struct SledVerdicts {
    tree: sled::Tree,
    gate: WriteGate,
}

impl SledVerdicts {
    pub fn new(tree: sled::Tree) -> Self {
        Self {
            tree,
            gate: WriteGate::new(),
        }
    }

    /// Writes pass `gate` (the release store's, so that a backup holds both still).
    pub fn gated(mut self, gate: WriteGate) -> Self {
        self.gate = gate;
        self
    }

    fn load(&self, release: &ReleaseKey) -> Result<Option<Stored>, StoreError> {
        match self.tree.get(key(release))? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("verdict: {e}"))),
        }
    }
}

fn key(release: &ReleaseKey) -> Vec<u8> {
    let mut key = Vec::new();
    for (i, part) in [&release.service, &release.environment, &release.version]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            key.push(0);
        }
        key.extend_from_slice(part.as_bytes());
    }
    key
}

impl VerdictStore for SledVerdicts {
    fn latest(&self, release: &ReleaseKey) -> Result<Option<ReleaseHealth>, StoreError> {
        Ok(self.load(release)?.map(|s| s.latest))
    }

    fn timeline(&self, release: &ReleaseKey) -> Result<Vec<TimelineEntry>, StoreError> {
        Ok(self.load(release)?.map(|s| s.timeline).unwrap_or_default())
    }

    fn record(&self, health: &ReleaseHealth) -> Result<(), StoreError> {
        let _pass = self.gate.pass();
        let stored = Stored::next(self.load(&health.release)?, health);
        let raw = serde_json::to_vec(&stored)
            .map_err(|e| StoreError::Corrupt(format!("encoding verdict: {e}")))?;
        self.tree.insert(key(&health.release), raw)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_model::health::{Evidence, Figures, Verdict};
    use bellwether_model::release::Counts;

    fn health(verdict: Verdict, at: i64, revision: u64) -> ReleaseHealth {
        ReleaseHealth {
            release: ReleaseKey::new("api", "prod", "2"),
            verdict,
            evidence: vec![Evidence::new("needed", format!("at {at}"))],
            totals: Counts::default(),
            evaluated_at_unix_ms: at,
            started_at_unix_ms: 0,
            revision,
            figures: Figures::default(),
        }
    }

    #[test]
    fn latest_and_timeline_survive_reopening() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        {
            let db = sled::open(dir.path())?;
            let store = SledVerdicts::new(db.open_tree("verdicts")?);
            store.record(&health(Verdict::Pending, 1, 1))?;
            store.record(&health(Verdict::Pending, 2, 2))?;
            store.record(&health(Verdict::Unhealthy, 3, 3))?;
            db.flush()?;
        }
        let db = sled::open(dir.path())?;
        let store = SledVerdicts::new(db.open_tree("verdicts")?);
        let key = ReleaseKey::new("api", "prod", "2");
        let timeline = store.timeline(&key)?;
        let verdicts: Vec<(i64, Verdict)> =
            timeline.iter().map(|e| (e.at_unix_ms, e.verdict)).collect();
        assert_eq!(
            verdicts,
            vec![(1, Verdict::Pending), (3, Verdict::Unhealthy)]
        );
        assert_eq!(store.latest(&key)?.map(|h| h.revision), Some(3));
        assert_eq!(store.latest(&ReleaseKey::new("api", "prod", "3"))?, None);
        Ok(())
    }
}

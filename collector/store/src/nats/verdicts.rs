//! [`VerdictStore`] over the `<prefix>_verdicts` bucket: one key per release
//! (`service.environment.version`, each a [`token`]) holding the latest health and the
//! timeline, as in sled.

use async_nats::jetstream::kv;
use bytes::Bytes;

use super::{nats_error, read, token, write_if_unchanged, Nats};
use crate::verdicts::{Stored, VerdictStore};
use crate::{decode_json, encode_json, StoreError};
use bellwether_model::health::{ReleaseHealth, TimelineEntry};
use bellwether_model::release::ReleaseKey;

/// Verdicts shared by every node of a cluster.
#[derive(Clone)]
pub struct KvVerdicts {
    nats: Nats,
    bucket: kv::Store,
    /// One read-modify-write at a time from this node (see the module doc of [`super`]).
    recording: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl KvVerdicts {
    pub fn open(nats: &Nats) -> Result<Self, StoreError> {
        Ok(Self {
            bucket: nats.bucket("verdicts")?,
            nats: nats.clone(),
            recording: Default::default(),
        })
    }

    fn load(&self, release: &ReleaseKey) -> Result<Option<Stored>, StoreError> {
        let bucket = self.bucket.clone();
        let key = key(release);
        let raw = self.nats.run("reading a verdict", async move {
            bucket
                .get(key)
                .await
                .map_err(|e| nats_error("reading a verdict", e))
        })?;
        raw.map(|raw| decode_json("verdict", &raw)).transpose()
    }
}

fn key(release: &ReleaseKey) -> String {
    format!(
        "{}.{}.{}",
        token(&release.service),
        token(&release.environment),
        token(&release.version)
    )
}

impl VerdictStore for KvVerdicts {
    fn latest(&self, release: &ReleaseKey) -> Result<Option<ReleaseHealth>, StoreError> {
        Ok(self.load(release)?.map(|s| s.latest))
    }

    fn timeline(&self, release: &ReleaseKey) -> Result<Vec<TimelineEntry>, StoreError> {
        Ok(self.load(release)?.map(|s| s.timeline).unwrap_or_default())
    }

    fn record(&self, health: &ReleaseHealth) -> Result<(), StoreError> {
        let bucket = self.bucket.clone();
        let key = key(&health.release);
        let health = health.clone();
        let recording = std::sync::Arc::clone(&self.recording);
        self.nats.run("recording a verdict", async move {
            let _one_at_a_time = recording.lock().await;
            // Read, extend the timeline, write back only if nobody wrote in between.
            loop {
                let (entry, value) = read(&bucket, &key).await?;
                let previous = value.map(|v| decode_json("verdict", &v)).transpose()?;
                let stored = Stored::next(previous, &health);
                let raw = Bytes::from(encode_json("encoding verdict", &stored)?);
                if write_if_unchanged(&bucket, &key, entry.as_ref(), raw).await? {
                    return Ok(());
                }
            }
        })
    }
}

//! Ingest through one JetStream stream, partitioned by service.
//!
//! Any node summarizes an OTLP request as a single collector does, then
//! [`IngestLog::publish`] splits the summary by service and publishes each part on
//! `<prefix>.ingest.<partition>`, with `Nats-Msg-Id` = `<batch id>/<service>`: a re-sent
//! batch is dropped by the stream within its duplicate window (and, past it, by the
//! owner's store, which keeps applied batch ids). The sender is answered only after the
//! stream acknowledged every part.
//!
//! The owner of a partition reads its subject in order ([`IngestLog::follow`]) and
//! applies each part to its own store; the store's applied batch ids make a part applied
//! twice (a takeover that replays from an older sequence) count once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use bellwether_model::release::ReleaseKey;
use bellwether_store::{ApplyOutcome, IngestBatch, ReleaseDelta, ReleaseStore};

use crate::partition_of;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("ingest stream: {0}")]
    Stream(String),
    #[error("ingest part not understood: {0}")]
    Decode(String),
    #[error("store: {0}")]
    Store(String),
}

/// How the ingest stream is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestSettings {
    pub prefix: String,
    pub partitions: u32,
    pub replicas: usize,
    /// How long the stream drops a message whose id it has seen.
    pub duplicate_window: Duration,
    /// How long parts are kept, so that a new owner can replay what it has not applied.
    pub max_age: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            prefix: "bellwether".to_owned(),
            partitions: 64,
            replicas: 3,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// One service's part of a batch, as the stream carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Part {
    batch_id: Option<String>,
    received_at_unix_ms: i64,
    releases: Vec<(ReleaseKey, ReleaseDelta)>,
}

/// What publishing a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub parts: usize,
    /// Parts the stream had seen before (a re-sent batch).
    pub duplicates: usize,
}

#[derive(Clone)]
pub struct IngestLog {
    jetstream: jetstream::Context,
    stream: stream::Stream,
    settings: IngestSettings,
}

impl IngestLog {
    /// Opens the stream `<prefix>_ingest`, making it if it is missing.
    pub async fn open(
        client: async_nats::Client,
        settings: IngestSettings,
    ) -> Result<Self, IngestError> {
        let jetstream = jetstream::new(client);
        let name = format!("{}_ingest", settings.prefix);
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{}.ingest.*", settings.prefix)],
                duplicate_window: settings.duplicate_window,
                max_age: settings.max_age,
                num_replicas: settings.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| IngestError::Stream(format!("opening {name}: {e}")))?;
        Ok(Self {
            jetstream,
            stream,
            settings,
        })
    }

    /// Splits `batch` by service and publishes each part to its partition; returns once
    /// the stream acknowledged them all (an error means the sender should retry: parts
    /// already stored are dropped as duplicates then).
    pub async fn publish(&self, batch: &IngestBatch) -> Result<Published, IngestError> {
        let mut by_service: BTreeMap<&str, Vec<(ReleaseKey, ReleaseDelta)>> = BTreeMap::new();
        for (release, delta) in &batch.releases {
            by_service
                .entry(release.service.as_str())
                .or_default()
                .push((release.clone(), delta.clone()));
        }
        let mut acks = Vec::with_capacity(by_service.len());
        for (service, releases) in by_service {
            let part_id = batch.batch_id.as_ref().map(|id| format!("{id}/{service}"));
            let part = Part {
                batch_id: part_id.clone(),
                received_at_unix_ms: batch.received_at_unix_ms,
                releases,
            };
            let body = serde_json::to_vec(&part).map_err(|e| IngestError::Decode(e.to_string()))?;
            let subject = format!(
                "{}.ingest.{}",
                self.settings.prefix,
                partition_of(service, self.settings.partitions)
            );
            let mut headers = async_nats::HeaderMap::new();
            if let Some(id) = &part_id {
                headers.insert("Nats-Msg-Id", id.as_str());
            }
            let ack = self
                .jetstream
                .publish_with_headers(subject, headers, Bytes::from(body))
                .await
                .map_err(|e| IngestError::Stream(format!("publishing: {e}")))?;
            acks.push(ack);
        }
        let mut published = Published::default();
        for ack in acks {
            let ack = ack
                .await
                .map_err(|e| IngestError::Stream(format!("not acknowledged: {e}")))?;
            published.parts += 1;
            if ack.duplicate {
                published.duplicates += 1;
            }
        }
        Ok(published)
    }

    /// The name of the server that leads the stream now.
    pub async fn leader(&self) -> Result<String, IngestError> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| IngestError::Stream(format!("stream info: {e}")))?;
        info.cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .ok_or_else(|| IngestError::Stream("the stream has no leader".into()))
    }

    /// Applies the parts of `partition` from stream sequence `from` to `store`, in
    /// order, until the subject has nothing more or `stop` resolves; returns the last
    /// sequence applied (0 if none) and how many parts counted (not duplicates).
    pub async fn follow(
        &self,
        partition: u32,
        from: u64,
        store: Arc<dyn ReleaseStore>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(u64, u64), IngestError> {
        tokio::pin!(stop);
        // Right after a server is lost the stream may be electing a leader: keep asking.
        let mut messages = loop {
            let attempt = async {
                let consumer = self
                    .stream
                    .create_consumer(consumer::push::OrderedConfig {
                        deliver_subject: format!(
                            "_INBOX.bellwether.ingest.{}.{partition}.{from}",
                            self.settings.prefix
                        ),
                        filter_subject: format!("{}.ingest.{partition}", self.settings.prefix),
                        deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: from.max(1),
                        },
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                consumer.messages().await.map_err(|e| e.to_string())
            };
            tokio::select! {
                made = attempt => match made {
                    Ok(messages) => break messages,
                    Err(e) => {
                        tracing::warn!(partition, error = %e, "ingest partition unreadable; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                () = &mut stop => return Ok((0, 0)),
            }
        };
        let (mut last, mut counted) = (0, 0);
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                () = &mut stop => break,
            };
            let Some(message) = message else { break };
            let Ok(message) = message else { continue };
            let info = message
                .info()
                .map_err(|e| IngestError::Stream(format!("message metadata: {e}")))?;
            let seq = info.stream_sequence;
            let part: Part = serde_json::from_slice(&message.payload)
                .map_err(|e| IngestError::Decode(format!("sequence {seq}: {e}")))?;
            let batch = IngestBatch {
                batch_id: part.batch_id,
                received_at_unix_ms: part.received_at_unix_ms,
                releases: part.releases.into_iter().collect(),
            };
            let store = Arc::clone(&store);
            let outcome = tokio::task::spawn_blocking(move || store.apply(&batch))
                .await
                .map_err(|e| IngestError::Store(e.to_string()))?
                .map_err(|e| IngestError::Store(e.to_string()))?;
            if outcome == ApplyOutcome::Applied {
                counted += 1;
            }
            last = seq;
        }
        Ok((last, counted))
    }
}

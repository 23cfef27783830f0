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

use bellwether_model::release::{DeploymentRecord, ReleaseKey};
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

/// One message of the ingest stream, `{"part": …}` or `{"deployment": …}` (externally
/// tagged: an internal tag would make serde buffer the part, and its maps keyed by
/// bucket start would no longer read back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Part(Part),
    /// A deployment recorded through any node's API, applied by every node in stream
    /// order with the time the receiving node gave it.
    Deployment {
        record: DeploymentRecord,
        recorded_at_unix_ms: i64,
    },
}

/// What a replica did with the stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replicated {
    /// The last stream sequence applied.
    pub last: u64,
    /// Parts that counted (not applied before).
    pub counted: u64,
    /// Deployments recorded.
    pub deployments: u64,
    /// Messages not understood (logged and skipped).
    pub skipped: u64,
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
            let part = Entry::Part(Part {
                batch_id: part_id.clone(),
                received_at_unix_ms: batch.received_at_unix_ms,
                releases,
            });
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

    /// Publishes a deployment on its service's partition; returns the stream sequence
    /// it got, once the stream acknowledged it.
    pub async fn publish_deployment(
        &self,
        record: &DeploymentRecord,
        recorded_at_unix_ms: i64,
    ) -> Result<u64, IngestError> {
        let subject = format!(
            "{}.ingest.{}",
            self.settings.prefix,
            partition_of(&record.release.service, self.settings.partitions)
        );
        let entry = Entry::Deployment {
            record: record.clone(),
            recorded_at_unix_ms,
        };
        let body = serde_json::to_vec(&entry).map_err(|e| IngestError::Decode(e.to_string()))?;
        let ack = self
            .jetstream
            .publish(subject, Bytes::from(body))
            .await
            .map_err(|e| IngestError::Stream(format!("publishing: {e}")))?
            .await
            .map_err(|e| IngestError::Stream(format!("not acknowledged: {e}")))?;
        Ok(ack.sequence)
    }

    /// The sequence of the stream's last message (0 when empty).
    pub async fn last_sequence(&self) -> Result<u64, IngestError> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| IngestError::Stream(format!("stream info: {e}")))?;
        Ok(info.state.last_sequence)
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
        let filter = format!("{}.ingest.{partition}", self.settings.prefix);
        let done = self
            .apply_from(&filter, from, &store, &mut |_| {}, stop)
            .await?;
        Ok((done.last, done.counted))
    }

    /// Applies the whole stream (every partition, deployments too) from sequence `from`
    /// to `store`, in stream order, until `stop`: every node of a cluster keeps such a
    /// replica. `applied` is told each sequence once it is applied. A consumer that
    /// stalls (the stream holds more, nothing arrives for `stall`) is made again from
    /// the next sequence not applied: one made while the stream elected a leader can sit
    /// on a lost server and receive nothing.
    pub async fn replicate(
        &self,
        from: u64,
        store: Arc<dyn ReleaseStore>,
        applied: &mut (dyn FnMut(u64) + Send),
        stall: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Replicated, IngestError> {
        tokio::pin!(stop);
        let filter = format!("{}.ingest.*", self.settings.prefix);
        let mut total = Replicated {
            last: from.saturating_sub(1),
            ..Replicated::default()
        };
        loop {
            let last_seen = std::sync::atomic::AtomicU64::new(total.last);
            let mut note = |seq: u64| {
                last_seen.store(seq, std::sync::atomic::Ordering::Relaxed);
                applied(seq);
            };
            let stalled = async {
                let mut progress = total.last;
                loop {
                    tokio::time::sleep(stall).await;
                    let now = last_seen.load(std::sync::atomic::Ordering::Relaxed);
                    let behind = self.last_sequence().await.is_ok_and(|last| last > now);
                    if behind && now == progress {
                        tracing::warn!(applied = now, "ingest replica stalled; reading again");
                        return;
                    }
                    progress = now;
                }
            };
            let stopped = std::sync::atomic::AtomicBool::new(false);
            let ended = async {
                tokio::select! {
                    () = &mut stop => stopped.store(true, std::sync::atomic::Ordering::Relaxed),
                    () = stalled => {}
                }
            };
            let run = self
                .apply_from(&filter, total.last + 1, &store, &mut note, ended)
                .await?;
            total.last = total.last.max(run.last);
            total.counted += run.counted;
            total.deployments += run.deployments;
            total.skipped += run.skipped;
            if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(total);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reads `filter` from sequence `from` and applies each entry to `store` until the
    /// consumer ends or `stop` resolves.
    async fn apply_from(
        &self,
        filter: &str,
        from: u64,
        store: &Arc<dyn ReleaseStore>,
        applied: &mut (dyn FnMut(u64) + Send),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Replicated, IngestError> {
        tokio::pin!(stop);
        // Right after a server is lost the stream may be electing a leader: keep asking.
        let mut messages = loop {
            let attempt = async {
                let consumer = self
                    .stream
                    .create_consumer(consumer::push::OrderedConfig {
                        deliver_subject: format!("_INBOX.bellwether.{}", unique_token()),
                        filter_subject: filter.to_owned(),
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
                        tracing::warn!(filter, error = %e, "ingest stream unreadable; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                () = &mut stop => return Ok(Replicated::default()),
            }
        };
        let mut done = Replicated::default();
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
            let entry: Entry = match serde_json::from_slice(&message.payload) {
                Ok(entry) => entry,
                Err(e) => {
                    // Nothing this version writes; skipping it is the only way on.
                    tracing::error!(seq, error = %e, "ingest stream message not understood; skipped");
                    done.skipped += 1;
                    done.last = seq;
                    applied(seq);
                    continue;
                }
            };
            let store = Arc::clone(store);
            let counted = tokio::task::spawn_blocking(move || match entry {
                Entry::Part(part) => {
                    let batch = IngestBatch {
                        batch_id: part.batch_id,
                        received_at_unix_ms: part.received_at_unix_ms,
                        releases: part.releases.into_iter().collect(),
                    };
                    store
                        .apply(&batch)
                        .map(|outcome| (u64::from(outcome == ApplyOutcome::Applied), 0))
                }
                Entry::Deployment {
                    record,
                    recorded_at_unix_ms,
                } => store
                    .record_deployment(&record, recorded_at_unix_ms)
                    .map(|_| (0, 1)),
            })
            .await
            .map_err(|e| IngestError::Store(e.to_string()))?
            .map_err(|e| IngestError::Store(e.to_string()))?;
            done.counted += counted.0;
            done.deployments += counted.1;
            done.last = seq;
            applied(seq);
        }
        Ok(done)
    }
}

/// A token no other consumer uses (inbox subjects must not be shared).
fn unique_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}.{nanos}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

//! A cluster node's own parts: its NATS connection, the partition leases, the ingest
//! stream and the replica that applies that stream to this node's store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use bellwether_cluster::ingest::{IngestLog, IngestSettings};
use bellwether_cluster::leases::{Fence, LeaseSettings, Leases};
use bellwether_cluster::partition_of;
use bellwether_model::release::{Deployment, DeploymentRecord};
use bellwether_model::scope::Scope;
use bellwether_store::nats::NatsSettings;
use bellwether_store::{ReleaseStore, StoreError};

use super::settings::ClusterSettings;
use crate::error::Error;

/// How long a node keeps trying to open the cluster's streams at start (JetStream may
/// still be placing them, or electing their leaders).
const OPEN_PATIENCE: Duration = Duration::from_secs(60);
/// A replica that has more to read and reads nothing this long reads again.
const STALL: Duration = Duration::from_secs(2);
/// Longest a deployment waits for this node's replica to apply it.
const APPLY_WAIT: Duration = Duration::from_secs(15);
/// Key of the last applied stream sequence in the node's `cluster` tree.
const APPLIED_KEY: &[u8] = b"ingest_applied";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cluster: {0}")]
    Nats(String),
    #[error("cluster store: {0}")]
    Store(#[from] StoreError),
}

impl From<sled::Error> for NodeError {
    fn from(e: sled::Error) -> Self {
        Self::Store(StoreError::Sled(e))
    }
}

struct Inner {
    settings: ClusterSettings,
    log: IngestLog,
    leases: tokio::sync::Mutex<Option<Leases>>,
    owned: watch::Receiver<std::collections::BTreeSet<u32>>,
    fence: Fence,
    applied: watch::Receiver<u64>,
    /// Stream sequence this node must have applied before it answers ready.
    ready_at: u64,
    /// Partitions gained and lost since the start.
    changes: Arc<(AtomicU64, AtomicU64)>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

/// The replica's loop, run by the server beside its listeners.
pub struct Replica {
    log: IngestLog,
    store: Arc<dyn ReleaseStore>,
    progress: sled::Tree,
    from: u64,
    applied: watch::Sender<u64>,
}

/// The NATS settings of the shared-state stores for `settings`.
pub fn nats_settings(settings: &ClusterSettings) -> NatsSettings {
    NatsSettings {
        servers: settings.servers.clone(),
        replicas: settings.replicas,
        prefix: settings.prefix.clone(),
        credentials: settings.credentials.clone(),
        name: settings.node_id.clone(),
        timeout: bellwether_store::nats::DEFAULT_TIMEOUT,
    }
}

async fn connect(settings: &ClusterSettings) -> Result<async_nats::Client, NodeError> {
    let mut addresses = Vec::with_capacity(settings.servers.len());
    for server in &settings.servers {
        let address: async_nats::ServerAddr = server
            .parse()
            .map_err(|e| NodeError::Nats(format!("NATS server {server:?}: {e}")))?;
        addresses.push(address);
    }
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("{}-stream", settings.node_id))
        .connection_timeout(Duration::from_secs(10));
    if let Some(path) = &settings.credentials {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| NodeError::Nats(format!("NATS credentials {}: {e}", path.display())))?;
    }
    options
        .connect(addresses)
        .await
        .map_err(|e| NodeError::Nats(format!("connecting to {}: {e}", settings.servers.join(","))))
}

impl Node {
    /// Connects, opens the ingest stream, joins the leases and reads where this node's
    /// replica stopped last time (from `progress`).
    pub async fn start(
        settings: ClusterSettings,
        store: Arc<dyn ReleaseStore>,
        progress: sled::Tree,
    ) -> Result<(Self, Replica), NodeError> {
        let client = connect(&settings).await?;
        let ingest = IngestSettings {
            prefix: settings.prefix.clone(),
            partitions: settings.partitions,
            replicas: settings.replicas,
            ..IngestSettings::default()
        };
        let started = Instant::now();
        let (log, ready_at) = loop {
            let opened = async {
                let log = IngestLog::open(client.clone(), ingest.clone()).await?;
                let last = log.last_sequence().await?;
                Ok::<_, bellwether_cluster::ingest::IngestError>((log, last))
            };
            match opened.await {
                Ok(opened) => break opened,
                Err(e) if started.elapsed() < OPEN_PATIENCE => {
                    tracing::warn!(error = %e, "ingest stream not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(NodeError::Nats(e.to_string())),
            }
        };
        let lease_settings = LeaseSettings {
            node: settings.node_id.clone(),
            api: settings.advertise.clone(),
            partitions: settings.partitions,
            ttl: settings.lease_ttl,
            prefix: settings.prefix.clone(),
            replicas: settings.replicas,
        };
        let leases = loop {
            match Leases::start(client.clone(), lease_settings.clone()).await {
                Ok(leases) => break leases,
                Err(e) if started.elapsed() < OPEN_PATIENCE => {
                    tracing::warn!(error = %e, "lease stream not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(NodeError::Nats(e.to_string())),
            }
        };
        let applied_before = match progress.get(APPLIED_KEY)? {
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("cluster progress is not 8 bytes".into()))?,
            None => 0,
        };
        let (applied_tx, applied) = watch::channel(applied_before);
        let changes = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        tokio::spawn(count_changes(leases.owned(), Arc::clone(&changes)));
        tracing::info!(
            node = %settings.node_id,
            applied = applied_before,
            stream_last = ready_at,
            "joined the cluster"
        );
        let node = Self {
            inner: Arc::new(Inner {
                owned: leases.owned(),
                fence: leases.fence(),
                leases: tokio::sync::Mutex::new(Some(leases)),
                settings,
                log: log.clone(),
                applied,
                ready_at,
                changes,
            }),
        };
        let replica = Replica {
            log,
            store,
            progress,
            from: applied_before + 1,
            applied: applied_tx,
        };
        Ok((node, replica))
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    pub fn log(&self) -> &IngestLog {
        &self.inner.log
    }

    /// The services this node acts for: those of the partitions it holds now.
    pub fn scope(&self) -> Scope {
        let fence = self.inner.fence.clone();
        let partitions = self.inner.settings.partitions;
        Scope::only(move |service| fence.holds(partition_of(service, partitions)))
    }

    pub fn owned(&self) -> std::collections::BTreeSet<u32> {
        self.inner.owned.borrow().clone()
    }

    /// Partitions (gained, lost) since the node started.
    pub fn lease_changes(&self) -> (u64, u64) {
        let (gained, lost) = &*self.inner.changes;
        (gained.load(Ordering::Relaxed), lost.load(Ordering::Relaxed))
    }

    /// The last stream sequence this node's replica applied.
    pub fn applied(&self) -> u64 {
        *self.inner.applied.borrow()
    }

    /// Whether the replica has caught up with the stream as it was when the node started.
    pub fn ready(&self) -> bool {
        self.applied() >= self.inner.ready_at
    }

    /// Who holds each partition, as this node's view of the lease log has it.
    pub async fn holders(&self) -> Vec<(u32, Option<(String, String)>)> {
        let leases = self.inner.leases.lock().await;
        let Some(leases) = leases.as_ref() else {
            return Vec::new();
        };
        let view = leases.view();
        (0..self.inner.settings.partitions)
            .map(|p| {
                let holder = view
                    .leases
                    .get(&p)
                    .filter(|l| l.until_ns > view.now_ns)
                    .map(|l| (l.node.clone(), l.api.clone()));
                (p, holder)
            })
            .collect()
    }

    /// Records a deployment through the stream, so every node records the same one;
    /// returns it once this node's replica applied it.
    pub async fn record_deployment(
        &self,
        record: DeploymentRecord,
        now_unix_ms: i64,
        store: &Arc<dyn ReleaseStore>,
    ) -> Result<Deployment, Error> {
        let release = record.release.clone();
        let started = Instant::now();
        let published = self
            .inner
            .log
            .publish_deployment(&record, now_unix_ms)
            .await;
        super::api::published(started.elapsed(), published.is_ok());
        let seq = published.map_err(|e| {
            Error::Overloaded(format!(
                "cluster ingest stream unavailable, retry later: {e}"
            ))
        })?;
        let mut applied = self.inner.applied.clone();
        let caught_up = tokio::time::timeout(APPLY_WAIT, async {
            applied.wait_for(|a| *a >= seq).await.is_ok()
        })
        .await;
        if caught_up != Ok(true) {
            return Err(Error::Internal(format!(
                "deployment stored in the cluster (sequence {seq}) but not yet applied by this node"
            )));
        }
        let store = Arc::clone(store);
        tokio::task::spawn_blocking(move || store.deployment(&release))
            .await??
            .ok_or_else(|| Error::Internal("deployment applied but not found".into()))
    }

    /// Gives up this node's partitions so others take them at once (a clean stop).
    pub async fn leave(&self) {
        if let Some(leases) = self.inner.leases.lock().await.take() {
            leases.stop().await;
        }
    }
}

/// Counts what each change of the owned set gained and lost, until the leases stop.
async fn count_changes(
    mut owned: watch::Receiver<std::collections::BTreeSet<u32>>,
    changes: Arc<(AtomicU64, AtomicU64)>,
) {
    let mut before = owned.borrow().clone();
    while owned.changed().await.is_ok() {
        let now = owned.borrow_and_update().clone();
        let gained = now.difference(&before).count() as u64;
        let lost = before.difference(&now).count() as u64;
        changes.0.fetch_add(gained, Ordering::Relaxed);
        changes.1.fetch_add(lost, Ordering::Relaxed);
        if gained + lost > 0 {
            tracing::info!(gained, lost, owned = now.len(), "partitions moved");
        }
        before = now;
    }
}

impl Replica {
    /// Applies the ingest stream to the store until `stopped`.
    pub async fn run(
        self,
        stopped: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let Self {
            log,
            store,
            progress,
            from,
            applied,
        } = self;
        let mut note = |seq: u64| {
            if let Err(e) = progress.insert(APPLIED_KEY, &seq.to_be_bytes()) {
                tracing::error!(error = %e, seq, "recording the replica's progress failed");
            }
            applied.send_replace(seq);
        };
        let done = log
            .replicate(from, store, &mut note, STALL, stopped)
            .await
            .map_err(|e| NodeError::Nats(e.to_string()))?;
        tracing::info!(
            last = done.last,
            counted = done.counted,
            deployments = done.deployments,
            skipped = done.skipped,
            "replica stopped"
        );
        progress.flush()?;
        Ok(())
    }
}

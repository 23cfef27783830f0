//! The shared state of a Bellwether cluster in NATS JetStream key-value buckets: verdicts
//! and their timelines ([`KvVerdicts`]), alerts, silences and the notification outbox
//! ([`KvAlertStore`]). Every node of a cluster sees the same state, replicated by
//! JetStream (R3 by default); a single collector never uses this module.
//!
//! The store traits are synchronous (callers run them off the async executor, as with
//! sled). [`Nats`] owns a small runtime of its own that drives the NATS client, and each
//! call waits for its future there, so a call from any thread, a runtime worker
//! included, can neither panic nor starve the client.
//!
//! Keys: every name is hex-encoded behind a one-letter tag (`x` + hex), so any service,
//! environment or version is a valid key token, and keys still start with the service.
//!
//! Three choices follow from what nats-server 2.9 does:
//!
//! - Reads go to each bucket's stream leader (`allow_direct` off): a follower may answer
//!   a direct get with a value older than the caller's own last write.
//! - Ids come from a stream's sequence ([`Nats::sequence`]): unique and increasing
//!   across the cluster. A key's revision check is not enough for them: 2.9 can accept
//!   two concurrent writes that both expected the same revision.
//! - Read-modify-write updates (a verdict's timeline, a counter) are made one at a time
//!   within a node and use the key's revision; counters are kept per node (`.<node>`)
//!   and summed when read, so no two nodes ever update the same counter. A verdict is
//!   written only by the node that owns its release.
//!
//! `async-nats` 0.40 is used, with its default features off: its `server_2_10` and
//! `server_2_11` features add stream settings that the nats-server 2.9 Debian ships
//! refuses, and later versions need such settings for key-value buckets.

mod alerts;
mod verdicts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;

pub use alerts::KvAlertStore;
pub use verdicts::KvVerdicts;

use crate::StoreError;

/// How long one store call may take before it fails (a NATS server gone, no quorum).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the cluster's NATS servers are and how its buckets are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsSettings {
    /// `nats://host:port` URLs; the client fails over between them.
    pub servers: Vec<String>,
    /// JetStream replicas of every bucket (1, 3 or 5; at most the number of servers).
    pub replicas: usize,
    /// Bucket names start with this (`<prefix>_verdicts`, …): several clusters can share
    /// one NATS system.
    pub prefix: String,
    /// A NATS credentials file (`.creds`), if the servers require one.
    pub credentials: Option<std::path::PathBuf>,
    /// The connection's name as the servers show it (the node id).
    pub name: String,
    pub timeout: Duration,
}

impl NatsSettings {
    pub fn new(servers: Vec<String>) -> Self {
        Self {
            servers,
            replicas: 3,
            prefix: "bellwether".to_owned(),
            credentials: None,
            name: "bellwether".to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A connection to the cluster's NATS servers, usable from synchronous code.
#[derive(Clone)]
pub struct Nats {
    bridge: Arc<Bridge>,
    jetstream: async_nats::jetstream::Context,
    settings: NatsSettings,
    /// Set once the id stream is known to exist.
    ids_ready: Arc<tokio::sync::OnceCell<()>>,
}

/// The runtime that drives the client. Shut down in the background when dropped, so
/// dropping the last handle inside async code does not panic.
struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    timeout: Duration,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Bridge {
    /// Runs `work` on the client's runtime and waits for it, at most the timeout.
    fn run<T, F>(&self, what: &str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let timeout = self.timeout;
        self.handle.spawn(async move {
            let outcome = tokio::time::timeout(timeout, work).await;
            let _ = tx.send(outcome);
        });
        match rx.recv() {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(StoreError::Replicated(format!(
                "{what}: no answer from NATS within {timeout:?}"
            ))),
            Err(_) => Err(StoreError::Replicated(format!(
                "{what}: the NATS client stopped"
            ))),
        }
    }
}

impl Nats {
    /// Connects to the servers; fails with a clear error when none answers.
    pub fn connect(settings: &NatsSettings) -> Result<Self, StoreError> {
        if settings.servers.is_empty() {
            return Err(StoreError::Replicated("no NATS server given".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bellwether-nats")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Replicated(format!("starting the NATS client: {e}")))?;
        let bridge = Bridge {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            timeout: settings.timeout,
        };
        let mut addresses = Vec::with_capacity(settings.servers.len());
        for server in &settings.servers {
            let address: async_nats::ServerAddr = server
                .parse()
                .map_err(|e| StoreError::Replicated(format!("NATS server {server:?}: {e}")))?;
            addresses.push(address);
        }
        let servers = settings.servers.join(",");
        let options = settings.clone();
        let client = bridge.run("connecting to NATS", async move {
            let mut connect = async_nats::ConnectOptions::new()
                .name(&options.name)
                .connection_timeout(options.timeout)
                .request_timeout(Some(options.timeout));
            if let Some(path) = &options.credentials {
                connect = connect.credentials_file(path).await.map_err(|e| {
                    StoreError::Replicated(format!("NATS credentials {}: {e}", path.display()))
                })?;
            }
            connect
                .connect(addresses)
                .await
                .map_err(|e| StoreError::Replicated(format!("connecting to {servers}: {e}")))
        })?;
        Ok(Self {
            bridge: Arc::new(bridge),
            jetstream: async_nats::jetstream::new(client),
            settings: settings.clone(),
            ids_ready: Arc::default(),
        })
    }

    /// The bucket `<prefix>_<name>`, made with the configured replicas if it is missing,
    /// read through its stream's leader (see the module doc).
    pub(crate) fn bucket(&self, name: &str) -> Result<kv::Store, StoreError> {
        let jetstream = self.jetstream.clone();
        let bucket = format!("{}_{name}", self.settings.prefix);
        let replicas = self.settings.replicas;
        self.bridge.run("opening a bucket", async move {
            let store = match jetstream.get_key_value(&bucket).await {
                Ok(store) => store,
                Err(_) => {
                    let config = kv::Config {
                        bucket: bucket.clone(),
                        history: 1,
                        num_replicas: replicas,
                        storage: async_nats::jetstream::stream::StorageType::File,
                        ..Default::default()
                    };
                    match jetstream.create_key_value(config).await {
                        Ok(store) => store,
                        // Another node made it first.
                        Err(create) => jetstream.get_key_value(&bucket).await.map_err(|_| {
                            nats_error(&format!("creating bucket {bucket}"), create)
                        })?,
                    }
                }
            };
            let stream = format!("KV_{bucket}");
            let mut info = jetstream
                .get_stream(&stream)
                .await
                .map_err(|e| nats_error("reading a bucket's stream", e))?;
            let config = info
                .info()
                .await
                .map_err(|e| nats_error("reading a bucket's stream", e))?
                .config
                .clone();
            if !config.allow_direct {
                return Ok(store);
            }
            jetstream
                .update_stream(async_nats::jetstream::stream::Config {
                    allow_direct: false,
                    ..config
                })
                .await
                .map_err(|e| nats_error("making a bucket read through its leader", e))?;
            jetstream
                .get_key_value(&bucket)
                .await
                .map_err(|e| nats_error("opening a bucket", e))
        })
    }

    /// A number no other call on any node ever gets, greater than every one handed out
    /// before: the sequence JetStream assigns to a message on `<prefix>_ids`.
    pub(crate) fn sequence(&self) -> Result<u64, StoreError> {
        let jetstream = self.jetstream.clone();
        let stream = format!("{}_ids", self.settings.prefix);
        let subject = format!("{}.ids", self.settings.prefix);
        let replicas = self.settings.replicas;
        let ids_ready = Arc::clone(&self.ids_ready);
        self.bridge.run("taking an id", async move {
            ids_ready
                .get_or_try_init(|| async {
                    // Making a replicated stream waits on the cluster's meta leader, which
                    // a young or busy cluster may answer late: a timed-out request is asked
                    // again (the call is idempotent), a few times.
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        let made = jetstream
                            .get_or_create_stream(async_nats::jetstream::stream::Config {
                                name: stream.clone(),
                                subjects: vec![subject.clone()],
                                max_messages: 1,
                                num_replicas: replicas,
                                ..Default::default()
                            })
                            .await;
                        match made {
                            Ok(_) => return Ok(()),
                            Err(e) if attempts < 3 && e.to_string().contains("timed out") => {
                                tracing::warn!(error = %e, "opening the id stream timed out, asking again");
                            }
                            Err(e) => return Err(nats_error("opening the id stream", e)),
                        }
                    }
                })
                .await?;
            loop {
                // A stream another node just made may not be known to this server yet.
                match jetstream.publish(subject.clone(), Bytes::new()).await {
                    Ok(ack) => match ack.await {
                        Ok(ack) => return Ok(ack.sequence),
                        Err(e) if e.to_string().contains("no stream") => {}
                        Err(e) => return Err(nats_error("taking an id", e)),
                    },
                    Err(e) => return Err(nats_error("taking an id", e)),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    /// This node's name, unique in the cluster.
    pub(crate) fn node(&self) -> &str {
        &self.settings.name
    }

    pub(crate) fn run<T, F>(&self, what: &str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.bridge.run(what, work)
    }
}

/// A key token for any text: `x` + its bytes in hex (never empty, always valid).
pub(crate) fn token(text: &str) -> String {
    format!("x{}", hex::encode(text.as_bytes()))
}

pub(crate) fn nats_error(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Replicated(format!("{what}: {error}"))
}

/// Every live value of `store` whose key starts with `prefix`, in key order.
pub(crate) async fn values_under(
    store: &kv::Store,
    prefix: &str,
) -> Result<Vec<Bytes>, StoreError> {
    use futures::TryStreamExt;
    // The stream's subjects (a request and its answer), not `Store::keys`: that one
    // reads through an ordered push consumer, and a connection whose consumer was
    // cut by a lost server kept answering "timed out" for as long as was measured (15 s
    // and more), while this goes on once the stream has its leader again.
    let subjects: Vec<(String, usize)> = store
        .stream
        .info_with_subjects(format!("{}>", store.prefix))
        .await
        .map_err(|e| nats_error("listing keys", e))?
        .try_collect()
        .await
        .map_err(|e| nats_error("listing keys", e))?;
    let mut keys: Vec<String> = subjects
        .into_iter()
        .filter_map(|(subject, _)| {
            subject
                .strip_prefix(store.prefix.as_str())
                .map(str::to_owned)
        })
        .filter(|k| k.starts_with(prefix))
        .collect();
    keys.sort();
    let mut values = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(value) = store
            .get(key.as_str())
            .await
            .map_err(|e| nats_error("reading a key", e))?
        {
            values.push(value);
        }
    }
    Ok(values)
}

/// The entry at `key` and its value, if it holds one (not deleted).
pub(crate) async fn read(
    store: &kv::Store,
    key: &str,
) -> Result<(Option<kv::Entry>, Option<Bytes>), StoreError> {
    let entry = store
        .entry(key)
        .await
        .map_err(|e| nats_error("reading a key", e))?;
    let value = entry
        .as_ref()
        .filter(|e| e.operation == kv::Operation::Put)
        .map(|e| e.value.clone());
    Ok((entry, value))
}

/// Writes `value` at `key` if the key is still as `seen` left it (`None`: absent);
/// false when another writer got there first.
pub(crate) async fn write_if_unchanged(
    store: &kv::Store,
    key: &str,
    seen: Option<&kv::Entry>,
    value: Bytes,
) -> Result<bool, StoreError> {
    let (conflict, error) = match seen {
        None => match store.create(key, value).await {
            Ok(_) => return Ok(true),
            Err(e) => (
                e.kind() == kv::CreateErrorKind::AlreadyExists,
                e.to_string(),
            ),
        },
        Some(entry) => match store.update(key, value, entry.revision).await {
            Ok(_) => return Ok(true),
            Err(e) => (
                e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                e.to_string(),
            ),
        },
    };
    if conflict {
        Ok(false)
    } else {
        Err(nats_error("writing a key", error))
    }
}

/// Adds `by` to the u64 counter at `key` (made at 0), retrying when another writer got
/// in between; returns the new value.
pub(crate) async fn add(store: &kv::Store, key: &str, by: u64) -> Result<u64, StoreError> {
    loop {
        let (entry, value) = read(store, key).await?;
        let next = value.map_or(0, |v| decode_u64(&v)).saturating_add(by);
        let raw = Bytes::copy_from_slice(&next.to_be_bytes());
        if write_if_unchanged(store, key, entry.as_ref(), raw).await? {
            return Ok(next);
        }
    }
}

pub(crate) fn decode_u64(raw: &[u8]) -> u64 {
    <[u8; 8]>::try_from(raw).map_or(0, u64::from_be_bytes)
}

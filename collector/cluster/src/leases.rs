//! Partition leases decided from one replicated log.
//!
//! Every node publishes to one JetStream stream (`<prefix>_leases`): a heartbeat on
//! `<prefix>.node.<node>`, and claims, renewals and releases on `<prefix>.lease.<p>`.
//! Every node reads the whole stream in order and applies each message to the same
//! state machine ([`View::apply`]), using the time the stream stamped on the message:
//!
//! - a claim takes a partition that has no lease, whose lease has run out (its last
//!   renewal is older than the TTL at the claim's time), or that the claimer holds;
//! - a renewal extends the claimer's own live lease by the TTL; a release ends it;
//! - anything else is ignored.
//!
//! All nodes see the same messages in the same order, so all agree on every owner
//! without any compare-and-set (nats-server 2.9 can accept two writes that expected the
//! same revision, so a key-value lease could have two holders).
//!
//! A node works on a partition only while its own view says it holds the lease *and*
//! less than TTL − TTL/4 has passed since it sent its last renewal that was accepted.
//! A node cut off from NATS therefore stops before any other can take over (a claim is
//! accepted only once the TTL has passed on the stream's clock since the renewal was
//! stamped, which is later than it was sent). Nodes aim at an even share,
//! ⌈partitions / live nodes⌉, releasing extras and claiming free partitions every tick.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease stream: {0}")]
    Stream(String),
}

/// How a node takes part in the leases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// This node's id, unique in the cluster.
    pub node: String,
    /// Where other nodes reach this node's API (forwarded queries).
    pub api: String,
    pub partitions: u32,
    /// How long a lease lasts without renewal; renewals go out every TTL/4.
    pub ttl: Duration,
    /// Stream and subject names start with this.
    pub prefix: String,
    /// JetStream replicas of the lease stream.
    pub replicas: usize,
}

impl LeaseSettings {
    pub fn new(node: impl Into<String>, api: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            api: api.into(),
            partitions: 64,
            ttl: Duration::from_secs(3),
            prefix: "bellwether".to_owned(),
            replicas: 3,
        }
    }
}

/// What a node publishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Op {
    Heartbeat,
    Claim,
    Renew,
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Message {
    node: String,
    api: String,
    #[serde(flatten)]
    op: Op,
}

/// A partition's holder as the log decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub node: String,
    pub api: String,
    /// Stream time (Unix ns) at which it runs out unless renewed.
    pub until_ns: i128,
}

/// The state every node derives from the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub leases: BTreeMap<u32, Lease>,
    /// Node → stream time of its last heartbeat.
    pub nodes: BTreeMap<String, i128>,
    /// Stream time of the latest message applied.
    pub now_ns: i128,
    /// Stream sequence of the latest message applied.
    pub applied_seq: u64,
}

impl View {
    /// Applies one message of `node` stamped `at_ns`, for `partition` (None for a
    /// heartbeat). Returns whether it changed who holds the partition or until when.
    pub fn apply(
        &mut self,
        partition: Option<u32>,
        node: &str,
        api: &str,
        op: &Op,
        at_ns: i128,
        ttl: Duration,
    ) -> bool {
        self.now_ns = self.now_ns.max(at_ns);
        let until_ns = at_ns + ttl.as_nanos() as i128;
        let Some(partition) = partition else {
            self.nodes.insert(node.to_owned(), at_ns);
            return false;
        };
        let current = self.leases.get(&partition);
        let held_by_node = current.is_some_and(|l| l.node == node && l.until_ns > at_ns);
        let free = current.is_none_or(|l| l.until_ns <= at_ns);
        let lease = Lease {
            node: node.to_owned(),
            api: api.to_owned(),
            until_ns,
        };
        match op {
            Op::Claim if free || held_by_node => {
                self.leases.insert(partition, lease);
                true
            }
            Op::Renew if held_by_node => {
                self.leases.insert(partition, lease);
                true
            }
            Op::Release if held_by_node => {
                self.leases.remove(&partition);
                true
            }
            _ => false,
        }
    }

    /// Nodes whose heartbeat is younger than `ttl` at the latest stream time.
    pub fn live_nodes(&self, ttl: Duration) -> BTreeSet<String> {
        let since = self.now_ns - ttl.as_nanos() as i128;
        self.nodes
            .iter()
            .filter(|(_, at)| **at > since)
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// Partitions with no live lease at the latest stream time.
    pub fn free(&self, partitions: u32) -> Vec<u32> {
        (0..partitions)
            .filter(|p| self.leases.get(p).is_none_or(|l| l.until_ns <= self.now_ns))
            .collect()
    }

    pub fn held_by(&self, node: &str) -> BTreeSet<u32> {
        self.leases
            .iter()
            .filter(|(_, l)| l.node == node && l.until_ns > self.now_ns)
            .map(|(p, _)| *p)
            .collect()
    }
}

struct Shared {
    view: View,
    /// Partition → until when (local clock) this node may work on it.
    deadlines: BTreeMap<u32, Instant>,
}

/// One node's part in the leases. Dropping it stops its tasks without releasing
/// anything (as a crash would); [`Leases::stop`] releases first.
pub struct Leases {
    settings: LeaseSettings,
    jetstream: jetstream::Context,
    shared: Arc<Mutex<Shared>>,
    owned: watch::Receiver<BTreeSet<u32>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Leases {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Leases {
    /// Joins the leases over `client`: makes the stream if it is missing, starts reading
    /// it and starts the tick that heartbeats, renews, claims and releases.
    pub async fn start(
        client: async_nats::Client,
        settings: LeaseSettings,
    ) -> Result<Self, LeaseError> {
        let jetstream = jetstream::new(client);
        let name = format!("{}_leases", settings.prefix);
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![
                    format!("{}.lease.*", settings.prefix),
                    format!("{}.node.*", settings.prefix),
                ],
                // Older messages can no longer decide a live lease.
                max_age: settings.ttl * 4,
                num_replicas: settings.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| LeaseError::Stream(format!("opening {name}: {e}")))?;
        let consumer = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: jetstream_inbox(&settings),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| LeaseError::Stream(format!("reading {name}: {e}")))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| LeaseError::Stream(format!("reading {name}: {e}")))?;

        let shared = Arc::new(Mutex::new(Shared {
            view: View::default(),
            deadlines: BTreeMap::new(),
        }));
        let (owned_tx, owned) = watch::channel(BTreeSet::new());
        let owned_tx = Arc::new(owned_tx);

        let reader = {
            let shared = Arc::clone(&shared);
            let prefix = settings.prefix.clone();
            let ttl = settings.ttl;
            tokio::spawn(async move {
                while let Some(Ok(message)) = messages.next().await {
                    let Ok(info) = message.info() else { continue };
                    let at_ns = info.published.unix_timestamp_nanos();
                    let seq = info.stream_sequence;
                    let Ok(body) = serde_json::from_slice::<Message>(&message.payload) else {
                        tracing::warn!(subject = %message.subject, "lease message not understood; ignored");
                        continue;
                    };
                    let partition = message
                        .subject
                        .strip_prefix(&format!("{prefix}.lease."))
                        .and_then(|p| p.parse::<u32>().ok());
                    let mut shared = lock(&shared);
                    shared
                        .view
                        .apply(partition, &body.node, &body.api, &body.op, at_ns, ttl);
                    shared.view.applied_seq = shared.view.applied_seq.max(seq);
                }
            })
        };

        let mut leases = Self {
            settings,
            jetstream,
            shared,
            owned,
            tasks: vec![reader],
        };
        let ticker = leases.ticker(owned_tx);
        leases.tasks.push(ticker);
        Ok(leases)
    }

    /// The partitions this node may work on now; changes as leases move.
    pub fn owned(&self) -> watch::Receiver<BTreeSet<u32>> {
        self.owned.clone()
    }

    /// Who holds `partition` as this node's view has it.
    pub fn holder(&self, partition: u32) -> Option<Lease> {
        let shared = lock(&self.shared);
        shared
            .view
            .leases
            .get(&partition)
            .filter(|l| l.until_ns > shared.view.now_ns)
            .cloned()
    }

    /// This node's view of the log.
    pub fn view(&self) -> View {
        lock(&self.shared).view.clone()
    }

    /// Releases every partition this node holds, then stops.
    pub async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let held: Vec<u32> = {
            let mut shared = lock(&self.shared);
            shared.deadlines.clear();
            shared
                .view
                .held_by(&self.settings.node)
                .into_iter()
                .collect()
        };
        for partition in held {
            let _ = publish(
                &self.jetstream,
                &self.settings,
                Some(partition),
                Op::Release,
            )
            .await;
        }
    }

    fn ticker(&self, owned_tx: Arc<watch::Sender<BTreeSet<u32>>>) -> JoinHandle<()> {
        let shared = Arc::clone(&self.shared);
        let jetstream = self.jetstream.clone();
        let settings = self.settings.clone();
        tokio::spawn(async move {
            let every = settings.ttl / 4;
            loop {
                tick(&jetstream, &settings, &shared).await;
                let now = Instant::now();
                let owned: BTreeSet<u32> = lock(&shared)
                    .deadlines
                    .iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(p, _)| *p)
                    .collect();
                owned_tx.send_if_modified(|current| {
                    let changed = *current != owned;
                    *current = owned.clone();
                    changed
                });
                tokio::time::sleep(every).await;
            }
        })
    }
}

fn jetstream_inbox(settings: &LeaseSettings) -> String {
    format!(
        "_INBOX.bellwether.leases.{}",
        hex::encode(settings.node.as_bytes())
    )
}

/// Publishes `op` and waits for the stream's acknowledgement; returns the message's
/// stream sequence.
async fn publish(
    jetstream: &jetstream::Context,
    settings: &LeaseSettings,
    partition: Option<u32>,
    op: Op,
) -> Result<u64, String> {
    let subject = match partition {
        Some(p) => format!("{}.lease.{p}", settings.prefix),
        None => format!(
            "{}.node.{}",
            settings.prefix,
            hex::encode(settings.node.as_bytes())
        ),
    };
    let body = serde_json::to_vec(&Message {
        node: settings.node.clone(),
        api: settings.api.clone(),
        op,
    })
    .map_err(|e| e.to_string())?;
    let ack = tokio::time::timeout(settings.ttl / 4, async {
        jetstream
            .publish(subject, Bytes::from(body))
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "no acknowledgement in time".to_owned())?;
    ack.map(|ack| ack.sequence)
}

/// One round: heartbeat, release extras, renew what is held, claim up to the share;
/// then, once the view has applied this round's messages, work only on what the log
/// says this node holds.
async fn tick(jetstream: &jetstream::Context, settings: &LeaseSettings, shared: &Mutex<Shared>) {
    let node = settings.node.as_str();
    let margin = settings.ttl / 4;
    if publish(jetstream, settings, None, Op::Heartbeat)
        .await
        .is_err()
    {
        // Cut off: hold nothing new; deadlines run out on their own.
        return;
    }
    let (held, live, free) = {
        let shared = lock(shared);
        (
            shared.view.held_by(node),
            shared.view.live_nodes(settings.ttl).len().max(1),
            shared.view.free(settings.partitions),
        )
    };
    let share = (settings.partitions as usize).div_ceil(live);

    // Keep up to the share; release the rest, highest first, and stop work on them now.
    let mut keep: Vec<u32> = held.iter().copied().collect();
    let extra = keep.len().saturating_sub(share);
    let release: Vec<u32> = keep.split_off(keep.len() - extra);
    for partition in release {
        lock(shared).deadlines.remove(&partition);
        let _ = publish(jetstream, settings, Some(partition), Op::Release).await;
    }

    // Renew what is kept, and claim free partitions up to the share in an order of this
    // node's own (so that nodes starting together mostly ask for different ones).
    let mut candidates = free;
    candidates.sort_by_key(|p| crate::partition_of(&format!("{node}/{p}"), u32::MAX));
    let wanted = share.saturating_sub(keep.len());
    let asks = keep
        .iter()
        .map(|p| (*p, Op::Renew))
        .chain(candidates.into_iter().take(wanted).map(|p| (p, Op::Claim)));
    let sent: Vec<(u32, Instant, u64)> =
        futures::future::join_all(asks.map(|(partition, op)| async move {
            let at = Instant::now();
            publish(jetstream, settings, Some(partition), op)
                .await
                .ok()
                .map(|seq| (partition, at, seq))
        }))
        .await
        .into_iter()
        .flatten()
        .collect();
    let Some(last) = sent.iter().map(|(_, _, seq)| *seq).max() else {
        return;
    };
    // A renewal or claim counts only if the log accepted it: wait until the view has
    // applied it, then look. An accepted renewal sent at `at` keeps the lease on the
    // stream's clock until after at + TTL, so working until at + TTL − TTL/4 is safe.
    let caught_up = wait_for_view(shared, margin, |view| view.applied_seq >= last).await;
    let mut shared = lock(shared);
    for (partition, at, _) in sent {
        let now_ns = shared.view.now_ns;
        let holds = caught_up
            && shared
                .view
                .leases
                .get(&partition)
                .is_some_and(|l| l.node == node && l.until_ns > now_ns);
        if holds {
            shared
                .deadlines
                .insert(partition, at + settings.ttl - margin);
        } else {
            shared.deadlines.remove(&partition);
        }
    }
}

/// Waits up to `limit` for the view to satisfy `done`.
async fn wait_for_view(
    shared: &Mutex<Shared>,
    limit: Duration,
    done: impl Fn(&View) -> bool,
) -> bool {
    let until = Instant::now() + limit;
    loop {
        if done(&lock(shared).view) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(3);
    const S: i128 = 1_000_000_000;

    fn apply(view: &mut View, p: u32, node: &str, op: Op, at_s: i128) -> bool {
        view.apply(Some(p), node, "api", &op, at_s * S, TTL)
    }

    #[test]
    fn the_first_claim_wins_until_the_lease_runs_out() {
        let mut view = View::default();
        assert!(apply(&mut view, 0, "a", Op::Claim, 10));
        assert!(!apply(&mut view, 0, "b", Op::Claim, 11), "a holds it");
        assert!(apply(&mut view, 0, "a", Op::Renew, 12));
        assert!(!apply(&mut view, 0, "b", Op::Claim, 14), "renewed until 15");
        assert!(
            !apply(&mut view, 0, "b", Op::Renew, 14),
            "b holds nothing to renew"
        );
        assert!(
            apply(&mut view, 0, "b", Op::Claim, 15),
            "a's lease ran out at 15"
        );
        assert!(!apply(&mut view, 0, "a", Op::Renew, 16), "a lost it");
        assert_eq!(view.leases.get(&0).map(|l| l.node.as_str()), Some("b"));
    }

    #[test]
    fn only_the_holder_releases_and_then_anyone_may_claim() {
        let mut view = View::default();
        apply(&mut view, 3, "a", Op::Claim, 1);
        assert!(!apply(&mut view, 3, "b", Op::Release, 2));
        assert!(apply(&mut view, 3, "a", Op::Release, 2));
        assert!(apply(&mut view, 3, "b", Op::Claim, 2));
        assert_eq!(view.held_by("b"), BTreeSet::from([3]));
        assert!(view.held_by("a").is_empty());
    }

    #[test]
    fn live_nodes_and_free_partitions_follow_stream_time() {
        let mut view = View::default();
        view.apply(None, "a", "api", &Op::Heartbeat, S, TTL);
        view.apply(None, "b", "api", &Op::Heartbeat, 3 * S, TTL);
        apply(&mut view, 1, "b", Op::Claim, 3);
        assert_eq!(
            view.live_nodes(TTL),
            BTreeSet::from(["a".into(), "b".into()])
        );
        assert_eq!(view.free(3), vec![0, 2]);
        view.apply(None, "b", "api", &Op::Heartbeat, 5 * S, TTL);
        assert_eq!(
            view.live_nodes(TTL),
            BTreeSet::from(["b".into()]),
            "a's heartbeat is 4 s old"
        );
        view.apply(None, "b", "api", &Op::Heartbeat, 7 * S, TTL);
        assert_eq!(view.free(3), vec![0, 1, 2], "b's lease ran out at 6");
    }
}

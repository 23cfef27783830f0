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

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod log;
mod view;

use log::{publish, read};
pub use view::{Lease, View};

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

struct Shared {
    view: View,
    /// The view did not catch up with this node's own messages last round: its reader
    /// is being restarted, and the node stays quiet (no heartbeat) until it has.
    lagging: bool,
    /// Stream sequence of the last message this node published.
    last_sent: u64,
    /// Partition → until when (local clock) this node may work on it.
    deadlines: BTreeMap<u32, Instant>,
}

/// One node's part in the leases. Dropping it stops its tasks without releasing
/// anything (as a crash would); [`Leases::stop`] releases first.
pub struct Leases {
    settings: LeaseSettings,
    jetstream: jetstream::Context,
    shared: Arc<Mutex<Shared>>,
    restart: Arc<tokio::sync::Notify>,
    owned: watch::Receiver<BTreeSet<u32>>,
    tasks: Vec<JoinHandle<()>>,
}

/// See [`Leases::fence`]; cheap to clone, and it keeps answering no once the leases
/// are dropped or stopped.
#[derive(Clone)]
pub struct Fence {
    shared: Arc<Mutex<Shared>>,
}

impl Fence {
    /// Whether this node holds `partition` now.
    pub fn holds(&self, partition: u32) -> bool {
        let now = Instant::now();
        lock(&self.shared)
            .deadlines
            .get(&partition)
            .is_some_and(|until| *until > now)
    }
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
        let shared = Arc::new(Mutex::new(Shared {
            view: View::default(),
            lagging: false,
            last_sent: 0,
            deadlines: BTreeMap::new(),
        }));
        let restart = Arc::new(tokio::sync::Notify::new());
        let (owned_tx, owned) = watch::channel(BTreeSet::new());

        let reader = tokio::spawn(read(
            stream,
            Arc::clone(&shared),
            settings.clone(),
            Arc::clone(&restart),
        ));

        let mut leases = Self {
            settings,
            jetstream,
            shared,
            restart,
            owned,
            tasks: vec![reader],
        };
        let ticker = leases.ticker();
        let fence = leases.watch_deadlines(owned_tx);
        leases.tasks.push(ticker);
        leases.tasks.push(fence);
        Ok(leases)
    }

    /// The partitions this node may work on now; changes as leases move.
    pub fn owned(&self) -> watch::Receiver<BTreeSet<u32>> {
        self.owned.clone()
    }

    /// A check of whether this node may work on a partition at the very moment it is
    /// asked (its lease deadline on the local clock), for guards that must not trust a
    /// watch value that a paused process has not yet seen change.
    pub fn fence(&self) -> Fence {
        Fence {
            shared: Arc::clone(&self.shared),
        }
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

    fn ticker(&self) -> JoinHandle<()> {
        let shared = Arc::clone(&self.shared);
        let jetstream = self.jetstream.clone();
        let settings = self.settings.clone();
        let restart = Arc::clone(&self.restart);
        tokio::spawn(async move {
            let mut applied_before = 0;
            loop {
                let caught_up = tick(&jetstream, &settings, &shared).await;
                {
                    let mut shared = lock(&shared);
                    shared.lagging = !caught_up;
                    // Behind and not moving: the reader is stuck, start it afresh.
                    // Behind but moving: it is catching up, leave it.
                    if !caught_up && shared.view.applied_seq == applied_before {
                        restart.notify_one();
                    }
                    applied_before = shared.view.applied_seq;
                }
                tokio::time::sleep(settings.ttl / 4).await;
            }
        })
    }

    /// Publishes the owned set whenever it changes, and drops each partition the moment
    /// its deadline passes (not at the next tick).
    fn watch_deadlines(&self, owned_tx: watch::Sender<BTreeSet<u32>>) -> JoinHandle<()> {
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            loop {
                let now = Instant::now();
                let (owned, next) = {
                    let shared = lock(&shared);
                    let live = shared.deadlines.iter().filter(|(_, until)| **until > now);
                    let owned: BTreeSet<u32> = live.clone().map(|(p, _)| *p).collect();
                    (owned, live.map(|(_, until)| *until).min())
                };
                owned_tx.send_if_modified(|current| {
                    let changed = *current != owned;
                    *current = owned;
                    changed
                });
                let wake = next.unwrap_or(now + FENCE_POLL).min(now + FENCE_POLL);
                tokio::time::sleep_until(wake.into()).await;
            }
        })
    }
}

/// Longest the owned set goes without being recomputed.
const FENCE_POLL: Duration = Duration::from_millis(10);

/// One round: heartbeat, release extras, renew what is held, claim up to the share;
/// then, once the view has applied this round's messages, work only on what the log
/// says this node holds.
///
/// Returns false when the view did not catch up with this round's own messages.
async fn tick(
    jetstream: &jetstream::Context,
    settings: &LeaseSettings,
    shared: &Mutex<Shared>,
) -> bool {
    let node = settings.node.as_str();
    let margin = settings.ttl / 4;
    // A node that cannot read the log stays quiet (no heartbeat, no renewal, no
    // claim), so that its leases run out and the others take its share; it speaks
    // again once its view has caught up with what it last sent.
    {
        let shared = lock(shared);
        if shared.lagging {
            return shared.view.applied_seq >= shared.last_sent;
        }
    }
    let heartbeat = match publish(jetstream, settings, None, Op::Heartbeat).await {
        Ok(seq) => Some(seq),
        // Cut off: hold nothing new; deadlines run out on their own.
        Err(_) => return true,
    };
    let (held, live, free) = {
        let shared = lock(shared);
        let free = if shared.view.settled(settings.ttl) {
            shared.view.free(settings.partitions)
        } else {
            Vec::new()
        };
        (
            shared.view.held_by(node),
            shared.view.live_nodes(settings.ttl).len().max(1),
            free,
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
    let Some(last) = sent.iter().map(|(_, _, seq)| *seq).chain(heartbeat).max() else {
        return true;
    };
    lock(shared).last_sent = last;
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
    caught_up
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

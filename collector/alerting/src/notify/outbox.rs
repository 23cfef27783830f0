//! The durable outbox: every notification is written here first, then delivered.
//!
//! Delivery is at least once: an entry leaves the outbox only after its receiver
//! answered 2xx, so a restart resumes whatever was pending (an entry in flight during a
//! crash is sent again; its notification id lets receivers drop the duplicate). Entries
//! with the same receiver and order key go out one at a time, oldest first, so a
//! resolve never overtakes its trigger. Retries back off exponentially with jitter and
//! honour `Retry-After`; an entry older than the maximum age is given up, counted and
//! logged, and stays visible as failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::notify::transport::{Delivery, HttpTransport};
use crate::notify::{render, Receiver};
use bellwether_model::notification::Counter;
use bellwether_model::notification::EntryState;
use bellwether_model::notification::NewEntry;
use bellwether_model::notification::OutboxEntry;
use bellwether_model::scope::Scope;
use bellwether_model::time::now_unix_ms;
use bellwether_store::alerts::OutboxStore;
use bellwether_store::StoreError;

#[path = "outbox_view.rs"]
mod view;
pub use view::{EntryView, OutboxView};

/// Longest the delivery loop sleeps before looking at the outbox again.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Failed entries are listed by the API for this long, then removed.
const FAILED_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);

/// How the outbox retries and when it gives up (`[routing]` `delivery_max_age`,
/// `retry_initial`, `retry_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    /// A notification not delivered after this long is given up.
    pub max_age: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_MAX_AGE,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
        }
    }
}

/// The handle alert code writes through; wakes the deliverer on every enqueue.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn OutboxStore>,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(store: Arc<dyn OutboxStore>) -> Self {
        Self {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Writes `entries` durably (blocking), then wakes the deliverer.
    pub fn enqueue(&self, entries: Vec<NewEntry>, now_unix_ms: i64) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.store.enqueue(entries, now_unix_ms)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Pending and failed entries with the counters (blocking).
    pub fn view(&self) -> Result<OutboxView, StoreError> {
        // Entries first: an entry and its count change together, so counters read after
        // the entries include every change the entries show (and perhaps a later one).
        let entries = self.store.entries()?;
        let mut view = OutboxView {
            counters: self.store.counters()?,
            ..OutboxView::default()
        };
        for entry in entries {
            match entry.state {
                EntryState::Pending => view.pending.push(EntryView::from(&entry)),
                EntryState::Failed => view.failed.push(EntryView::from(&entry)),
            }
        }
        Ok(view)
    }

    /// A deliverer for this outbox; run it with [`Deliverer::run`].
    pub fn deliverer(
        &self,
        receivers: BTreeMap<String, Arc<Receiver>>,
        settings: DeliverySettings,
        transport: HttpTransport,
    ) -> Deliverer {
        self.deliverer_scoped(receivers, settings, transport, Scope::all())
    }

    /// A deliverer that sends only the entries of services in `scope`, asked right
    /// before each one starts (a cluster node delivers its partitions' entries of the
    /// shared outbox, and stops the moment it loses their lease).
    pub fn deliverer_scoped(
        &self,
        receivers: BTreeMap<String, Arc<Receiver>>,
        settings: DeliverySettings,
        transport: HttpTransport,
        scope: Scope,
    ) -> Deliverer {
        let limits = receivers
            .values()
            .map(|r| {
                (
                    r.name.clone(),
                    Arc::new(Semaphore::new(r.concurrency.max(1))),
                )
            })
            .collect();
        Deliverer {
            shared: Arc::new(Shared {
                store: Arc::clone(&self.store),
                wake: Arc::clone(&self.wake),
                receivers,
                limits,
                settings,
                transport,
                scope,
                in_flight: Mutex::new(HashSet::new()),
                writes: Arc::new(Semaphore::new(WRITE_PERMITS as usize)),
            }),
        }
    }
}

struct Shared {
    store: Arc<dyn OutboxStore>,
    wake: Arc<Notify>,
    receivers: BTreeMap<String, Arc<Receiver>>,
    limits: HashMap<String, Arc<Semaphore>>,
    settings: DeliverySettings,
    transport: HttpTransport,
    scope: Scope,
    in_flight: Mutex<HashSet<u64>>,
    /// One permit for each store write a delivery started: the write goes on even if the
    /// delivery is aborted, and the deliverer waits for it before it returns.
    writes: Arc<Semaphore>,
}

/// More store writes than can ever run at once.
const WRITE_PERMITS: u32 = 1 << 16;

/// Delivers outbox entries until stopped.
pub struct Deliverer {
    shared: Arc<Shared>,
}

/// Exponential backoff with jitter: attempt n waits between half and all of
/// `initial × 2^(n-1)`, capped at `max`.
pub fn backoff(attempts: u32, settings: &DeliverySettings, rng: &mut impl Rng) -> Duration {
    let exp = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
    let full = settings
        .retry_initial
        .saturating_mul(exp)
        .min(settings.retry_max);
    let full_ms = u64::try_from(full.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rng.random_range(full_ms.div_ceil(2)..=full_ms))
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Deliverer {
    /// Runs until `stopped` completes. Entries in flight then stay pending for next time.
    ///
    /// A store that cannot be read (a replicated store while its servers elect a leader,
    /// a disk error) is logged and tried again every second: delivery never stops for
    /// good on one failed read.
    pub async fn run(self, stopped: impl Future<Output = ()>) -> Result<(), StoreError> {
        tokio::pin!(stopped);
        let mut tasks = JoinSet::new();
        let mut failures = 0u32;
        loop {
            let next_due = match self.dispatch(&mut tasks).await {
                Ok(next_due) => {
                    if failures > 0 {
                        tracing::info!(failures, "outbox readable again; delivering");
                    }
                    failures = 0;
                    next_due
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::error!(error = %e, failures, "outbox unreadable; delivery retries every second");
                    }
                    now_unix_ms() + ms(MAX_IDLE)
                }
            };
            while tasks.try_join_next().is_some() {}
            let now = now_unix_ms();
            let idle =
                Duration::from_millis(u64::try_from(next_due - now).unwrap_or(0)).min(MAX_IDLE);
            tokio::select! {
                () = tokio::time::sleep(idle) => {}
                () = self.shared.wake.notified() => {}
                () = &mut stopped => break,
            }
        }
        tasks.abort_all();
        // Wait until aborted deliveries are dropped and the store writes they began are
        // done, so the store is released.
        while tasks.join_next().await.is_some() {}
        let _ = self.shared.writes.acquire_many(WRITE_PERMITS).await;
        Ok(())
    }

    /// Starts every due entry that has a free slot; returns when the next one is due.
    async fn dispatch(&self, tasks: &mut JoinSet<()>) -> Result<i64, StoreError> {
        // Which deliveries run is read before the entries: one that ends while they are
        // read has stored its outcome, which the read may have missed, so it is skipped
        // until the next round. Read after, it could be sent twice. Only this loop adds
        // to the set, so nothing can start in between.
        let running: HashSet<u64> = self
            .shared
            .in_flight
            .lock()
            .map(|set| set.clone())
            .unwrap_or_default();
        let store = Arc::clone(&self.shared.store);
        let entries = tokio::task::spawn_blocking(move || store.entries())
            .await
            .map_err(|e| StoreError::Corrupt(format!("outbox task: {e}")))??;
        let now = now_unix_ms();
        let mut next_due = now + ms(MAX_IDLE);
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for mut entry in entries {
            if !self.shared.scope.owns(&entry.notification.release.service) {
                continue;
            }
            if entry.state == EntryState::Failed {
                // Failed entries stay visible for a while, then go.
                if entry.failed_at_unix_ms.unwrap_or(0) < now - FAILED_RETENTION_MS {
                    let store = Arc::clone(&self.shared.store);
                    tokio::task::spawn_blocking(move || store.remove(entry.id))
                        .await
                        .map_err(|e| StoreError::Corrupt(format!("outbox task: {e}")))??;
                }
                continue;
            }
            // Only the oldest pending entry of a (receiver, order key) may go.
            if !seen.insert((entry.receiver.clone(), entry.order_key.clone())) {
                continue;
            }
            if running.contains(&entry.id) {
                continue;
            }
            let Some(receiver) = self.shared.receivers.get(&entry.receiver).cloned() else {
                tracing::error!(receiver = %entry.receiver, id = entry.id, "notification for an unknown receiver dropped");
                self.fail(
                    &mut entry,
                    now,
                    "receiver no longer configured".into(),
                    Counter::Rejected,
                )
                .await?;
                continue;
            };
            if now - entry.created_at_unix_ms >= ms(self.shared.settings.max_age) {
                tracing::warn!(
                    receiver = %entry.receiver,
                    id = entry.id,
                    attempts = entry.attempts,
                    last_error = entry.last_error.as_deref().unwrap_or(""),
                    "notification given up after the maximum age"
                );
                let error = format!(
                    "given up after {} attempts: {}",
                    entry.attempts,
                    entry.last_error.as_deref().unwrap_or("never attempted")
                );
                self.fail(&mut entry, now, error, Counter::GivenUp).await?;
                continue;
            }
            if entry.next_attempt_at_unix_ms > now {
                next_due = next_due.min(entry.next_attempt_at_unix_ms);
                continue;
            }
            let Some(permit) = self
                .shared
                .limits
                .get(&entry.receiver)
                .and_then(|s| Arc::clone(s).try_acquire_owned().ok())
            else {
                continue;
            };
            if let Ok(mut set) = self.shared.in_flight.lock() {
                set.insert(entry.id);
            }
            tasks.spawn(deliver(Arc::clone(&self.shared), entry, receiver, permit));
        }
        Ok(next_due)
    }

    async fn fail(
        &self,
        entry: &mut OutboxEntry,
        now: i64,
        error: String,
        counter: Counter,
    ) -> Result<(), StoreError> {
        entry.state = EntryState::Failed;
        entry.failed_at_unix_ms = Some(now);
        entry.last_error = Some(error);
        crate::notify::counts::notification_failed(&entry.receiver, counter);
        let store = Arc::clone(&self.shared.store);
        let entry = entry.clone();
        tokio::task::spawn_blocking(move || store.save(&entry, Some(counter)))
            .await
            .map_err(|e| StoreError::Corrupt(format!("outbox task: {e}")))?
    }
}

async fn deliver(
    shared: Arc<Shared>,
    mut entry: OutboxEntry,
    receiver: Arc<Receiver>,
    permit: OwnedSemaphorePermit,
) {
    let id = entry.id;
    if shared.scope.is_shared() && !claim(&shared, &entry, &receiver).await {
        if let Ok(mut set) = shared.in_flight.lock() {
            set.remove(&id);
        }
        return;
    }
    let now = now_unix_ms();
    let delivery = match render(&entry.notification, &receiver, now) {
        Ok(outgoing) => shared.transport.send(outgoing, receiver.timeout).await,
        Err(e) => Delivery::Reject {
            error: e.to_string(),
        },
    };
    entry.attempts = entry.attempts.saturating_add(1);
    crate::notify::counts::notification_attempt(&receiver.name, &delivery);
    let now = now_unix_ms();
    let store = Arc::clone(&shared.store);
    let writing = Arc::clone(&shared.writes).try_acquire_owned().ok();
    let result = match delivery {
        Delivery::Delivered => {
            tracing::info!(
                receiver = %receiver.name,
                kind = receiver.kind.as_str(),
                id,
                notification = %entry.notification.id,
                attempts = entry.attempts,
                "notification delivered"
            );
            tokio::task::spawn_blocking(move || {
                let _writing = writing;
                store.delivered(id)
            })
            .await
        }
        Delivery::Retry { error, retry_after } => {
            let wait = backoff(entry.attempts, &shared.settings, &mut rand::rng())
                .max(retry_after.unwrap_or_default());
            tracing::warn!(
                receiver = %receiver.name,
                id,
                attempt = entry.attempts,
                retry_in_ms = ms(wait),
                error = %error,
                "notification delivery failed, will retry"
            );
            entry.next_attempt_at_unix_ms = now.saturating_add(ms(wait));
            entry.last_error = Some(error);
            tokio::task::spawn_blocking(move || {
                let _writing = writing;
                store.save(&entry, Some(Counter::Retries))
            })
            .await
        }
        Delivery::Reject { error } => {
            tracing::error!(
                receiver = %receiver.name,
                id,
                attempt = entry.attempts,
                error = %error,
                "notification rejected by the receiver"
            );
            entry.state = EntryState::Failed;
            entry.failed_at_unix_ms = Some(now);
            entry.last_error = Some(error);
            tokio::task::spawn_blocking(move || {
                let _writing = writing;
                store.save(&entry, Some(Counter::Rejected))
            })
            .await
        }
    };
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(id, error = %error, "updating the outbox failed"),
        Err(error) => tracing::error!(id, error = %error, "outbox task failed"),
    }
    if let Ok(mut set) = shared.in_flight.lock() {
        set.remove(&id);
    }
    drop(permit);
    shared.wake.notify_one();
}

/// In a cluster, marks `entry` as not due until its delivery has had time to finish,
/// so that a node that takes the service over while this one is sending (or paused in
/// the middle of it) waits for the outcome instead of sending it too; then asks the
/// fence once more. False: do not send now.
async fn claim(shared: &Arc<Shared>, entry: &OutboxEntry, receiver: &Receiver) -> bool {
    let mut claimed = entry.clone();
    let hold = receiver.timeout.saturating_add(CLAIM_MARGIN);
    claimed.next_attempt_at_unix_ms = now_unix_ms().saturating_add(ms(hold));
    let store = Arc::clone(&shared.store);
    let saved = tokio::task::spawn_blocking(move || store.save(&claimed, None)).await;
    if !matches!(saved, Ok(Ok(()))) {
        tracing::warn!(
            id = entry.id,
            "claiming a notification failed; not sent now"
        );
        return false;
    }
    shared.scope.owns(&entry.notification.release.service)
}

/// How much longer than a receiver's timeout a claim holds an entry.
const CLAIM_MARGIN: Duration = Duration::from_secs(2);

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;

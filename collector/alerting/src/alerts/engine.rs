//! The alert engine: verdicts in, alert state and outbox entries out.
//!
//! All state changes happen under one lock and are written through to the store; the
//! outbox entries of a change are written before the alerts that record them as sent,
//! so a crash in between repeats a notification rather than losing it.
//!
//! - this file: the engine's handle and its async API (every call runs its work on a
//!   blocking thread under the lock), the tick loop, and the write-through helpers;
//! - [`transitions`]: what a verdict, an acknowledgement or a healthy release does to
//!   the alerts (the state machine firing → acknowledged → resolved);
//! - [`schedule`]: what time does: group windows closing, repeats, pruning, and deploy
//!   notifications.

mod schedule;
mod transitions;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::alerts::plan::Plan;
use crate::notify::outbox::Outbox;
use crate::notify::Receiver;
use crate::routing::config::AlertingConfig;
use bellwether_model::alert::{Alert, AlertFilter, ReleaseVerdict};
use bellwether_model::release::Deployment;
use bellwether_model::scope::Scope;
use bellwether_model::silence::{Silence, SilenceRequest};
use bellwether_model::time::now_unix_ms;
use bellwether_store::alerts::AlertStore;
use bellwether_store::StoreError;

/// How often [`AlertEngine::run`] ticks.
pub const TICK: Duration = Duration::from_secs(1);
/// Resolved alerts and ended silences are forgotten after this long.
pub const RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("alert engine: {0}")]
    Internal(String),
}

struct State {
    alerts: BTreeMap<String, Alert>,
    silences: BTreeMap<String, Silence>,
}

struct Inner {
    config: AlertingConfig,
    receivers: BTreeMap<String, Arc<Receiver>>,
    store: Arc<dyn AlertStore>,
    outbox: Outbox,
    /// The services whose alerts this engine acts on; in a cluster, others' alerts are
    /// kept in the shared store and reloaded every tick.
    scope: Scope,
    state: Mutex<State>,
}

/// Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct AlertEngine {
    inner: Arc<Inner>,
}

impl AlertEngine {
    /// Loads alerts and silences from `store` (blocking).
    pub fn open(
        config: AlertingConfig,
        receivers: BTreeMap<String, Arc<Receiver>>,
        store: Arc<dyn AlertStore>,
        outbox: Outbox,
    ) -> Result<Self, AlertError> {
        Self::open_scoped(config, receivers, store, outbox, Scope::all())
    }

    /// [`AlertEngine::open`] for a cluster node: time acts only on alerts of services in
    /// `scope`, and the state is read again from the shared store on every tick, so it
    /// shows what other nodes changed.
    pub fn open_scoped(
        config: AlertingConfig,
        receivers: BTreeMap<String, Arc<Receiver>>,
        store: Arc<dyn AlertStore>,
        outbox: Outbox,
        scope: Scope,
    ) -> Result<Self, AlertError> {
        let state = load(store.as_ref())?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                receivers,
                store,
                outbox,
                scope,
                state: Mutex::new(state),
            }),
        })
    }

    pub fn config(&self) -> &AlertingConfig {
        &self.inner.config
    }

    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, AlertError> + Send + 'static,
    ) -> Result<T, AlertError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| AlertError::Internal(e.to_string()))?
    }

    /// Applies one evaluation of a release: fires, updates or resolves its alerts.
    pub async fn observe(&self, verdict: ReleaseVerdict) -> Result<(), AlertError> {
        self.blocking(move |inner| inner.observe(&verdict)).await
    }

    /// [`AlertEngine::observe`] for callers already on a blocking thread (blocks on IO).
    pub fn observe_blocking(&self, verdict: &ReleaseVerdict) -> Result<(), AlertError> {
        self.inner.observe(verdict)
    }

    /// Forgets alerts resolved before `before_unix_ms` (retention); returns how many.
    pub async fn forget_resolved(&self, before_unix_ms: i64) -> Result<usize, AlertError> {
        self.blocking(move |inner| {
            let mut state = inner.lock()?;
            let old: Vec<Alert> = state
                .alerts
                .values()
                .filter(|a| a.resolved_at_unix_ms.is_some_and(|t| t < before_unix_ms))
                .cloned()
                .collect();
            for alert in &old {
                inner.store.remove_alert(alert)?;
                state.alerts.remove(&alert.id);
            }
            Ok(old.len())
        })
        .await
    }

    /// Sends what is due at `now_unix_ms`: grouped first notifications, repeats.
    pub async fn tick(&self, now_unix_ms: i64) -> Result<(), AlertError> {
        self.blocking(move |inner| inner.tick(now_unix_ms)).await
    }

    /// A deployment was recorded: tell the owning team's receivers that opted in.
    pub async fn deployment_recorded(&self, deployment: Deployment) -> Result<(), AlertError> {
        self.blocking(move |inner| inner.deployment_recorded(&deployment, now_unix_ms()))
            .await
    }

    pub async fn acknowledge(
        &self,
        id: String,
        by: Option<String>,
        now_unix_ms: i64,
    ) -> Result<Alert, AlertError> {
        self.blocking(move |inner| inner.acknowledge(&id, by, now_unix_ms))
            .await
    }

    /// Alerts matching `filter`, newest first.
    pub async fn alerts(&self, filter: AlertFilter) -> Result<Vec<Alert>, AlertError> {
        self.blocking(move |inner| {
            let state = inner.lock()?;
            let mut list: Vec<Alert> = state
                .alerts
                .values()
                .filter(|a| filter.matches(a))
                .cloned()
                .collect();
            list.sort_by(|a, b| {
                b.started_at_unix_ms
                    .cmp(&a.started_at_unix_ms)
                    .then_with(|| a.id.cmp(&b.id))
            });
            Ok(list)
        })
        .await
    }

    pub async fn add_silence(
        &self,
        request: SilenceRequest,
        now_unix_ms: i64,
    ) -> Result<Silence, AlertError> {
        self.blocking(move |inner| {
            let id = format!("s-{}", inner.store.next_id()?);
            let silence = request
                .into_silence(id, now_unix_ms)
                .map_err(AlertError::Invalid)?;
            let mut state = inner.lock()?;
            inner.store.put_silence(&silence)?;
            state.silences.insert(silence.id.clone(), silence.clone());
            tracing::info!(id = %silence.id, comment = %silence.comment, "silence added");
            Ok(silence)
        })
        .await
    }

    pub async fn silences(&self) -> Result<Vec<Silence>, AlertError> {
        self.blocking(|inner| {
            let mut list: Vec<Silence> = inner.lock()?.silences.values().cloned().collect();
            list.sort_by_key(|s| std::cmp::Reverse(s.created_at_unix_ms));
            Ok(list)
        })
        .await
    }

    pub async fn silence(&self, id: String) -> Result<Silence, AlertError> {
        self.blocking(move |inner| {
            inner
                .lock()?
                .silences
                .get(&id)
                .cloned()
                .ok_or_else(|| AlertError::NotFound(format!("silence {id} not found")))
        })
        .await
    }

    pub async fn remove_silence(&self, id: String) -> Result<(), AlertError> {
        self.blocking(move |inner| {
            let mut state = inner.lock()?;
            if state.silences.remove(&id).is_none() {
                return Err(AlertError::NotFound(format!("silence {id} not found")));
            }
            inner.store.remove_silence(&id)?;
            tracing::info!(id = %id, "silence removed");
            Ok(())
        })
        .await
    }

    /// Ticks every second until `stopped` completes.
    pub async fn run(self, stopped: impl Future<Output = ()>) {
        tokio::pin!(stopped);
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = &mut stopped => return,
            }
            if let Err(error) = self.tick(now_unix_ms()).await {
                tracing::error!(error = %error, "alert tick failed");
            }
        }
    }
}

fn load(store: &dyn AlertStore) -> Result<State, AlertError> {
    let alerts = store
        .alerts()?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    let silences = store
        .silences()?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    Ok(State { alerts, silences })
}

impl Inner {
    fn lock(&self) -> Result<MutexGuard<'_, State>, AlertError> {
        self.state
            .lock()
            .map_err(|_| AlertError::Internal("state lock poisoned".into()))
    }

    fn team_receivers(&self, team: &str) -> Vec<String> {
        self.config.team_receivers(team).to_vec()
    }

    fn enqueue(&self, plan: Plan, now: i64) -> Result<(), AlertError> {
        if plan.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        let mut failed = None;
        let mut next_id = || match store.next_id() {
            Ok(n) => format!("n-{n}"),
            Err(e) => {
                failed = Some(e);
                format!("n-{now}")
            }
        };
        let entries = plan.into_entries(
            &self.receivers,
            self.config.dashboard_url.as_deref(),
            now,
            &mut next_id,
        );
        if let Some(e) = failed {
            return Err(e.into());
        }
        // Delivery runs on the wall clock, whatever time the alert logic was given.
        self.outbox.enqueue(entries, now_unix_ms())?;
        Ok(())
    }

    fn save(&self, state: &mut State, alert: Alert) -> Result<(), AlertError> {
        self.store.put_alert(&alert)?;
        state.alerts.insert(alert.id.clone(), alert);
        Ok(())
    }
}

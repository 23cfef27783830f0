//! Turns stored counts into verdicts, continuously.
//!
//! # Layout
//!
//! ```text
//! store ──> inputs (baseline choice, method, exposure kind) ──> analysis::judge ──> publish
//!                      baseline.rs                     signatures.rs, detect::latency│
//!                                                                                  ├─> watch channel per release
//!                                                                                  │   (long-poll, gRPC watch)
//!                                                                                  └─> verdicts (sled tree)
//! ```
//!
//! - [`Evaluator::run`]: every `evaluation_interval`, a round over the active deployments
//!   (started within `active_window`, newest of their environment or still serving).
//! - [`Evaluator::health`]: on demand, one release now.
//! - State is kept per service ([`ServiceState`]): each release's watch channel, the
//!   revision of its verdict and the streaks of its candidate new issues. Only scheduled
//!   rounds advance streaks.
//! - A new revision is published when the verdict or its evidence changes materially
//!   ([`ReleaseHealth::material`]); every evaluation refreshes the value itself.

pub mod analysis;
pub mod baseline;
mod concurrent;
mod dependencies;
mod flags;
pub mod inputs;
mod latency;
pub mod settings;
pub mod signatures;
pub mod steady;
pub mod suspects;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::Error;
use crate::lookup::{resolve, ReleaseRef};
use bellwether_model::health::{Material, ReleaseHealth};
use bellwether_model::release::{Deployment, DeploymentFilter, ReleaseKey};
use bellwether_model::scope::Scope;
use bellwether_model::time::now_unix_ms;
use bellwether_store::{ReleaseStore, StoreError};

use baseline::{is_active, TRAFFIC_RECENCY};
use bellwether_model::health::TimelineEntry;
use bellwether_model::health::VerdictSink;
use bellwether_store::verdicts::VerdictStore;
use settings::DetectionSettings;
use signatures::Streaks;

/// Longest a long-poll may wait.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// The latest health of a release, as watchers see it.
pub type Latest = Option<Arc<ReleaseHealth>>;

struct ReleaseState {
    tx: watch::Sender<Latest>,
    streaks: Streaks,
    material: Option<Material>,
    revision: u64,
}

impl ReleaseState {
    fn new(persisted: Option<ReleaseHealth>) -> Self {
        let revision = persisted.as_ref().map_or(0, |h| h.revision);
        let material = persisted.as_ref().map(ReleaseHealth::material);
        let (tx, _) = watch::channel(persisted.map(Arc::new));
        Self {
            tx,
            streaks: Streaks::default(),
            material,
            revision,
        }
    }
}

/// Everything the evaluator keeps about one service; keyed by (environment, version).
#[derive(Default)]
pub struct ServiceState {
    releases: HashMap<(String, String), ReleaseState>,
}

struct Inner {
    store: Arc<dyn ReleaseStore>,
    verdicts: Arc<dyn VerdictStore>,
    settings: DetectionSettings,
    services: Mutex<HashMap<String, ServiceState>>,
    sink: OnceLock<Arc<dyn VerdictSink>>,
    /// The services whose verdicts this collector records and tells the sink of (in a
    /// cluster, those of the partitions it holds; every node still evaluates every
    /// release, for its own watchers).
    scope: Scope,
}

/// The verdict engine; cheap to clone.
#[derive(Clone)]
pub struct Evaluator {
    inner: Arc<Inner>,
}

impl Evaluator {
    pub fn new(
        store: Arc<dyn ReleaseStore>,
        verdicts: Arc<dyn VerdictStore>,
        settings: DetectionSettings,
    ) -> Self {
        Self::scoped(store, verdicts, settings, Scope::all())
    }

    /// An evaluator that records verdicts and tells its sink only for `scope`.
    pub fn scoped(
        store: Arc<dyn ReleaseStore>,
        verdicts: Arc<dyn VerdictStore>,
        settings: DetectionSettings,
        scope: Scope,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                verdicts,
                settings,
                services: Mutex::new(HashMap::new()),
                sink: OnceLock::new(),
                scope,
            }),
        }
    }

    /// Tells `sink` of every scheduled evaluation from now on. There is one sink; a
    /// second call is refused and hands the sink back.
    pub fn set_sink(&self, sink: Arc<dyn VerdictSink>) -> Result<(), Arc<dyn VerdictSink>> {
        self.inner.sink.set(sink)
    }

    pub fn settings(&self) -> &DetectionSettings {
        &self.inner.settings
    }

    /// Evaluates the active deployments every `evaluation_interval` until `stopped`.
    pub async fn run(self, stopped: impl Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(stopped);
        let mut ticker = tokio::time::interval(self.inner.settings.evaluation_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = &mut stopped => return Ok(()),
            }
            match self.round().await {
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "evaluation round failed"),
            }
        }
    }

    /// One scheduled round; returns how many deployments were evaluated.
    pub async fn round(&self) -> Result<usize, Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.round_blocking(now_unix_ms())).await?
    }

    fn round_blocking(&self, now: i64) -> Result<usize, Error> {
        let store = self.inner.store.as_ref();
        let mut groups: BTreeMap<(String, String), Vec<Deployment>> = BTreeMap::new();
        for d in store.deployments(&DeploymentFilter::default())? {
            groups
                .entry((d.release.service.clone(), d.release.environment.clone()))
                .or_default()
                .push(d);
        }
        let mut evaluated = 0;
        for group in groups.values() {
            for d in group {
                if !self.active(d, group, now)? {
                    continue;
                }
                match self.evaluate_with(d, group, true, now) {
                    Ok(_) => evaluated += 1,
                    Err(error) => tracing::warn!(
                        service = %d.release.service,
                        environment = %d.release.environment,
                        version = %d.release.version,
                        error = %error,
                        "evaluating release failed"
                    ),
                }
            }
        }
        Ok(evaluated)
    }

    fn active(&self, d: &Deployment, group: &[Deployment], now: i64) -> Result<bool, StoreError> {
        let newest = group
            .iter()
            .all(|o| o.started_at_unix_ms <= d.started_at_unix_ms);
        if is_active(d, newest, newest, now, self.inner.settings.active_window) {
            return Ok(true);
        }
        if !is_active(d, false, true, now, self.inner.settings.active_window) {
            return Ok(false);
        }
        let since = now - TRAFFIC_RECENCY.as_millis() as i64;
        let recent = self
            .inner
            .store
            .buckets(&d.release, since..i64::MAX)?
            .iter()
            .any(|(_, c)| c.log_records > 0 || c.spans > 0);
        Ok(recent)
    }

    fn services(&self) -> MutexGuard<'_, HashMap<String, ServiceState>> {
        self.inner
            .services
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the state of `release`, creating it (from the persisted verdict) first.
    fn with_state<T>(
        &self,
        release: &ReleaseKey,
        f: impl FnOnce(&mut ReleaseState) -> T,
    ) -> Result<T, StoreError> {
        let slot = (release.environment.clone(), release.version.clone());
        let known = self
            .services()
            .get(&release.service)
            .is_some_and(|s| s.releases.contains_key(&slot));
        let persisted = if known {
            None
        } else {
            self.inner.verdicts.latest(release)?
        };
        let mut services = self.services();
        let state = services
            .entry(release.service.clone())
            .or_default()
            .releases
            .entry(slot)
            .or_insert_with(|| ReleaseState::new(persisted));
        Ok(f(state))
    }

    fn evaluate_with(
        &self,
        deployment: &Deployment,
        same_env: &[Deployment],
        scheduled: bool,
        now: i64,
    ) -> Result<Arc<ReleaseHealth>, StoreError> {
        let release = &deployment.release;
        let settings = self.inner.settings.for_service(&release.service);
        let (input, totals, _) = inputs::gather(
            self.inner.store.as_ref(),
            self.inner.verdicts.as_ref(),
            deployment,
            same_env,
            settings,
            now,
        )?;
        let streaks = self.with_state(release, |s| s.streaks.get().clone())?;
        let judgement = analysis::judge(&input, settings, &streaks);
        let mut evidence = judgement.evidence;
        evidence.extend(suspects::suspect_evidence(
            self.inner.store.as_ref(),
            deployment,
            &judgement.figures.flagged_issues,
        )?);
        let health = ReleaseHealth {
            release: release.clone(),
            verdict: judgement.verdict,
            evidence,
            totals,
            evaluated_at_unix_ms: now,
            started_at_unix_ms: deployment.started_at_unix_ms,
            revision: 0,
            figures: judgement.figures,
        };
        let crossed = scheduled.then_some(judgement.crossed);
        let health = self.publish(health, crossed.as_deref())?;
        if let (true, Some(sink)) = (scheduled, self.inner.sink.get()) {
            if self.inner.scope.owns(&release.service) {
                sink.observe(deployment, &health);
            }
        }
        Ok(health)
    }

    /// Makes `health` the latest of its release: bumps the revision and persists it when
    /// it changed materially, wakes watchers then, and refreshes the value regardless.
    fn publish(
        &self,
        mut health: ReleaseHealth,
        crossed: Option<&[String]>,
    ) -> Result<Arc<ReleaseHealth>, StoreError> {
        let verdicts = Arc::clone(&self.inner.verdicts);
        let release = health.release.clone();
        self.with_state(&release, |state| {
            if let Some(crossed) = crossed {
                state.streaks.advance(crossed);
            }
            if let Some(current) = state.tx.borrow().clone() {
                if current.evaluated_at_unix_ms > health.evaluated_at_unix_ms {
                    // A newer evaluation finished first.
                    return Ok(current);
                }
            }
            let material = health.material();
            let changed = state.material.as_ref() != Some(&material);
            if changed {
                state.revision += 1;
                state.material = Some(material);
            }
            health.revision = state.revision;
            if changed && self.inner.scope.owns(&release.service) {
                verdicts.record(&health)?;
            }
            let health = Arc::new(health);
            state.tx.send_if_modified(|latest| {
                *latest = Some(Arc::clone(&health));
                changed
            });
            Ok(health)
        })?
    }

    fn health_blocking(&self, release: &ReleaseRef) -> Result<Arc<ReleaseHealth>, Error> {
        let store = self.inner.store.as_ref();
        let deployment = resolve(store, release)?;
        let filter = DeploymentFilter {
            service: Some(deployment.release.service.clone()),
            environment: Some(deployment.release.environment.clone()),
            version: None,
        };
        let same_env = store.deployments(&filter)?;
        let now = now_unix_ms();
        if !self.active(&deployment, &same_env, now)? {
            let latest = self.with_state(&deployment.release, |s| s.tx.borrow().clone())?;
            if let Some(latest) = latest {
                return Ok(latest);
            }
        }
        Ok(self.evaluate_with(&deployment, &same_env, false, now)?)
    }

    /// The health of `release`, evaluated now (a release no longer active keeps the
    /// verdict it was last given).
    pub async fn health(&self, release: ReleaseRef) -> Result<Arc<ReleaseHealth>, Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.health_blocking(&release)).await?
    }

    /// A receiver of `release`'s latest health; it is told of every new revision.
    pub fn subscribe(&self, release: &ReleaseKey) -> Result<watch::Receiver<Latest>, Error> {
        Ok(self.with_state(release, |s| s.tx.subscribe())?)
    }

    /// Long-poll: the health of `release` as soon as its revision differs from `since`
    /// (default: the revision now), or when `wait` (capped at [`MAX_WAIT`]) is up.
    pub async fn wait(
        &self,
        release: ReleaseRef,
        since: Option<u64>,
        wait: Duration,
    ) -> Result<Arc<ReleaseHealth>, Error> {
        let current = self.health(release).await?;
        let seen = since.unwrap_or(current.revision);
        if current.revision != seen || wait.is_zero() {
            return Ok(current);
        }
        let mut rx = self.subscribe(&current.release)?;
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        loop {
            if let Some(latest) = rx.borrow_and_update().clone() {
                if latest.revision != seen {
                    return Ok(latest);
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let latest = rx.borrow().clone();
        Ok(latest.unwrap_or(current))
    }

    /// The verdict timeline of `release`.
    pub async fn timeline(
        &self,
        release: ReleaseRef,
    ) -> Result<(Deployment, Vec<TimelineEntry>), Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let deployment = resolve(this.inner.store.as_ref(), &release)?;
            let timeline = this.inner.verdicts.timeline(&deployment.release)?;
            Ok((deployment, timeline))
        })
        .await?
    }
}

#[cfg(test)]
mod tests;

//! The alert engine: verdicts in, alert state and outbox entries out.
//!
//! All state changes happen under one lock and are written through to the store; the
//! outbox entries of a change are written before the alerts that record them as sent,
//! so a crash in between repeats a notification rather than losing it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::alerts::plan::Plan;
use crate::notify::outbox::Outbox;
use crate::notify::{Receiver, ReceiverKind};
use crate::routing::config::AlertingConfig;
use crate::routing::Owner;
use bellwether_model::alert::{
    alert_id, dedup_key, Alert, AlertFilter, AlertKind, AlertState, EvidenceLine, Health,
    ReleaseVerdict, Severity,
};
use bellwether_model::notification::NewEntry;
use bellwether_model::notification::{Event, Notification, ReleaseInfo, Status};
use bellwether_model::release::Deployment;
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
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                receivers,
                store,
                outbox,
                state: Mutex::new(State { alerts, silences }),
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

    fn observe(&self, verdict: &ReleaseVerdict) -> Result<(), AlertError> {
        let now = verdict.at_unix_ms;
        let d = &verdict.deployment;
        let mut state = self.lock()?;
        match verdict.health {
            Health::Pending => Ok(()),
            Health::Healthy => self.release_healthy(&mut state, d, now),
            Health::Degraded | Health::Unhealthy => {
                let service_owner = self.config.ownership.service_owner(
                    &d.release.service,
                    &d.release.environment,
                    d.team.as_deref(),
                );
                if verdict.error_spike || verdict.health == Health::Unhealthy {
                    let severity = if verdict.health == Health::Unhealthy {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    };
                    // The evaluator lists its baseline and figures first: name the
                    // regression itself when it is there.
                    let summary = verdict
                        .evidence
                        .iter()
                        .find(|e| e.kind == "regression")
                        .or(verdict.evidence.first())
                        .map_or_else(
                            || "error rate regressed".to_owned(),
                            |e| format!("error spike: {}", e.summary),
                        );
                    let fire = Fire {
                        kind: AlertKind::ErrorSpike,
                        fingerprint: None,
                        severity,
                        summary,
                        evidence: verdict.evidence.clone(),
                        owner: service_owner.clone(),
                    };
                    self.fire(&mut state, d, fire, now)?;
                }
                for issue in &verdict.new_issues {
                    let owner = self.config.ownership.issue_owner(
                        &issue.code,
                        &d.release.service,
                        &d.release.environment,
                        d.team.as_deref(),
                    );
                    let location = issue
                        .code
                        .path
                        .as_deref()
                        .or(issue.code.module.as_deref())
                        .unwrap_or("unknown code");
                    let mut evidence = vec![EvidenceLine {
                        kind: "new_issue".into(),
                        summary: format!(
                            "{} ({} occurrences) at {location}",
                            issue.title, issue.count
                        ),
                    }];
                    if let Some(sample) = &issue.sample {
                        evidence.push(EvidenceLine {
                            kind: "sample".into(),
                            summary: crate::notify::truncate(sample, 2048),
                        });
                    }
                    let fire = Fire {
                        kind: AlertKind::NewIssue,
                        fingerprint: Some(issue.fingerprint.clone()),
                        severity: Severity::Error,
                        summary: format!("new error: {}", issue.title),
                        evidence,
                        owner,
                    };
                    self.fire(&mut state, d, fire, now)?;
                }
                if let Some(latency) = &verdict.latency_regression {
                    let fire = Fire {
                        kind: AlertKind::LatencyRegression,
                        fingerprint: None,
                        severity: Severity::Warning,
                        summary: format!("latency regression: {latency}"),
                        evidence: vec![EvidenceLine {
                            kind: "latency".into(),
                            summary: latency.clone(),
                        }],
                        owner: service_owner,
                    };
                    self.fire(&mut state, d, fire, now)?;
                }
                Ok(())
            }
        }
    }

    fn fire(
        &self,
        state: &mut State,
        d: &Deployment,
        fire: Fire,
        now: i64,
    ) -> Result<(), AlertError> {
        let key = dedup_key(&d.release, fire.kind, fire.fingerprint.as_deref());
        let id = alert_id(&key);
        // Join the pending group of this release and team, else open one.
        let due = state
            .alerts
            .values()
            .filter(|a| a.release == d.release && a.team == fire.owner.team)
            .filter(|a| a.state == AlertState::Firing)
            .filter_map(|a| a.notify_due_at_unix_ms)
            .min()
            .unwrap_or_else(|| {
                now.saturating_add(
                    i64::try_from(self.config.timing.group_window.as_millis()).unwrap_or(0),
                )
            });
        let alert = match state.alerts.get(&id).cloned() {
            Some(existing) if existing.superseded_by.is_some() => return Ok(()),
            Some(mut existing) if existing.state.is_active() => {
                let changed = existing.summary != fire.summary
                    || existing.evidence != fire.evidence
                    || existing.severity > fire.severity;
                if !changed {
                    return Ok(());
                }
                existing.summary = fire.summary;
                existing.evidence = fire.evidence;
                existing.severity = existing.severity.min(fire.severity);
                existing.updated_at_unix_ms = now;
                existing
            }
            previous => {
                tracing::info!(
                    id = %id,
                    kind = fire.kind.as_str(),
                    service = %d.release.service,
                    environment = %d.release.environment,
                    version = %d.release.version,
                    team = %fire.owner.team,
                    reopened = previous.is_some(),
                    "alert firing"
                );
                Alert {
                    id,
                    dedup_key: key,
                    kind: fire.kind,
                    release: d.release.clone(),
                    commit: d.commit.clone(),
                    deploy_id: d.deploy_id.clone(),
                    release_started_at_unix_ms: d.started_at_unix_ms,
                    fingerprint: fire.fingerprint,
                    team: fire.owner.team,
                    routed_by: fire.owner.matched_by.to_string(),
                    severity: fire.severity,
                    summary: fire.summary,
                    evidence: fire.evidence,
                    state: AlertState::Firing,
                    started_at_unix_ms: now,
                    updated_at_unix_ms: now,
                    acknowledged_at_unix_ms: None,
                    acknowledged_by: None,
                    resolved_at_unix_ms: None,
                    resolution: None,
                    superseded_by: None,
                    notify_due_at_unix_ms: Some(due),
                    sent: BTreeMap::new(),
                    notified: Default::default(),
                    silenced_by: None,
                }
            }
        };
        self.save(state, alert)
    }

    /// Resolves the release's alerts, and those of older releases it supersedes.
    fn release_healthy(
        &self,
        state: &mut State,
        d: &Deployment,
        now: i64,
    ) -> Result<(), AlertError> {
        let r = &d.release;
        let mut resolved = Vec::new();
        for alert in state.alerts.values() {
            if !alert.state.is_active()
                || alert.release.service != r.service
                || alert.release.environment != r.environment
            {
                continue;
            }
            if alert.release.version == r.version {
                resolved.push((alert.clone(), "release became healthy".to_owned(), None));
            } else if alert.release_started_at_unix_ms < d.started_at_unix_ms {
                resolved.push((
                    alert.clone(),
                    format!("superseded by {}", r.version),
                    Some(r.version.clone()),
                ));
            }
        }
        let mut plan = Plan::default();
        let mut changed = Vec::new();
        for (mut alert, note, superseded_by) in resolved {
            tracing::info!(id = %alert.id, resolution = %note, "alert resolved");
            alert.state = AlertState::Resolved;
            alert.resolved_at_unix_ms = Some(now);
            alert.updated_at_unix_ms = now;
            alert.resolution = Some(note);
            alert.superseded_by = superseded_by;
            alert.notify_due_at_unix_ms = None;
            for receiver in &alert.notified {
                plan.add(&alert, receiver, Status::Resolved, false);
            }
            changed.push(alert);
        }
        self.enqueue(plan, now)?;
        for alert in changed {
            self.save(state, alert)?;
        }
        Ok(())
    }

    fn silenced_by(&self, state: &State, alert: &Alert, now: i64) -> Option<String> {
        state
            .silences
            .values()
            .find(|s| s.silences(alert, now))
            .map(|s| s.id.clone())
    }

    fn tick(&self, now: i64) -> Result<(), AlertError> {
        let mut state = self.lock()?;
        let mut plan = Plan::default();
        let mut changed: Vec<Alert> = Vec::new();
        let repeat_ms =
            i64::try_from(self.config.timing.repeat_interval.as_millis()).unwrap_or(i64::MAX);
        for alert in state.alerts.values() {
            if !alert.state.is_active() {
                continue;
            }
            let due = alert.notify_due_at_unix_ms.is_some_and(|t| t <= now)
                && alert.state == AlertState::Firing;
            let silenced = self.silenced_by(&state, alert, now);
            if silenced.is_some() {
                if due && alert.silenced_by != silenced {
                    let mut alert = alert.clone();
                    alert.silenced_by = silenced;
                    changed.push(alert);
                }
                continue;
            }
            let mut next = alert.clone();
            next.silenced_by = None;
            if due {
                for receiver in self.team_receivers(&alert.team) {
                    plan.add(alert, &receiver, Status::Firing, false);
                    next.notified.insert(receiver.clone());
                    next.sent.insert(receiver, now);
                }
                next.notify_due_at_unix_ms = None;
                changed.push(next);
                continue;
            }
            if alert.notify_due_at_unix_ms.is_some() {
                continue;
            }
            let mut repeated = false;
            for receiver in &alert.notified {
                let Some(r) = self.receivers.get(receiver) else {
                    continue;
                };
                let interval = match (alert.state, r.kind) {
                    (_, ReceiverKind::Alertmanager) => r.resend_interval.map_or(repeat_ms, |d| {
                        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
                    }),
                    (AlertState::Firing, _) => repeat_ms,
                    _ => continue,
                };
                let last = alert
                    .sent
                    .get(receiver)
                    .copied()
                    .unwrap_or(alert.started_at_unix_ms);
                if last.saturating_add(interval) <= now {
                    let status = match alert.state {
                        AlertState::Acknowledged => Status::Acknowledged,
                        _ => Status::Firing,
                    };
                    plan.add(alert, receiver, status, true);
                    next.sent.insert(receiver.clone(), now);
                    repeated = true;
                }
            }
            if repeated {
                changed.push(next);
            }
        }
        self.enqueue(plan, now)?;
        for alert in changed {
            self.save(&mut state, alert)?;
        }
        self.prune(&mut state, now)
    }

    fn prune(&self, state: &mut State, now: i64) -> Result<(), AlertError> {
        let cutoff = now.saturating_sub(RETENTION_MS);
        let old: Vec<Alert> = state
            .alerts
            .values()
            .filter(|a| a.resolved_at_unix_ms.is_some_and(|t| t < cutoff))
            .cloned()
            .collect();
        for alert in old {
            self.store.remove_alert(&alert)?;
            state.alerts.remove(&alert.id);
        }
        let ended: Vec<String> = state
            .silences
            .values()
            .filter(|s| s.ends_at_unix_ms < cutoff)
            .map(|s| s.id.clone())
            .collect();
        for id in ended {
            self.store.remove_silence(&id)?;
            state.silences.remove(&id);
        }
        Ok(())
    }

    fn acknowledge(&self, id: &str, by: Option<String>, now: i64) -> Result<Alert, AlertError> {
        let mut state = self.lock()?;
        let mut alert = state
            .alerts
            .get(id)
            .cloned()
            .ok_or_else(|| AlertError::NotFound(format!("alert {id} not found")))?;
        match alert.state {
            AlertState::Acknowledged => return Ok(alert),
            AlertState::Resolved => {
                return Err(AlertError::Invalid(format!(
                    "alert {id} is already resolved"
                )))
            }
            AlertState::Firing => {}
        }
        alert.state = AlertState::Acknowledged;
        alert.acknowledged_at_unix_ms = Some(now);
        alert.acknowledged_by = by;
        alert.updated_at_unix_ms = now;
        // Seen before it went out: no need to page anyone.
        alert.notify_due_at_unix_ms = None;
        let mut plan = Plan::default();
        for receiver in &alert.notified {
            if self
                .receivers
                .get(receiver)
                .is_some_and(|r| r.kind.takes_acknowledgements())
            {
                plan.add(&alert, receiver, Status::Acknowledged, false);
            }
        }
        self.enqueue(plan, now)?;
        tracing::info!(id = %id, "alert acknowledged");
        self.save(&mut state, alert.clone())?;
        Ok(alert)
    }

    fn deployment_recorded(&self, d: &Deployment, now: i64) -> Result<(), AlertError> {
        let owner = self.config.ownership.service_owner(
            &d.release.service,
            &d.release.environment,
            d.team.as_deref(),
        );
        let id = format!("n-{}", self.store.next_id()?);
        let entries: Vec<NewEntry> = self
            .team_receivers(&owner.team)
            .into_iter()
            .filter(|name| {
                self.receivers
                    .get(name)
                    .is_some_and(|r| r.deploys && r.kind.takes_deploys())
            })
            .map(|receiver| NewEntry {
                receiver,
                order_key: format!("deploy/{}/{}", d.release.service, d.release.environment),
                notification: Notification {
                    id: id.clone(),
                    team: owner.team.clone(),
                    release: ReleaseInfo::from(d),
                    event: Event::Deploy,
                    dashboard_url: self.config.dashboard_url.clone(),
                    created_at_unix_ms: now,
                },
            })
            .collect();
        self.outbox.enqueue(entries, now_unix_ms())?;
        Ok(())
    }
}

struct Fire {
    kind: AlertKind,
    fingerprint: Option<String>,
    severity: Severity,
    summary: String,
    evidence: Vec<EvidenceLine>,
    owner: Owner,
}

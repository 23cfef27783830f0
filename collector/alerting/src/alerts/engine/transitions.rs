//! The alert state machine: a verdict fires, updates or resolves a release's alerts; an
//! acknowledgement or a newer healthy release moves them on.

use super::{AlertError, Inner, State};
use crate::alerts::plan::Plan;
use crate::routing::Owner;
use bellwether_model::alert::alert_id;
use bellwether_model::alert::dedup_key;
use bellwether_model::alert::Alert;
use bellwether_model::alert::AlertKind;
use bellwether_model::alert::AlertState;
use bellwether_model::alert::EvidenceLine;
use bellwether_model::alert::Health;
use bellwether_model::alert::ReleaseVerdict;
use bellwether_model::alert::Severity;
use bellwether_model::notification::Status;
use bellwether_model::release::Deployment;
use std::collections::BTreeMap;

impl Inner {
    pub(super) fn observe(&self, verdict: &ReleaseVerdict) -> Result<(), AlertError> {
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

    pub(super) fn silenced_by(&self, state: &State, alert: &Alert, now: i64) -> Option<String> {
        state
            .silences
            .values()
            .find(|s| s.silences(alert, now))
            .map(|s| s.id.clone())
    }

    pub(super) fn acknowledge(
        &self,
        id: &str,
        by: Option<String>,
        now: i64,
    ) -> Result<Alert, AlertError> {
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
}

struct Fire {
    kind: AlertKind,
    fingerprint: Option<String>,
    severity: Severity,
    summary: String,
    evidence: Vec<EvidenceLine>,
    owner: Owner,
}

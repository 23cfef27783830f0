//! What the passing of time does to alerts: notifications due at the end of their group
//! window go out (unless silenced), firing alerts repeat, old alerts and silences are
//! forgotten; and recorded deployments are announced to receivers that opted in.

use super::RETENTION_MS;
use super::{AlertError, Inner, State};
use crate::alerts::plan::Plan;
use crate::notify::ReceiverKind;
use bellwether_model::alert::Alert;
use bellwether_model::alert::AlertState;
use bellwether_model::notification::Event;
use bellwether_model::notification::NewEntry;
use bellwether_model::notification::Notification;
use bellwether_model::notification::ReleaseInfo;
use bellwether_model::notification::Status;
use bellwether_model::release::Deployment;
use bellwether_model::time::now_unix_ms;

impl Inner {
    pub(super) fn tick(&self, now: i64) -> Result<(), AlertError> {
        let mut state = self.lock()?;
        if self.scope.is_shared() {
            *state = super::load(self.store.as_ref())?;
        }
        let mut plan = Plan::default();
        let mut changed: Vec<Alert> = Vec::new();
        let repeat_ms =
            i64::try_from(self.config.timing.repeat_interval.as_millis()).unwrap_or(i64::MAX);
        for alert in state.alerts.values() {
            if !alert.state.is_active() || !self.scope.owns(&alert.release.service) {
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
            .filter(|a| self.scope.owns(&a.release.service))
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

    pub(super) fn deployment_recorded(&self, d: &Deployment, now: i64) -> Result<(), AlertError> {
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

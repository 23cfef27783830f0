//! Turning alerts into outbox entries: one notification per (release, team, status),
//! one entry per receiver — except PagerDuty, which takes one event per alert.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::notify::{Receiver, ReceiverKind};
use bellwether_model::alert::Alert;
use bellwether_model::alert::AlertSnapshot;
use bellwether_model::notification::NewEntry;
use bellwether_model::notification::{Event, Notification, ReleaseInfo, Status};
use bellwether_model::release::ReleaseKey;

/// Alerts headed for receivers, grouped by release, team and status.
#[derive(Default)]
pub struct Plan {
    groups: BTreeMap<(ReleaseKey, String, StatusKey), Group>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct StatusKey(u8, bool);

fn status_key(status: Status, repeat: bool) -> StatusKey {
    let n = match status {
        Status::Firing => 0,
        Status::Acknowledged => 1,
        Status::Resolved => 2,
    };
    StatusKey(n, repeat)
}

struct Group {
    status: Status,
    repeat: bool,
    release: ReleaseInfo,
    /// Receiver → alerts for it.
    receivers: BTreeMap<String, Vec<AlertSnapshot>>,
}

pub fn release_info(alert: &Alert) -> ReleaseInfo {
    ReleaseInfo {
        service: alert.release.service.clone(),
        environment: alert.release.environment.clone(),
        version: alert.release.version.clone(),
        commit: alert.commit.clone(),
        deploy_id: alert.deploy_id.clone(),
        pipeline_url: None,
        notes: None,
        started_at_unix_ms: Some(alert.release_started_at_unix_ms),
    }
}

impl Plan {
    pub fn add(&mut self, alert: &Alert, receiver: &str, status: Status, repeat: bool) {
        let key = (
            alert.release.clone(),
            alert.team.clone(),
            status_key(status, repeat),
        );
        let group = self.groups.entry(key).or_insert_with(|| Group {
            status,
            repeat,
            release: release_info(alert),
            receivers: BTreeMap::new(),
        });
        group
            .receivers
            .entry(receiver.to_owned())
            .or_default()
            .push(alert.snapshot());
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Outbox entries; `next_id` numbers notifications.
    pub fn into_entries(
        self,
        receivers: &BTreeMap<String, Arc<Receiver>>,
        dashboard_url: Option<&str>,
        now_unix_ms: i64,
        next_id: &mut dyn FnMut() -> String,
    ) -> Vec<NewEntry> {
        let mut entries = Vec::new();
        for ((release, team, _), group) in self.groups {
            let order_key = format!(
                "{}/{}/{}/{team}",
                release.service, release.environment, release.version
            );
            let notification = |alerts: Vec<AlertSnapshot>, id: String| Notification {
                id,
                team: team.clone(),
                release: group.release.clone(),
                event: Event::Alert {
                    status: group.status,
                    repeat: group.repeat,
                    alerts,
                },
                dashboard_url: dashboard_url.map(str::to_owned),
                created_at_unix_ms: now_unix_ms,
            };
            let id = next_id();
            for (name, alerts) in &group.receivers {
                let Some(receiver) = receivers.get(name) else {
                    tracing::warn!(receiver = %name, "alert for a receiver no longer configured skipped");
                    continue;
                };
                if receiver.kind == ReceiverKind::PagerDuty {
                    for alert in alerts {
                        entries.push(NewEntry {
                            receiver: name.clone(),
                            order_key: alert.id.clone(),
                            notification: notification(
                                vec![alert.clone()],
                                format!("{id}-{}", alert.id),
                            ),
                        });
                    }
                } else {
                    entries.push(NewEntry {
                        receiver: name.clone(),
                        order_key: order_key.clone(),
                        notification: notification(alerts.clone(), id.clone()),
                    });
                }
            }
        }
        entries
    }
}

//! The outbox as the API shows it.

use serde::{Deserialize, Serialize};

use bellwether_model::notification::{Event, OutboxCounters, OutboxEntry};

/// An entry as the API shows it (no secrets: receivers are named, never their URLs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    pub id: u64,
    pub receiver: String,
    pub team: String,
    pub notification_id: String,
    pub event: String,
    pub status: Option<String>,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub alert_ids: Vec<String>,
    pub attempts: u32,
    pub created_at_unix_ms: i64,
    pub next_attempt_at_unix_ms: i64,
    pub last_error: Option<String>,
    pub failed_at_unix_ms: Option<i64>,
}

impl From<&OutboxEntry> for EntryView {
    fn from(e: &OutboxEntry) -> Self {
        let n = &e.notification;
        let (event, status) = match &n.event {
            Event::Alert { status, .. } => ("alert", Some(status.as_str().to_owned())),
            Event::Deploy => ("deploy", None),
        };
        Self {
            id: e.id,
            receiver: e.receiver.clone(),
            team: n.team.clone(),
            notification_id: n.id.clone(),
            event: event.to_owned(),
            status,
            service: n.release.service.clone(),
            environment: n.release.environment.clone(),
            version: n.release.version.clone(),
            alert_ids: n.alerts().iter().map(|a| a.id.clone()).collect(),
            attempts: e.attempts,
            created_at_unix_ms: e.created_at_unix_ms,
            next_attempt_at_unix_ms: e.next_attempt_at_unix_ms,
            last_error: e.last_error.clone(),
            failed_at_unix_ms: e.failed_at_unix_ms,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxView {
    pub counters: OutboxCounters,
    pub pending: Vec<EntryView>,
    pub failed: Vec<EntryView>,
}

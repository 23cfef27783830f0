//! Notifications: what happened (alerts firing, acknowledged or resolved, or a deploy),
//! to which team, about which release. Receiver-independent, so it is what the outbox
//! stores; bodies are rendered per receiver at send time. And the outbox's own records.

use serde::{Deserialize, Serialize};

use crate::alert::AlertSnapshot;
use crate::release::Deployment;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Acknowledged,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }
}

/// The release a notification is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    pub service: String,
    pub environment: String,
    pub version: String,
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    pub pipeline_url: Option<String>,
    pub notes: Option<String>,
    pub started_at_unix_ms: Option<i64>,
}

impl From<&Deployment> for ReleaseInfo {
    fn from(d: &Deployment) -> Self {
        Self {
            service: d.release.service.clone(),
            environment: d.release.environment.clone(),
            version: d.release.version.clone(),
            commit: d.commit.clone(),
            deploy_id: d.deploy_id.clone(),
            pipeline_url: d.pipeline_url.clone(),
            notes: d.notes.clone(),
            started_at_unix_ms: Some(d.started_at_unix_ms),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Alerts of one release and team, grouped; all share `status`.
    Alert {
        status: Status,
        repeat: bool,
        alerts: Vec<AlertSnapshot>,
    },
    /// A deployment was recorded.
    Deploy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per notification; receivers may use it to drop duplicates.
    pub id: String,
    pub team: String,
    pub release: ReleaseInfo,
    pub event: Event,
    pub dashboard_url: Option<String>,
    pub created_at_unix_ms: i64,
}

impl Notification {
    pub fn alerts(&self) -> &[AlertSnapshot] {
        match &self.event {
            Event::Alert { alerts, .. } => alerts,
            Event::Deploy => &[],
        }
    }

    /// The most severe alert (ties: the first).
    pub fn lead(&self) -> Option<&AlertSnapshot> {
        self.alerts().iter().min_by_key(|a| a.severity)
    }

    /// A one-line summary for fallbacks and titles.
    pub fn headline(&self) -> String {
        let r = &self.release;
        let release = format!("{} {} in {}", r.service, r.version, r.environment);
        match &self.event {
            Event::Deploy => format!("deployed {release}"),
            Event::Alert { status, alerts, .. } => {
                let what = match alerts.as_slice() {
                    [one] => one.summary.clone(),
                    many => format!("{} alerts", many.len()),
                };
                format!("[{}] {release}: {what}", status.as_str().to_uppercase())
            }
        }
    }

    /// A link to the release in the web UI, when a dashboard URL is configured.
    pub fn release_link(&self) -> Option<String> {
        let base = self.dashboard_url.as_deref()?.trim_end_matches('/');
        let r = &self.release;
        Some(format!(
            "{base}/releases/{}/{}?environment={}",
            encode_component(&r.service),
            encode_component(&r.version),
            encode_component(&r.environment)
        ))
    }
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes all but RFC 3986 unreserved characters, for a URL path segment or
/// query value.
pub fn encode_component(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, COMPONENT).to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Enqueued,
    Delivered,
    Retries,
    GivenUp,
    Rejected,
}

impl Counter {
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Enqueued => "enqueued",
            Counter::Delivered => "delivered",
            Counter::Retries => "retries",
            Counter::GivenUp => "given_up",
            Counter::Rejected => "rejected",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxCounters {
    pub enqueued: u64,
    pub delivered: u64,
    /// Failed attempts that were retried later.
    pub retries: u64,
    /// Entries dropped after the maximum age.
    pub given_up: u64,
    /// Entries a receiver refused for good (4xx) or that had no receiver any more.
    pub rejected: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    Pending,
    Failed,
}

/// A notification for one receiver, before it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    pub receiver: String,
    /// Entries sharing receiver and order key are delivered in order.
    pub order_key: String,
    pub notification: Notification,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub receiver: String,
    pub order_key: String,
    pub notification: Notification,
    pub state: EntryState,
    pub attempts: u32,
    pub created_at_unix_ms: i64,
    pub next_attempt_at_unix_ms: i64,
    pub last_error: Option<String>,
    pub failed_at_unix_ms: Option<i64>,
}

impl OutboxEntry {
    pub fn new(id: u64, new: NewEntry, now_unix_ms: i64) -> Self {
        Self {
            id,
            receiver: new.receiver,
            order_key: new.order_key,
            notification: new.notification,
            state: EntryState::Pending,
            attempts: 0,
            created_at_unix_ms: now_unix_ms,
            next_attempt_at_unix_ms: now_unix_ms,
            last_error: None,
            failed_at_unix_ms: None,
        }
    }
}

//! Notifications and their delivery.
//!
//! ```text
//! AlertEngine ──Notification──> Outbox (sled: written first, durably)
//!                                  │  Deliverer: due entries, per-receiver concurrency,
//!                                  │  timeout, backoff + jitter, Retry-After, max age
//!                                  v
//!                 render::{webhook, slack, pagerduty, alertmanager} ──HTTP POST──> receiver
//! ```
//!
//! - [`Notification`]: what happened (alerts firing / acknowledged / resolved, or a
//!   deploy), to which team, about which release; receiver-independent, so it is what
//!   the outbox stores. Bodies are rendered, and webhooks signed, at send time.
//! - [`outbox`]: the durable queue and the delivery loop; [`transport`]: one HTTP POST
//!   and the classification of its result.

pub mod alertmanager;
pub mod outbox;
pub mod pagerduty;
pub mod slack;
pub mod transport;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alerts::{AlertKind, EvidenceLine, Severity};
use bellwether_model::release::Deployment;

/// A value that must not be logged or returned: Debug and Display print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    Webhook,
    Slack,
    #[serde(rename = "pagerduty")]
    PagerDuty,
    Alertmanager,
}

impl ReceiverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::Slack => "slack",
            ReceiverKind::PagerDuty => "pagerduty",
            ReceiverKind::Alertmanager => "alertmanager",
        }
    }

    /// Whether the receiver has something to say about an acknowledgement.
    pub fn takes_acknowledgements(self) -> bool {
        matches!(self, ReceiverKind::PagerDuty | ReceiverKind::Webhook)
    }

    /// Whether the receiver can carry a deploy notification.
    pub fn takes_deploys(self) -> bool {
        !matches!(self, ReceiverKind::Alertmanager)
    }
}

/// A receiver with its secrets resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
    /// The URL may itself be a secret (Slack incoming webhooks).
    pub url: Secret,
    /// Webhook signing secret.
    pub secret: Option<Secret>,
    /// PagerDuty integration (routing) key.
    pub routing_key: Option<Secret>,
    pub deploys: bool,
    pub timeout: Duration,
    pub concurrency: usize,
    /// Alertmanager: how often firing alerts are re-sent.
    pub resend_interval: Option<Duration>,
}

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

/// One alert as carried by a notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSnapshot {
    pub id: String,
    pub dedup_key: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Vec<EvidenceLine>,
    pub fingerprint: Option<String>,
    pub started_at_unix_ms: i64,
    pub resolved_at_unix_ms: Option<i64>,
    pub resolution: Option<String>,
    /// Which ownership rule chose the team.
    pub routed_by: String,
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
            encode(&r.service),
            encode(&r.version),
            encode(&r.environment)
        ))
    }
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An HTTP request ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("{receiver} receivers do not take {what}")]
    Unsupported {
        receiver: &'static str,
        what: &'static str,
    },
    #[error("encoding body: {0}")]
    Encode(String),
}

/// Renders `notification` for `receiver` at `now_unix_ms` (timestamps, signatures).
pub fn render(
    notification: &Notification,
    receiver: &Receiver,
    now_unix_ms: i64,
) -> Result<Outgoing, RenderError> {
    match receiver.kind {
        ReceiverKind::Webhook => webhook::render(notification, receiver, now_unix_ms),
        ReceiverKind::Slack => slack::render(notification, receiver),
        ReceiverKind::PagerDuty => pagerduty::render(notification, receiver, now_unix_ms),
        ReceiverKind::Alertmanager => alertmanager::render(notification, receiver, now_unix_ms),
    }
}

fn json_body(value: &serde_json::Value) -> Result<Vec<u8>, RenderError> {
    serde_json::to_vec(value).map_err(|e| RenderError::Encode(e.to_string()))
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

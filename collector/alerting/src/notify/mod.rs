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
pub mod counts;
pub mod outbox;
pub mod pagerduty;
pub mod slack;
pub mod transport;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use bellwether_model::notification::Notification;

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

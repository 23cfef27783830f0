//! The `[routing]`, `[[teams]]` and `[[receivers]]` sections of the collector config:
//! raw serde structs (unknown keys rejected), validated into [`AlertingConfig`]; receiver
//! secrets are resolved separately ([`AlertingConfig::resolve_receivers`]) so that
//! `bellwether owners` works without them.
//!
//! | key | default |
//! |---|---|
//! | `routing.default_team` | required once teams exist |
//! | `routing.codeowners_file` | none (relative to the config file) |
//! | `routing.group_window` | `30s` |
//! | `routing.repeat_interval` | `4h` |
//! | `routing.dashboard_url` | none |
//! | `routing.delivery_max_age` | `24h` |
//! | `routing.retry_initial` / `routing.retry_max` | `1s` / `5m` |
//! | `receivers[].timeout` / `concurrency` | `10s` / `4` |
//! | `receivers[].resend_interval` (alertmanager) | `1m` |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::notify::outbox::DeliverySettings;
use crate::notify::{Receiver, ReceiverKind};
use crate::routing::Ownership;

pub const DEFAULT_GROUP_WINDOW: Duration = Duration::from_secs(30);
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONCURRENCY: usize = 4;
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com";

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub default_team: Option<String>,
    pub codeowners_file: Option<PathBuf>,
    pub group_window: Option<String>,
    pub repeat_interval: Option<String>,
    pub dashboard_url: Option<String>,
    pub delivery_max_age: Option<String>,
    pub retry_initial: Option<String>,
    pub retry_max: Option<String>,
    #[serde(default)]
    pub services: Vec<Spanned<RawServiceRule>>,
    #[serde(default)]
    pub code: Vec<Spanned<RawCodeRule>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServiceRule {
    /// Glob on `service.name`.
    #[serde(rename = "match")]
    pub service: String,
    pub environment: Option<String>,
    pub team: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCodeRule {
    pub path: Option<String>,
    pub module: Option<String>,
    pub team: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeam {
    pub name: String,
    #[serde(default)]
    pub receivers: Vec<String>,
    /// CODEOWNERS owners that mean this team (`@org/<name>` always does).
    #[serde(default)]
    pub codeowners: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub routing_key_env: Option<String>,
    pub routing_key_file: Option<PathBuf>,
    /// Opt in to release (deploy) notifications.
    pub deploys: Option<bool>,
    pub timeout: Option<String>,
    pub concurrency: Option<usize>,
    pub resend_interval: Option<String>,
}

/// A configuration problem, naming the key and, where known, the line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}{}: {message}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
pub struct RoutingConfigError {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Where a secret comes from; the value itself is read only by `resolve_receivers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    Inline(String),
    Env(String),
    File(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverSpec {
    pub name: String,
    pub kind: ReceiverKind,
    pub url: SecretRef,
    pub secret: Option<SecretRef>,
    pub routing_key: Option<SecretRef>,
    pub deploys: bool,
    pub timeout: Duration,
    pub concurrency: usize,
    pub resend_interval: Option<Duration>,
    pub(crate) key: String,
    pub(crate) line: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertTiming {
    pub group_window: Duration,
    pub repeat_interval: Duration,
}

impl Default for AlertTiming {
    fn default() -> Self {
        Self {
            group_window: DEFAULT_GROUP_WINDOW,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
        }
    }
}

/// Validated routing: ownership rules, teams and their receivers, timings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertingConfig {
    pub ownership: Ownership,
    /// Team → receiver names.
    pub teams: BTreeMap<String, Vec<String>>,
    pub receivers: BTreeMap<String, ReceiverSpec>,
    pub timing: AlertTiming,
    pub delivery: DeliverySettings,
    pub dashboard_url: Option<String>,
}

/// The config text (for line numbers) and the directory relative paths start from.
pub struct Source<'a> {
    pub text: Option<&'a str>,
    pub dir: &'a Path,
}

impl Source<'_> {
    pub(crate) fn line<T>(&self, spanned: &Spanned<T>) -> Option<usize> {
        let text = self.text?;
        let start = spanned.span().start;
        Some(text.get(..start)?.matches('\n').count() + 1)
    }

    pub(crate) fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.dir.join(path)
        }
    }
}

/// Routing with receiver secrets resolved: what the running collector uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alerting {
    pub config: AlertingConfig,
    pub receivers: BTreeMap<String, Arc<Receiver>>,
}

pub use crate::routing::validate::validate;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

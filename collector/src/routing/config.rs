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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::notify::{Receiver, ReceiverKind, Secret};
use crate::routing::{codeowners, CodePattern, CodeRule, Ownership, RuleOrigin, ServiceRule};
use bellwether_model::config::parse_duration;
use bellwether_model::glob::Glob;

pub const DEFAULT_GROUP_WINDOW: Duration = Duration::from_secs(30);
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONCURRENCY: usize = 4;
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
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
    key: String,
    line: Option<usize>,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    /// A notification not delivered after this long is given up.
    pub max_age: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_MAX_AGE,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
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
    fn line<T>(&self, spanned: &Spanned<T>) -> Option<usize> {
        let text = self.text?;
        let start = spanned.span().start;
        Some(text.get(..start)?.matches('\n').count() + 1)
    }

    fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.dir.join(path)
        }
    }
}

fn error(
    key: impl Into<String>,
    line: Option<usize>,
    message: impl Into<String>,
) -> RoutingConfigError {
    RoutingConfigError {
        key: key.into(),
        line,
        message: message.into(),
    }
}

fn duration(
    key: &str,
    value: Option<&String>,
    default: Duration,
) -> Result<Duration, RoutingConfigError> {
    match value {
        None => Ok(default),
        Some(v) => match parse_duration(v) {
            Ok(d) if d.is_zero() => Err(error(key, None, "must be greater than zero")),
            Ok(d) => Ok(d),
            Err(e) => Err(error(key, None, e.to_string())),
        },
    }
}

fn glob(key: &str, line: Option<usize>, pattern: &str) -> Result<Glob, RoutingConfigError> {
    Glob::new(pattern).map_err(|e| error(key, line, format!("bad glob {pattern:?}: {e}")))
}

/// Validates the three sections as read from a config file.
pub fn validate(
    routing: Option<&RawRouting>,
    teams: &[Spanned<RawTeam>],
    receivers: &[Spanned<RawReceiver>],
    source: &Source<'_>,
) -> Result<AlertingConfig, RoutingConfigError> {
    let Some(routing) = routing else {
        if teams.is_empty() && receivers.is_empty() {
            return Ok(AlertingConfig::default());
        }
        return Err(error(
            "routing.default_team",
            None,
            "is required when [[teams]] or [[receivers]] are configured",
        ));
    };
    let receivers = validate_receivers(receivers, source)?;

    let mut team_map = BTreeMap::new();
    let mut handles: BTreeMap<String, String> = BTreeMap::new();
    for (i, team) in teams.iter().enumerate() {
        let line = source.line(team);
        let key = format!("teams[{i}]");
        let t = team.get_ref();
        if t.name.trim().is_empty() {
            return Err(error(format!("{key}.name"), line, "must not be empty"));
        }
        if team_map.contains_key(&t.name) {
            return Err(error(key, line, format!("duplicate team {:?}", t.name)));
        }
        if t.receivers.is_empty() {
            return Err(error(
                format!("{key}.receivers"),
                line,
                format!("team {:?} has no receivers", t.name),
            ));
        }
        for name in &t.receivers {
            if !receivers.contains_key(name) {
                return Err(error(
                    format!("{key}.receivers"),
                    line,
                    format!("team {:?}: unknown receiver {name:?}", t.name),
                ));
            }
        }
        for handle in &t.codeowners {
            handles.insert(handle.to_lowercase(), t.name.clone());
        }
        team_map.insert(t.name.clone(), t.receivers.clone());
    }
    let known: BTreeSet<String> = team_map.keys().cloned().collect();
    let check_team = |key: &str, line, team: &str| {
        if known.contains(team) {
            Ok(())
        } else {
            Err(error(
                key,
                line,
                format!("unknown team {team:?} (define it under [[teams]])"),
            ))
        }
    };

    let default_team = routing
        .default_team
        .clone()
        .ok_or_else(|| error("routing.default_team", None, "is required"))?;
    check_team("routing.default_team", None, &default_team)?;

    let mut services = Vec::new();
    for (i, rule) in routing.services.iter().enumerate() {
        let line = source.line(rule);
        let key = format!("routing.services[{i}]");
        let r = rule.get_ref();
        check_team(&format!("{key}.team"), line, &r.team)?;
        services.push(ServiceRule {
            service: glob(&format!("{key}.match"), line, &r.service)?,
            environment: r
                .environment
                .as_deref()
                .map(|e| glob(&format!("{key}.environment"), line, e))
                .transpose()?,
            team: r.team.clone(),
            origin: RuleOrigin::Config { key, line },
        });
    }

    let mut code = Vec::new();
    if let Some(file) = &routing.codeowners_file {
        let path = source.path(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            error(
                "routing.codeowners_file",
                None,
                format!("reading {}: {e}", path.display()),
            )
        })?;
        let team_of = |owner: &str| {
            let owner = owner.to_lowercase();
            handles.get(&owner).cloned().or_else(|| {
                let (_, name) = owner.strip_prefix('@')?.split_once('/')?;
                known.get(name).cloned()
            })
        };
        code.extend(
            codeowners::parse(file, &text, &team_of)
                .map_err(|e| error("routing.codeowners_file", None, e.to_string()))?,
        );
    }
    for (i, rule) in routing.code.iter().enumerate() {
        let line = source.line(rule);
        let key = format!("routing.code[{i}]");
        let r = rule.get_ref();
        check_team(&format!("{key}.team"), line, &r.team)?;
        let pattern = match (&r.path, &r.module) {
            (Some(path), None) => CodePattern::new(path).map_err(|e| {
                error(
                    format!("{key}.path"),
                    line,
                    format!("bad glob {path:?}: {e}"),
                )
            })?,
            (None, Some(module)) => CodePattern::module(module).map_err(|e| {
                error(
                    format!("{key}.module"),
                    line,
                    format!("bad glob {module:?}: {e}"),
                )
            })?,
            _ => return Err(error(key, line, "set exactly one of path or module")),
        };
        code.push(CodeRule {
            pattern,
            team: Some(r.team.clone()),
            origin: RuleOrigin::Config { key, line },
        });
    }

    if let Some(url) = &routing.dashboard_url {
        check_url("routing.dashboard_url", None, url)?;
    }
    Ok(AlertingConfig {
        ownership: Ownership {
            default_team: Some(default_team),
            teams: known,
            services,
            code,
        },
        teams: team_map,
        receivers,
        timing: AlertTiming {
            group_window: duration(
                "routing.group_window",
                routing.group_window.as_ref(),
                DEFAULT_GROUP_WINDOW,
            )?,
            repeat_interval: duration(
                "routing.repeat_interval",
                routing.repeat_interval.as_ref(),
                DEFAULT_REPEAT_INTERVAL,
            )?,
        },
        delivery: DeliverySettings {
            max_age: duration(
                "routing.delivery_max_age",
                routing.delivery_max_age.as_ref(),
                DEFAULT_MAX_AGE,
            )?,
            retry_initial: duration(
                "routing.retry_initial",
                routing.retry_initial.as_ref(),
                DEFAULT_RETRY_INITIAL,
            )?,
            retry_max: duration(
                "routing.retry_max",
                routing.retry_max.as_ref(),
                DEFAULT_RETRY_MAX,
            )?,
        },
        dashboard_url: routing.dashboard_url.clone(),
    })
}

fn check_url(key: &str, line: Option<usize>, url: &str) -> Result<(), RoutingConfigError> {
    match url.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http") | Some("https"))
                && uri.authority().is_some() =>
        {
            Ok(())
        }
        // The value may be a secret (a Slack webhook URL): never echo it.
        _ => Err(error(key, line, "is not an http:// or https:// URL")),
    }
}

fn secret_ref(
    key: &str,
    line: Option<usize>,
    inline: Option<&String>,
    env: Option<&String>,
    file: Option<&PathBuf>,
    source: &Source<'_>,
) -> Result<Option<SecretRef>, RoutingConfigError> {
    match (inline, env, file) {
        (None, None, None) => Ok(None),
        (Some(v), None, None) => {
            check_url(key, line, v)?;
            Ok(Some(SecretRef::Inline(v.clone())))
        }
        (None, Some(name), None) if !name.is_empty() => Ok(Some(SecretRef::Env(name.clone()))),
        (None, None, Some(path)) => Ok(Some(SecretRef::File(source.path(path)))),
        (None, Some(_), None) => Err(error(format!("{key}_env"), line, "must not be empty")),
        _ => Err(error(
            key,
            line,
            format!("set only one of {key}, {key}_env, {key}_file"),
        )),
    }
}

fn validate_receivers(
    raw: &[Spanned<RawReceiver>],
    source: &Source<'_>,
) -> Result<BTreeMap<String, ReceiverSpec>, RoutingConfigError> {
    let mut out = BTreeMap::new();
    for (i, receiver) in raw.iter().enumerate() {
        let line = source.line(receiver);
        let r = receiver.get_ref();
        let key = format!("receivers[{i}]");
        let sub = |field: &str| format!("{key}.{field}");
        if r.name.trim().is_empty() {
            return Err(error(sub("name"), line, "must not be empty"));
        }
        if out.contains_key(&r.name) {
            return Err(error(key, line, format!("duplicate receiver {:?}", r.name)));
        }
        let kind = match r.kind.as_str() {
            "webhook" => ReceiverKind::Webhook,
            "slack" => ReceiverKind::Slack,
            "pagerduty" => ReceiverKind::PagerDuty,
            "alertmanager" => ReceiverKind::Alertmanager,
            other => {
                return Err(error(
                    sub("type"),
                    line,
                    format!("unknown type {other:?} (webhook, slack, pagerduty, alertmanager)"),
                ))
            }
        };
        let url = secret_ref(
            &sub("url"),
            line,
            r.url.as_ref(),
            r.url_env.as_ref(),
            r.url_file.as_ref(),
            source,
        )?;
        let url = match (url, kind) {
            (Some(url), _) => url,
            (None, ReceiverKind::PagerDuty) => SecretRef::Inline(PAGERDUTY_URL.to_owned()),
            (None, _) => {
                return Err(error(
                    sub("url"),
                    line,
                    format!("receiver {:?} needs url, url_env or url_file", r.name),
                ))
            }
        };
        let secret = match (&r.secret_env, &r.secret_file) {
            (Some(_), Some(_)) => {
                return Err(error(
                    sub("secret_env"),
                    line,
                    "set only one of secret_env, secret_file",
                ))
            }
            (Some(name), None) => Some(SecretRef::Env(name.clone())),
            (None, Some(path)) => Some(SecretRef::File(source.path(path))),
            (None, None) => None,
        };
        if secret.is_some() && kind != ReceiverKind::Webhook {
            return Err(error(
                sub("secret_env"),
                line,
                "only webhook receivers are signed",
            ));
        }
        let routing_key = match (&r.routing_key_env, &r.routing_key_file) {
            (Some(_), Some(_)) => {
                return Err(error(
                    sub("routing_key_env"),
                    line,
                    "set only one of routing_key_env, routing_key_file",
                ))
            }
            (Some(name), None) => Some(SecretRef::Env(name.clone())),
            (None, Some(path)) => Some(SecretRef::File(source.path(path))),
            (None, None) => None,
        };
        match (kind, &routing_key) {
            (ReceiverKind::PagerDuty, None) => {
                return Err(error(
                    sub("routing_key_env"),
                    line,
                    format!(
                        "pagerduty receiver {:?} needs routing_key_env or routing_key_file",
                        r.name
                    ),
                ))
            }
            (ReceiverKind::PagerDuty, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(error(
                    sub("routing_key_env"),
                    line,
                    "only for pagerduty receivers",
                ))
            }
        }
        if r.resend_interval.is_some() && kind != ReceiverKind::Alertmanager {
            return Err(error(
                sub("resend_interval"),
                line,
                "only for alertmanager receivers",
            ));
        }
        let concurrency = r.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(error(sub("concurrency"), line, "must be at least 1"));
        }
        let with_line = |e: RoutingConfigError| RoutingConfigError { line, ..e };
        out.insert(
            r.name.clone(),
            ReceiverSpec {
                name: r.name.clone(),
                kind,
                url,
                secret,
                routing_key,
                deploys: r.deploys.unwrap_or(false),
                timeout: duration(&sub("timeout"), r.timeout.as_ref(), DEFAULT_TIMEOUT)
                    .map_err(with_line)?,
                concurrency,
                resend_interval: match kind {
                    ReceiverKind::Alertmanager => Some(
                        duration(
                            &sub("resend_interval"),
                            r.resend_interval.as_ref(),
                            DEFAULT_RESEND_INTERVAL,
                        )
                        .map_err(with_line)?,
                    ),
                    _ => None,
                },
                key,
                line,
            },
        );
    }
    Ok(out)
}

/// Reads secret values; `env` looks up an environment variable.
fn read_secret(
    spec: &ReceiverSpec,
    field: &str,
    secret: &SecretRef,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, RoutingConfigError> {
    let key = format!("{}.{field}", spec.key);
    let value = match secret {
        SecretRef::Inline(v) => v.clone(),
        SecretRef::Env(name) => env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            error(
                format!("{key}_env"),
                spec.line,
                format!(
                    "environment variable {name} is not set (receiver {:?})",
                    spec.name
                ),
            )
        })?,
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|v| v.trim().to_owned())
            .map_err(|e| {
                error(
                    format!("{key}_file"),
                    spec.line,
                    format!("reading {}: {e}", path.display()),
                )
            })?,
    };
    if value.is_empty() {
        return Err(error(key, spec.line, "is empty"));
    }
    Ok(Secret::new(value))
}

impl AlertingConfig {
    /// Resolves every receiver's URL, signing secret and routing key.
    pub fn resolve_receivers(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, Arc<Receiver>>, RoutingConfigError> {
        let mut out = BTreeMap::new();
        for spec in self.receivers.values() {
            let url = read_secret(spec, "url", &spec.url, env)?;
            if !matches!(spec.url, SecretRef::Inline(_)) {
                check_url(&format!("{}.url", spec.key), spec.line, url.expose())?;
            }
            let secret = spec
                .secret
                .as_ref()
                .map(|s| read_secret(spec, "secret", s, env))
                .transpose()?;
            let routing_key = spec
                .routing_key
                .as_ref()
                .map(|s| read_secret(spec, "routing_key", s, env))
                .transpose()?;
            out.insert(
                spec.name.clone(),
                Arc::new(Receiver {
                    name: spec.name.clone(),
                    kind: spec.kind,
                    url,
                    secret,
                    routing_key,
                    deploys: spec.deploys,
                    timeout: spec.timeout,
                    concurrency: spec.concurrency,
                    resend_interval: spec.resend_interval,
                }),
            );
        }
        Ok(out)
    }

    /// Receivers of `team` (none for an unknown team).
    pub fn team_receivers(&self, team: &str) -> &[String] {
        self.teams.get(team).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Routing with receiver secrets resolved: what the running collector uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alerting {
    pub config: AlertingConfig,
    pub receivers: BTreeMap<String, Arc<Receiver>>,
}

/// Validates the routing sections and resolves secrets; `env` looks up environment
/// variables (read by the caller, so tests pass their own).
pub fn load(
    file: &crate::config::FileConfig,
    text: Option<&str>,
    config_path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Alerting, RoutingConfigError> {
    let config = from_file_config(file, text, config_path)?;
    let receivers = config.resolve_receivers(env)?;
    Ok(Alerting { config, receivers })
}

/// A config file's parse error with its line, e.g. `c.toml: line 12: unknown field ...`.
pub fn describe_parse_error(path: &Path, text: &str) -> Option<String> {
    let error = toml::from_str::<crate::config::FileConfig>(text).err()?;
    let line = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| before.matches('\n').count() + 1);
    Some(match line {
        Some(line) => format!("{}: line {line}: {}", path.display(), error.message()),
        None => format!("{}: {}", path.display(), error.message()),
    })
}

/// Validates the routing sections of a parsed config file; `text` gives line numbers.
pub fn from_file_config(
    file: &crate::config::FileConfig,
    text: Option<&str>,
    config_path: Option<&Path>,
) -> Result<AlertingConfig, RoutingConfigError> {
    let dir = config_path
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("."));
    validate(
        file.routing.as_ref(),
        &file.teams,
        &file.receivers,
        &Source { text, dir },
    )
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

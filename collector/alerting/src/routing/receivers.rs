//! The `[[receivers]]` section: each receiver's kind, URL, secrets (inline, from an
//! environment variable or a file; never echoed in errors) and delivery settings, and the
//! resolution of those secrets when the collector starts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use toml::Spanned;

use crate::notify::alertmanager::DEFAULT_RESEND_INTERVAL;
use crate::notify::{Receiver, ReceiverKind, Secret};
use crate::routing::config::*;
use crate::routing::validate::{duration, error};

pub(crate) fn check_url(
    key: &str,
    line: Option<usize>,
    url: &str,
) -> Result<(), RoutingConfigError> {
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

pub(crate) fn validate_receivers(
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
pub(crate) fn read_secret(
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

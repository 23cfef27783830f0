//! Validation of the `[routing]` and `[[teams]]` sections into [`AlertingConfig`]: rules,
//! teams and timings, with the key and line of the first mistake.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use toml::Spanned;

use bellwether_model::config::parse_duration;
use bellwether_model::glob::Glob;

use crate::notify::outbox::{
    DeliverySettings, DEFAULT_MAX_AGE, DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX,
};
use crate::routing::config::*;
use crate::routing::receivers::{check_url, validate_receivers};
use crate::routing::{codeowners, CodePattern, CodeRule, Ownership, RuleOrigin, ServiceRule};

pub(crate) fn error(
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

pub(crate) fn duration(
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

pub(crate) fn glob(
    key: &str,
    line: Option<usize>,
    pattern: &str,
) -> Result<Glob, RoutingConfigError> {
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

//! The series a scrape computes: releases (active ones only), deployments, alerts,
//! notifications and ingest, in that order.

use std::collections::BTreeMap;

use super::registry::{ingest_snapshot, Signal, DURATION_BUCKETS, INGEST_RESULTS};
use super::text::Text;
use super::Sources;
use crate::error::Error;
use crate::evaluate::baseline::{is_active, TRAFFIC_RECENCY};
use bellwether_alerting::notify::counts::{notifications_snapshot, NOTIFICATION_RESULTS};
use bellwether_model::alert::{AlertFilter, AlertState};
use bellwether_model::health::Verdict;
use bellwether_model::release::{Counts, Deployment, DeploymentFilter, ReleaseKey};
use bellwether_model::time::now_unix_ms;
use bellwether_store::ReleaseStore;

const VERDICTS: [Verdict; 4] = [
    Verdict::Pending,
    Verdict::Healthy,
    Verdict::Degraded,
    Verdict::Unhealthy,
];

/// One active release at scrape time.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseSeries {
    pub release: ReleaseKey,
    pub started_at_unix_ms: i64,
    /// The evaluator's latest verdict; none before its first evaluation.
    pub verdict: Option<Verdict>,
    pub exposure: u64,
    pub errors: u64,
}

/// Exposure as the evaluator counts it: server spans when the release has traces.
pub fn exposure(totals: &Counts) -> u64 {
    if totals.spans > 0 {
        totals.server_spans
    } else {
        totals.log_records
    }
}

/// Whether `d` is evaluated in the background at `now` (see [`crate::evaluate`]).
pub fn active(
    store: &dyn ReleaseStore,
    d: &Deployment,
    same_env: &[Deployment],
    now: i64,
    active_window: std::time::Duration,
) -> Result<bool, Error> {
    let newest = same_env
        .iter()
        .all(|o| o.started_at_unix_ms <= d.started_at_unix_ms);
    if !is_active(d, true, true, now, active_window) {
        return Ok(false);
    }
    if newest {
        return Ok(true);
    }
    let since = now - TRAFFIC_RECENCY.as_millis() as i64;
    Ok(store
        .buckets(&d.release, since..i64::MAX)?
        .iter()
        .any(|(_, c)| c.log_records > 0 || c.spans > 0))
}

struct Snapshot {
    releases: Vec<ReleaseSeries>,
    /// (service, environment) → deployments known.
    deployments: BTreeMap<(String, String), u64>,
}

fn snapshot(sources: &Sources, now: i64) -> Result<Snapshot, Error> {
    let store = sources.store.as_ref();
    let window = sources.evaluator.settings().active_window;
    let mut groups: BTreeMap<(String, String), Vec<Deployment>> = BTreeMap::new();
    for d in store.deployments(&DeploymentFilter::default())? {
        groups
            .entry((d.release.service.clone(), d.release.environment.clone()))
            .or_default()
            .push(d);
    }
    let mut releases = Vec::new();
    let mut deployments = BTreeMap::new();
    for (key, group) in &groups {
        deployments.insert(key.clone(), group.len() as u64);
        for d in group {
            if !active(store, d, group, now, window)? {
                continue;
            }
            let latest = sources.evaluator.subscribe(&d.release)?.borrow().clone();
            let totals = store.totals(&d.release)?;
            releases.push(ReleaseSeries {
                release: d.release.clone(),
                started_at_unix_ms: d.started_at_unix_ms,
                verdict: latest.map(|h| h.verdict),
                exposure: exposure(&totals),
                errors: totals.errors,
            });
        }
    }
    Ok(Snapshot {
        releases,
        deployments,
    })
}

/// The whole `/metrics` body.
pub async fn render(sources: &Sources) -> Result<String, Error> {
    let now = now_unix_ms();
    let blocking = sources.clone();
    let snapshot = tokio::task::spawn_blocking(move || snapshot(&blocking, now)).await??;
    let alerts = sources.alerts.alerts(AlertFilter::default()).await?;

    let mut out = Text::default();
    out.family("build_info", "gauge", "Always 1; the collector's version.");
    out.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    write_releases(&mut out, &snapshot.releases);

    out.family(
        "deployments_total",
        "counter",
        "Deployments known per service and environment, recorded or detected.",
    );
    for ((service, environment), n) in &snapshot.deployments {
        out.sample(
            "deployments_total",
            &[("service", service), ("environment", environment)],
            *n as f64,
        );
    }

    let mut by_team: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for team in sources.alerts.config().teams.keys() {
        for state in [
            AlertState::Firing,
            AlertState::Acknowledged,
            AlertState::Resolved,
        ] {
            by_team.insert((team.clone(), state.as_str()), 0);
        }
    }
    for alert in &alerts {
        *by_team
            .entry((alert.team.clone(), alert.state.as_str()))
            .or_default() += 1;
    }
    out.family(
        "alerts",
        "gauge",
        "Alerts kept by the collector, by state and owning team.",
    );
    for ((team, state), n) in &by_team {
        out.sample("alerts", &[("state", state), ("team", team)], *n as f64);
    }

    let mut notifications: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for receiver in sources.alerts.config().receivers.keys() {
        for result in NOTIFICATION_RESULTS {
            notifications.insert((receiver.clone(), result), 0);
        }
    }
    notifications.extend(notifications_snapshot());
    out.family(
        "notifications_total",
        "counter",
        "Notification delivery attempts, by receiver and result (delivered, retried, rejected, given_up).",
    );
    for ((receiver, result), n) in &notifications {
        out.sample(
            "notifications_total",
            &[("receiver", receiver), ("result", result)],
            *n as f64,
        );
    }

    write_ingest(&mut out);
    write_limits(&mut out);
    Ok(out.finish())
}

fn labels(r: &ReleaseKey) -> [(&'static str, &str); 3] {
    [
        ("service", &r.service),
        ("environment", &r.environment),
        ("version", &r.version),
    ]
}

fn write_releases(out: &mut Text, releases: &[ReleaseSeries]) {
    out.family(
        "release_error_ratio",
        "gauge",
        "Errors per unit of exposure (server spans, else log records) of an active release since its deploy.",
    );
    for r in releases.iter().filter(|r| r.exposure > 0) {
        let ratio = r.errors as f64 / r.exposure as f64;
        out.sample("release_error_ratio", &labels(&r.release), ratio);
    }
    out.family(
        "release_errors_total",
        "counter",
        "Errors of an active release, at most one per trace and fingerprint.",
    );
    for r in releases {
        out.sample("release_errors_total", &labels(&r.release), r.errors as f64);
    }
    out.family(
        "release_exposure_total",
        "counter",
        "Exposure of an active release: server spans when it has traces, else log records.",
    );
    for r in releases {
        out.sample(
            "release_exposure_total",
            &labels(&r.release),
            r.exposure as f64,
        );
    }
    out.family(
        "release_verdict",
        "gauge",
        "1 for the current verdict of an active release, 0 for the others.",
    );
    for r in releases {
        let current = r.verdict.unwrap_or(Verdict::Pending);
        let [service, environment, version] = labels(&r.release);
        for verdict in VERDICTS {
            let value = if verdict == current { 1.0 } else { 0.0 };
            out.sample(
                "release_verdict",
                &[service, environment, version, ("verdict", verdict.as_str())],
                value,
            );
        }
    }
    out.family(
        "release_start_time_seconds",
        "gauge",
        "When an active release was deployed (Unix seconds).",
    );
    for r in releases {
        let started = r.started_at_unix_ms as f64 / 1000.0;
        out.sample("release_start_time_seconds", &labels(&r.release), started);
    }
}

fn write_ingest(out: &mut Text) {
    out.family(
        "ingest_requests_total",
        "counter",
        "OTLP export requests received, by signal and result (applied, duplicate, error).",
    );
    let snapshots: Vec<_> = Signal::ALL
        .iter()
        .map(|s| (s.as_str(), ingest_snapshot(*s)))
        .collect();
    for (signal, snap) in &snapshots {
        for (result, n) in INGEST_RESULTS.iter().zip(snap.requests) {
            out.sample(
                "ingest_requests_total",
                &[("signal", signal), ("result", result)],
                n as f64,
            );
        }
    }
    out.family(
        "ingest_records_total",
        "counter",
        "Log records and spans in applied OTLP requests, by signal.",
    );
    for (signal, snap) in &snapshots {
        out.sample(
            "ingest_records_total",
            &[("signal", signal)],
            snap.records as f64,
        );
    }
    out.family(
        "ingest_duration_seconds",
        "histogram",
        "Time to summarize and durably store one OTLP request, by signal.",
    );
    for (signal, snap) in &snapshots {
        for (bound, n) in DURATION_BUCKETS.iter().zip(snap.buckets) {
            out.sample(
                "ingest_duration_seconds_bucket",
                &[("signal", signal), ("le", &bound.to_string())],
                n as f64,
            );
        }
        out.sample(
            "ingest_duration_seconds_bucket",
            &[("signal", signal), ("le", "+Inf")],
            snap.count as f64,
        );
        out.sample(
            "ingest_duration_seconds_sum",
            &[("signal", signal)],
            snap.sum_seconds,
        );
        out.sample(
            "ingest_duration_seconds_count",
            &[("signal", signal)],
            snap.count as f64,
        );
    }
}

/// Writes `bellwether_limit_exceeded_total`.
fn write_limits(out: &mut Text) {
    out.family(
        "limit_exceeded_total",
        "counter",
        "Limit violations: requests refused, attributes dropped or values truncated, by limit.",
    );
    for limit in bellwether_model::limit::Limit::ALL {
        let n = bellwether_model::limit::hits(limit) as f64;
        out.sample("limit_exceeded_total", &[("limit", limit.as_str())], n);
    }
    out.family(
        "data_dir_free_bytes",
        "gauge",
        "Free space of the data directory's file system at the last ingest (0 before one).",
    );
    let free = super::registry::data_dir_free_bytes() as f64;
    out.sample("data_dir_free_bytes", &[], free);
}

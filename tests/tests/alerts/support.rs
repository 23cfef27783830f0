//! What the alert tests share: every team's receivers and the routing config that names
//! them, a collector started with the receivers' secrets, a bad release's traffic, and
//! readers for what the receivers got (signature, alert kinds, dedup keys, outlines).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bellwether_e2e::detection::{self, start_collector_with_config_env};
use bellwether_e2e::Collector;
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_testkit::clock::{bucket_aligned_now_ms, now_ms};
use bellwether_testkit::otlp::{kv, log_record, SEVERITY_ERROR};
use bellwether_testkit::receiver::{Receiver, Recorded};
use bellwether_testkit::traffic::{declined, Mix};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

pub const SERVICE: &str = "checkout";
pub const ENV: &str = "prod";
pub const HOOK_SECRET: &str = "e2e-payments-hook-secret";
pub const PD_KEY: &str = "e2e-payments-routing-key";
/// Long enough for a release to turn unhealthy and its notification to arrive.
pub const ALERT_TIMEOUT: Duration = Duration::from_secs(25);
/// How long nothing more may arrive for a count to be "exactly".
const QUIET: Duration = Duration::from_secs(3);

/// Every team's receivers, each a real HTTP server.
pub struct Receivers {
    pub payments_hook: Receiver,
    pub payments_slack: Receiver,
    pub payments_pd: Receiver,
    pub search_hook: Receiver,
    pub billing_hook: Receiver,
    pub platform_hook: Receiver,
}

impl Receivers {
    pub async fn start() -> Result<Self> {
        Ok(Self {
            payments_hook: Receiver::start().await?,
            payments_slack: Receiver::start().await?,
            payments_pd: Receiver::start().await?,
            search_hook: Receiver::start().await?,
            billing_hook: Receiver::start().await?,
            platform_hook: Receiver::start().await?,
        })
    }

    pub fn config(&self, group_window: &str) -> String {
        format!(
            r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"

[routing]
default_team = "platform"
group_window = "{group_window}"
retry_initial = "200ms"
retry_max = "1s"
dashboard_url = "http://bellwether.test:8480"

[[routing.services]]
match = "checkout*"
team = "payments"

[[routing.services]]
match = "search*"
team = "search"

[[routing.code]]
path = "src/billing/**"
team = "billing"

[[teams]]
name = "payments"
receivers = ["payments-hook", "payments-slack", "payments-pd"]

[[teams]]
name = "search"
receivers = ["search-hook"]

[[teams]]
name = "billing"
receivers = ["billing-hook"]

[[teams]]
name = "platform"
receivers = ["platform-hook"]

[[receivers]]
name = "payments-hook"
type = "webhook"
url = "{payments_hook}"
secret_env = "PAYMENTS_HOOK_SECRET"

[[receivers]]
name = "payments-slack"
type = "slack"
url = "{payments_slack}"

[[receivers]]
name = "payments-pd"
type = "pagerduty"
url = "{payments_pd}"
routing_key_env = "PAYMENTS_PD_KEY"

[[receivers]]
name = "search-hook"
type = "webhook"
url = "{search_hook}"

[[receivers]]
name = "billing-hook"
type = "webhook"
url = "{billing_hook}"

[[receivers]]
name = "platform-hook"
type = "webhook"
url = "{platform_hook}"
"#,
            payments_hook = self.payments_hook.url("/hooks/payments"),
            payments_slack = self.payments_slack.url("/services/T0/B0/xyz"),
            payments_pd = self.payments_pd.url(""),
            search_hook = self.search_hook.url("/hooks/search"),
            billing_hook = self.billing_hook.url("/hooks/billing"),
            platform_hook = self.platform_hook.url("/hooks/platform"),
        )
    }
}

/// `bellwether serve --config` on free ports with the receivers' secrets in its
/// environment; the config file is written next to `data_dir`.
pub fn start_collector(data_dir: &Path, config: &str) -> Result<Collector> {
    start_collector_with_config_env(
        data_dir,
        config,
        &[
            ("PAYMENTS_HOOK_SECRET", HOOK_SECRET),
            ("PAYMENTS_PD_KEY", PD_KEY),
        ],
    )
}

/// v1 deployed 30 min ago with its baseline (20 000 log records over the 5 minutes before
/// `deploy_ms`, 0.1 % of them `TimeoutError`s); `version` recorded as deployed at
/// `deploy_ms`.
pub async fn baseline_then_deploy(
    collector: &Collector,
    deploy_ms: i64,
    version: &str,
) -> Result<()> {
    detection::baseline_then_deploy(collector, SERVICE, ENV, version, deploy_ms).await
}

/// Traffic of `version` from two instances, timestamped now: per instance 2 000 records,
/// the first `timeouts` baseline-like errors, then `new_errors` made by `new_error`.
pub async fn release_traffic(
    collector: &Collector,
    version: &str,
    timeouts: usize,
    new_errors: usize,
    new_error: &dyn Fn(i64) -> LogRecord,
) -> Result<()> {
    release_traffic_of(collector, version, 2_000, timeouts, new_errors, new_error).await
}

/// [`release_traffic`] with `per_instance` records from each of the two instances.
pub async fn release_traffic_of(
    collector: &Collector,
    version: &str,
    per_instance: usize,
    timeouts: usize,
    new_errors: usize,
    new_error: &dyn Fn(i64) -> LogRecord,
) -> Result<()> {
    let mix = Mix {
        total: per_instance,
        timeouts,
        new_errors,
        new_error,
    };
    detection::release_traffic(collector, SERVICE, ENV, version, &mix).await
}

/// A Python `KeyError` raised in `src/billing/tax.py`, called from `src/api/orders.py`.
pub fn billing_key_error(now: i64) -> LogRecord {
    let mut record = log_record(
        "tax lookup failed",
        SEVERITY_ERROR,
        Some(("KeyError", "'atlantis'")),
        now,
    );
    record.attributes.push(kv(
        "exception.stacktrace",
        "Traceback (most recent call last):\n  \
         File \"/app/src/api/orders.py\", line 40, in create_order\n    \
         total = invoice.total(order)\n  \
         File \"/app/src/billing/tax.py\", line 12, in apply_tax\n    \
         return amount * rates[region]\n\
         KeyError: 'atlantis'",
    ));
    record
}

/// A bad release 2: 1 % `TimeoutError` (10× the baseline) and 0.5 % of a new exception.
pub async fn bad_release(collector: &Collector) -> Result<()> {
    baseline_then_deploy(collector, bucket_aligned_now_ms(), "2").await?;
    release_traffic(collector, "2", 20, 10, &declined).await
}

pub async fn alerts(collector: &Collector, query: &str) -> Result<Vec<Value>> {
    let body = collector.get(&format!("/api/v1/alerts{query}")).await?;
    Ok(body["alerts"].as_array().cloned().unwrap_or_default())
}

/// Recomputes `bellwether-signature: t=<secs>,v1=<hex>` over `<secs>.<raw body>`.
pub fn verify_signature(request: &Recorded, secret: &str) -> Result<()> {
    let header = request
        .header("bellwether-signature")
        .context("no bellwether-signature header")?;
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = Some(t.to_owned()),
            Some(("v1", v)) => signature = Some(hex::decode(v)?),
            _ => {}
        }
    }
    let (timestamp, signature) = (timestamp.context("no t=")?, signature.context("no v1=")?);
    let age = now_ms() / 1000 - timestamp.parse::<i64>()?;
    ensure!((-60..300).contains(&age), "signature timestamp {age}s old");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    mac.verify_slice(&signature)
        .context("signature does not verify")?;
    // A different body must not verify with the same header.
    let mut tampered = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
    tampered.update(format!("{timestamp}.{{}}").as_bytes());
    ensure!(tampered.verify_slice(&signature).is_err());
    Ok(())
}

pub fn kinds(notification: &Value) -> BTreeSet<String> {
    notification["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|a| a["kind"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn dedup_keys(notification: &Value) -> BTreeSet<String> {
    notification["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|a| a["dedup_key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits `QUIET`, then checks the receiver got exactly `count` requests in all.
pub async fn stays_at(receiver: &Receiver, count: usize, what: &str) -> Result<()> {
    tokio::time::sleep(QUIET).await;
    let seen = receiver.requests();
    ensure!(
        seen.len() == count,
        "{what}: expected {count}, got {}:\n{}",
        seen.len(),
        seen.iter().map(outline).collect::<Vec<_>>().join("\n")
    );
    Ok(())
}

/// One line per request: its status, the notification's status and summary, and the
/// alerts it carries, so a wrong count can be read at a glance.
pub fn outline(request: &Recorded) -> String {
    let body = request.json();
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    format!(
        "{} {} {} status={} action={} repeat={} summary={:?} sent_at={} alerts={:?}",
        request.status,
        request.path,
        text(&body["id"]),
        text(&body["status"]),
        text(&body["event_action"]),
        body["repeat"],
        body["summary"]
            .as_str()
            .or(body["text"].as_str())
            .unwrap_or("-"),
        text(&body["sent_at"]),
        dedup_keys(&body)
    )
}

//! Alert routing end to end: a real `bellwether serve` judges releases from raw OTLP
//! traffic and notifies real HTTP receivers on loopback (webhook, Slack, PagerDuty), routed
//! by service and code rules, delivered through the durable outbox.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bellwether_e2e::detection::{self, record_deployment, start_collector_with_config_env};
use bellwether_e2e::Collector;
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_testkit::clock::{bucket_aligned_now_ms, now_ms};
use bellwether_testkit::eventually;
use bellwether_testkit::otlp::{kv, log_record, SEVERITY_ERROR};
use bellwether_testkit::receiver::{Receiver, Recorded};
use bellwether_testkit::traffic::{declined, Mix};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const SERVICE: &str = "checkout";
const ENV: &str = "prod";
const HOOK_SECRET: &str = "e2e-payments-hook-secret";
const PD_KEY: &str = "e2e-payments-routing-key";
/// Long enough for a release to turn unhealthy and its notification to arrive.
const ALERT_TIMEOUT: Duration = Duration::from_secs(25);
/// How long nothing more may arrive for a count to be "exactly".
const QUIET: Duration = Duration::from_secs(3);

/// Every team's receivers, each a real HTTP server.
struct Receivers {
    payments_hook: Receiver,
    payments_slack: Receiver,
    payments_pd: Receiver,
    search_hook: Receiver,
    billing_hook: Receiver,
    platform_hook: Receiver,
}

impl Receivers {
    async fn start() -> Result<Self> {
        Ok(Self {
            payments_hook: Receiver::start().await?,
            payments_slack: Receiver::start().await?,
            payments_pd: Receiver::start().await?,
            search_hook: Receiver::start().await?,
            billing_hook: Receiver::start().await?,
            platform_hook: Receiver::start().await?,
        })
    }

    fn config(&self, group_window: &str) -> String {
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
fn start_collector(data_dir: &Path, config: &str) -> Result<Collector> {
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
async fn baseline_then_deploy(collector: &Collector, deploy_ms: i64, version: &str) -> Result<()> {
    detection::baseline_then_deploy(collector, SERVICE, ENV, version, deploy_ms).await
}

/// Traffic of `version` from two instances, timestamped now: per instance 2 000 records,
/// the first `timeouts` baseline-like errors, then `new_errors` made by `new_error`.
async fn release_traffic(
    collector: &Collector,
    version: &str,
    timeouts: usize,
    new_errors: usize,
    new_error: &dyn Fn(i64) -> LogRecord,
) -> Result<()> {
    release_traffic_of(collector, version, 2_000, timeouts, new_errors, new_error).await
}

/// [`release_traffic`] with `per_instance` records from each of the two instances.
async fn release_traffic_of(
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
fn billing_key_error(now: i64) -> LogRecord {
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
async fn bad_release(collector: &Collector) -> Result<()> {
    baseline_then_deploy(collector, bucket_aligned_now_ms(), "2").await?;
    release_traffic(collector, "2", 20, 10, &declined).await
}

async fn alerts(collector: &Collector, query: &str) -> Result<Vec<Value>> {
    let body = collector.get(&format!("/api/v1/alerts{query}")).await?;
    Ok(body["alerts"].as_array().cloned().unwrap_or_default())
}

/// Recomputes `bellwether-signature: t=<secs>,v1=<hex>` over `<secs>.<raw body>`.
fn verify_signature(request: &Recorded, secret: &str) -> Result<()> {
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

fn kinds(notification: &Value) -> BTreeSet<String> {
    notification["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|a| a["kind"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn dedup_keys(notification: &Value) -> BTreeSet<String> {
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
async fn stays_at(receiver: &Receiver, count: usize, what: &str) -> Result<()> {
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
fn outline(request: &Recorded) -> String {
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

#[tokio::test]
async fn a_bad_release_pages_its_owning_team_once_on_every_receiver() -> Result<()> {
    let started = Instant::now();
    let receivers = Receivers::start().await?;
    let dir = tempfile::tempdir()?;
    let collector = start_collector(&dir.path().join("data"), &receivers.config("3s"))?;
    bad_release(&collector).await?;

    let hook = receivers
        .payments_hook
        .wait_accepted(1, ALERT_TIMEOUT)
        .await?;
    let slack = receivers
        .payments_slack
        .wait_accepted(1, ALERT_TIMEOUT)
        .await?;
    // PagerDuty takes one event per alert: one trigger for each alert in the group.
    let alert_count = hook[0].json()["alerts"].as_array().map_or(0, Vec::len);
    let pd = receivers
        .payments_pd
        .wait_accepted(alert_count, ALERT_TIMEOUT)
        .await?;
    let fired_after = started.elapsed();

    // The webhook: one signed, grouped notification (schema v1).
    let request = &hook[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/payments");
    assert_eq!(request.header("content-type"), Some("application/json"));
    verify_signature(request, HOOK_SECRET)?;
    let body = request.json();
    assert_eq!(body["schema"], "bellwether.webhook.v1", "{body:#}");
    assert_eq!(body["type"], "alert");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["repeat"], false);
    assert_eq!(body["team"], "payments");
    assert_eq!(body["service"], SERVICE);
    assert_eq!(body["environment"], ENV);
    assert_eq!(body["release"]["version"], "2");
    assert_eq!(
        request.header("bellwether-notification-id"),
        body["id"].as_str()
    );
    assert_eq!(
        body["dashboard_url"],
        "http://bellwether.test:8480/releases/checkout/2?environment=prod"
    );
    assert_eq!(
        kinds(&body),
        BTreeSet::from(["error_spike".to_owned(), "new_issue".to_owned()]),
        "the spike and the new exception go out as one notification: {body:#}"
    );
    assert!(
        body["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|a| a["routed_by"]
                .as_str()
                .is_some_and(|r| r.contains("checkout*")))),
        "{body:#}"
    );
    assert!(
        body["evidence"].as_array().is_some_and(|e| !e.is_empty()),
        "{body:#}"
    );
    // The spike is summed up by the regression, not by the first figure listed.
    let spike = body["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["kind"] == "error_spike"))
        .cloned()
        .unwrap_or_default();
    assert!(
        spike["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("error spike: severe error rate regression")),
        "{spike:#}"
    );

    // Slack: text fallback and blocks.
    let slack = slack[0].json();
    assert!(
        slack["text"]
            .as_str()
            .is_some_and(|t| t.contains("checkout 2 in prod")),
        "{slack:#}"
    );
    assert!(
        slack["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "{slack:#}"
    );

    // PagerDuty: Events API v2 triggers, deduplicated by the alerts' keys.
    let mut pd_keys = BTreeSet::new();
    for event in &pd {
        assert_eq!(event.path, "/v2/enqueue");
        let event = event.json();
        assert_eq!(event["event_action"], "trigger", "{event:#}");
        assert_eq!(event["routing_key"], PD_KEY);
        assert!(event["payload"]["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("checkout 2 in prod")));
        pd_keys.insert(event["dedup_key"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(pd_keys, dedup_keys(&body));
    assert!(
        pd_keys.contains("checkout/prod/2/error_spike"),
        "{pd_keys:?}"
    );

    // Exactly once, and nobody else hears of it.
    stays_at(&receivers.payments_hook, 1, "payments webhook").await?;
    assert_eq!(receivers.payments_slack.requests().len(), 1);
    // PagerDuty deduplicates on dedup_key (checked above); a delivery whose answer came
    // too late for the receiver timeout may be sent again, which it absorbs.
    assert!(receivers.payments_pd.requests().len() >= alert_count);
    for (other, name) in [
        (&receivers.search_hook, "search"),
        (&receivers.billing_hook, "billing"),
        (&receivers.platform_hook, "platform"),
    ] {
        assert!(
            other.requests().is_empty(),
            "{name} got {:?}",
            other.requests()
        );
    }
    let listed = alerts(&collector, "?team=payments&state=firing").await?;
    assert_eq!(listed.len(), alert_count, "{listed:#?}");
    let search = alerts(&collector, "?team=search").await?;
    assert!(search.is_empty(), "{search:#?}");
    eprintln!(
        "fired after {fired_after:?}, test took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_new_error_in_billing_code_goes_to_billing_by_the_code_rule() -> Result<()> {
    let started = Instant::now();
    let receivers = Receivers::start().await?;
    let dir = tempfile::tempdir()?;
    let collector = start_collector(&dir.path().join("data"), &receivers.config("1s"))?;
    baseline_then_deploy(&collector, bucket_aligned_now_ms(), "2").await?;
    release_traffic(&collector, "2", 2, 20, &billing_key_error).await?;

    let hook = receivers
        .billing_hook
        .wait_accepted(1, ALERT_TIMEOUT)
        .await?;
    let fired_after = started.elapsed();
    let body = hook[0].json();
    assert_eq!(body["team"], "billing", "{body:#}");
    assert_eq!(body["service"], SERVICE);
    assert_eq!(kinds(&body), BTreeSet::from(["new_issue".to_owned()]));
    let alert = &body["alerts"][0];
    let routed_by = alert["routed_by"].as_str().unwrap_or_default();
    assert!(
        routed_by.contains("src/billing/**") && routed_by.contains("routing.code[0]"),
        "{body:#}"
    );
    assert!(alert["summary"]
        .as_str()
        .is_some_and(|s| s.contains("KeyError")));
    assert!(
        alert["evidence"]
            .to_string()
            .contains("/app/src/billing/tax.py"),
        "{body:#}"
    );
    // The webhook of billing has no secret: no signature.
    assert_eq!(hook[0].header("bellwether-signature"), None);

    let listed = alerts(&collector, "?team=billing").await?;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["kind"], "new_issue");
    assert!(listed[0]["fingerprint"].is_string(), "{listed:#?}");
    // Whatever the release-level verdict paged, no payments alert is about this issue.
    let payments = alerts(&collector, "?team=payments").await?;
    assert!(
        payments.iter().all(|a| a["kind"] != "new_issue"),
        "{payments:#?}"
    );
    assert!(receivers.search_hook.requests().is_empty());
    eprintln!(
        "fired after {fired_after:?}, test took {:?}",
        started.elapsed()
    );
    Ok(())
}

/// The accepted requests, checking they all carry one notification id.
fn one_notification(requests: &[Recorded]) -> Result<String> {
    let ids: BTreeSet<&str> = requests
        .iter()
        .filter_map(|r| r.header("bellwether-notification-id"))
        .collect();
    match ids.into_iter().collect::<Vec<_>>().as_slice() {
        [id] => Ok((*id).to_owned()),
        other => bail!("expected one notification id, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_receiver_gets_the_notification_once_it_recovers() -> Result<()> {
    let started = Instant::now();
    let receivers = Receivers::start().await?;
    receivers.payments_hook.fail_next(3);
    let dir = tempfile::tempdir()?;
    let collector = start_collector(&dir.path().join("data"), &receivers.config("1s"))?;
    bad_release(&collector).await?;

    receivers
        .payments_hook
        .wait_accepted(1, ALERT_TIMEOUT)
        .await?;
    let took = started.elapsed();
    stays_at(&receivers.payments_hook, 4, "payments webhook").await?;
    let requests = receivers.payments_hook.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    one_notification(&requests)?;
    for request in &requests {
        verify_signature(request, HOOK_SECRET)?;
    }
    assert_eq!(requests[3].json()["status"], "firing");

    let outbox = collector.get("/api/v1/outbox").await?;
    assert!(
        outbox["counters"]["retries"].as_u64() >= Some(3),
        "{outbox:#}"
    );
    assert_eq!(outbox["counters"]["given_up"], 0, "{outbox:#}");
    assert!(
        outbox["pending"].as_array().is_some_and(Vec::is_empty),
        "{outbox:#}"
    );
    eprintln!(
        "delivered after {took:?}, test took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_notification_pending_at_a_crash_is_delivered_once_after_restart() -> Result<()> {
    let started = Instant::now();
    let receivers = Receivers::start().await?;
    receivers.payments_hook.fail_next(usize::MAX);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let config = receivers.config("1s");
    let collector = start_collector(&data, &config)?;
    bad_release(&collector).await?;

    // Fired, tried and failed at least twice; the other receivers are done with it.
    receivers
        .payments_hook
        .wait_requests(2, ALERT_TIMEOUT)
        .await?;
    receivers
        .payments_slack
        .wait_accepted(1, ALERT_TIMEOUT)
        .await?;
    let outbox = eventually(Duration::from_secs(10), || async {
        let outbox = collector.get("/api/v1/outbox").await?;
        let pending: Vec<&str> = outbox["pending"]
            .as_array()
            .map(|p| p.iter().filter_map(|e| e["receiver"].as_str()).collect())
            .unwrap_or_default();
        Ok((pending == ["payments-hook"]).then_some(outbox))
    })
    .await?;
    assert!(
        outbox["pending"][0]["attempts"].as_u64() >= Some(1),
        "{outbox:#}"
    );
    let pd_before = receivers.payments_pd.accepted().len();
    let slack_before: Vec<String> = receivers
        .payments_slack
        .accepted()
        .iter()
        .map(|r| r.json().to_string())
        .collect();
    assert!(pd_before >= 1);
    let before_kill = receivers.payments_hook.requests();
    assert!(before_kill.iter().all(|r| r.status == 500));
    let id = one_notification(&before_kill)?;

    // SIGKILL (Supervised's drop), then the same data dir again while the hook still fails.
    drop(collector);
    receivers.payments_hook.fail_next(2);
    let failed_before_restart = receivers.payments_hook.requests().len();
    let collector = start_collector(&data, &config)?;

    // The pre-crash notification is delivered after the restart. (A later alert of the
    // same release may go out as a notification of its own: that is not a repeat.)
    let with_id = |requests: Vec<Recorded>| -> Vec<Recorded> {
        requests
            .into_iter()
            .filter(|r| r.header("bellwether-notification-id") == Some(id.as_str()))
            .collect()
    };
    let deadline = Instant::now() + ALERT_TIMEOUT;
    while with_id(receivers.payments_hook.accepted()).is_empty() {
        ensure!(
            Instant::now() < deadline,
            "the pending notification was not delivered after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let total = receivers.payments_hook.requests().len();
    stays_at(&receivers.payments_hook, total, "payments webhook").await?;
    let ours = with_id(receivers.payments_hook.requests());
    let after_restart = &ours[failed_before_restart.min(ours.len())..];
    assert!(
        after_restart
            .iter()
            .all(|r| r.status == 500 || r.status == 200)
            && after_restart.last().map(|r| r.status) == Some(200),
        "after the restart the hook failed, then took it: {after_restart:#?}"
    );
    let accepted = with_id(receivers.payments_hook.accepted());
    assert_eq!(accepted.len(), 1, "delivered exactly once");
    verify_signature(&accepted[0], HOOK_SECRET)?;
    let body = accepted[0].json();
    assert_eq!(body["status"], "firing", "{body:#}");
    assert_eq!(body["release"]["version"], "2");
    // What Slack had taken before the crash was not sent to it again. (Delivery is at
    // least once: a send cut off by the crash itself may be repeated; PagerDuty absorbs
    // that by dedup_key, so only its count is checked.)
    let slack_after: Vec<String> = receivers
        .payments_slack
        .accepted()
        .iter()
        .map(|r| r.json().to_string())
        .collect();
    for body in &slack_before {
        let copies = slack_after.iter().filter(|b| *b == body).count();
        assert_eq!(copies, 1, "slack got a repeat: {slack_after:#?}");
    }
    assert!(receivers.payments_pd.accepted().len() >= pd_before);
    let listed = alerts(&collector, "?team=payments").await?;
    assert!(
        listed
            .iter()
            .all(|a| a["state"] == "firing" && a["release"]["version"] == "2"),
        "{listed:#?}"
    );
    eprintln!(
        "delivered after {took:?}, test took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_healthy_next_release_resolves_the_alert_on_every_receiver() -> Result<()> {
    let started = Instant::now();
    let receivers = Receivers::start().await?;
    let dir = tempfile::tempdir()?;
    let collector = start_collector(&dir.path().join("data"), &receivers.config("1s"))?;
    bad_release(&collector).await?;

    // The spike and the new issue both fire. On a loaded machine the issue can be found
    // after the 1 s group window of the spike closed; it then goes out on its own. Wait
    // until every alert the collector lists has gone out to the webhook.
    let firing = eventually(ALERT_TIMEOUT, || async {
        let listed: BTreeSet<String> = alerts(&collector, "?service=checkout")
            .await?
            .iter()
            .filter_map(|a| a["dedup_key"].as_str().map(str::to_owned))
            .collect();
        let hooks = receivers.payments_hook.accepted();
        let sent: BTreeSet<String> = hooks.iter().flat_map(|r| dedup_keys(&r.json())).collect();
        Ok((listed.len() >= 2 && sent == listed).then_some(hooks.len()))
    })
    .await
    .with_context(|| {
        let hooks = receivers.payments_hook.requests();
        format!(
            "the alerts did not all reach the webhook; it got:\n{}",
            hooks.iter().map(outline).collect::<Vec<_>>().join("\n")
        )
    })?;
    let hook = receivers.payments_hook.accepted();
    let triggered: BTreeSet<String> = hook.iter().flat_map(|r| dedup_keys(&r.json())).collect();
    let kinds_fired: BTreeSet<String> = hook.iter().flat_map(|r| kinds(&r.json())).collect();
    assert!(
        kinds_fired.contains("error_spike") && kinds_fired.contains("new_issue"),
        "{kinds_fired:?}"
    );
    receivers
        .payments_slack
        .wait_accepted(firing, ALERT_TIMEOUT)
        .await?;
    receivers
        .payments_pd
        .wait_accepted(triggered.len(), ALERT_TIMEOUT)
        .await?;
    let fired_after = started.elapsed();

    // Roll forward: 3 deployed now, with baseline-like traffic, enough of it for the
    // evidence to bound its error rate (healthy is a claim that needs evidence).
    record_deployment(&collector, SERVICE, ENV, "3", now_ms()).await?;
    release_traffic_of(&collector, "3", 10_000, 2, 0, &declined).await?;

    let last_seen = std::sync::Mutex::new(Vec::new());
    let resolved = eventually(ALERT_TIMEOUT, || async {
        let listed = alerts(&collector, "?service=checkout").await?;
        let done = !listed.is_empty() && listed.iter().all(|a| a["state"] == "resolved");
        if let Ok(mut seen) = last_seen.lock() {
            seen.clone_from(&listed);
        }
        Ok(done.then_some(listed))
    })
    .await
    .with_context(|| {
        let seen = last_seen.lock().map(|s| s.clone()).unwrap_or_default();
        let lines: Vec<String> = seen
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} {}",
                    a["release"]["version"], a["kind"], a["state"], a["resolution"]
                )
            })
            .collect();
        format!("not every alert was resolved:\n{}", lines.join("\n"))
    })?;
    for alert in &resolved {
        assert_eq!(alert["resolution"], "superseded by 3", "{alert:#}");
        assert_eq!(alert["release"]["version"], "2", "{alert:#}");
    }

    // One resolve for all of them, on every receiver.
    let hook = receivers
        .payments_hook
        .wait_accepted(firing + 1, ALERT_TIMEOUT)
        .await?;
    let slack = receivers
        .payments_slack
        .wait_accepted(firing + 1, ALERT_TIMEOUT)
        .await?;
    let pd = receivers
        .payments_pd
        .wait_accepted(2 * triggered.len(), ALERT_TIMEOUT)
        .await?;
    let resolved_after = started.elapsed();

    let resolve = hook[firing].json();
    verify_signature(&hook[firing], HOOK_SECRET)?;
    assert_eq!(resolve["status"], "resolved", "{resolve:#}");
    assert_eq!(resolve["release"]["version"], "2");
    assert_eq!(dedup_keys(&resolve), triggered);
    assert!(resolve["resolved_at"].is_string(), "{resolve:#}");
    assert!(
        resolve["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|a| a["resolution"] == "superseded by 3")),
        "{resolve:#}"
    );
    let slack = slack[firing].json();
    assert!(
        slack["text"]
            .as_str()
            .is_some_and(|t| t.contains("[RESOLVED] checkout 2 in prod")),
        "{slack:#}"
    );
    let resolves: BTreeSet<String> = pd[triggered.len()..]
        .iter()
        .map(|r| {
            let event = r.json();
            assert_eq!(event["event_action"], "resolve", "{event:#}");
            event["dedup_key"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(resolves, triggered);

    // The resolve went only where the trigger went, once.
    stays_at(&receivers.payments_hook, firing + 1, "payments webhook").await?;
    assert_eq!(receivers.payments_slack.requests().len(), firing + 1);
    assert_eq!(receivers.payments_pd.requests().len(), 2 * triggered.len());
    for other in [
        &receivers.search_hook,
        &receivers.billing_hook,
        &receivers.platform_hook,
    ] {
        assert!(other.requests().is_empty(), "{:?}", other.requests());
    }
    eprintln!(
        "fired after {fired_after:?}, resolved after {resolved_after:?}, test took {:?}",
        started.elapsed()
    );
    Ok(())
}

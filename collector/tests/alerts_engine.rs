//! The alert engine, outbox and receivers together: real HTTP receivers on loopback,
//! a real sled directory, logical alert time passed explicitly to `observe` / `tick`.

mod alerting;

use alerting::*;
use bellwether_alerting::notify::webhook;
use bellwether_model::alert::{AlertFilter, AlertState};
use bellwether_model::silence::{Matchers, SilenceRequest};
use bellwether_model::time::now_unix_ms;
use bellwether_testkit::eventually;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

const WINDOW_MS: i64 = 30_000;

#[tokio::test]
async fn bad_release_pages_the_owning_team_once_with_a_grouped_signed_notification() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    let h = Harness::open(dir.path(), &receivers.alerting()?)?;
    let t0 = now_unix_ms();
    let release = deployment("checkout", "2.4.0", t0 - 60_000);

    h.engine.observe(unhealthy(release.clone(), t0)).await?;
    // Re-evaluations and a second alert kind within the group window.
    h.engine
        .observe(unhealthy(release.clone(), t0 + 5_000))
        .await?;
    let mut with_issue = unhealthy(release.clone(), t0 + 10_000);
    with_issue.new_issues = vec![new_issue("fp-cart", "src/cart/basket.rs")];
    h.engine.observe(with_issue).await?;

    // Still inside the window: nothing queued yet.
    h.engine.tick(t0 + WINDOW_MS - 1).await?;
    assert_eq!(h.outbox.view()?.counters.enqueued, 0);

    h.engine.tick(t0 + WINDOW_MS).await?;
    let counters = h.settled().await?;
    // One webhook, one Slack message, one PagerDuty event per alert.
    assert_eq!((counters.enqueued, counters.delivered), (4, 4));

    let hooks = receivers.hook.accepted();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    let body = hook.json();
    assert_eq!(hook.path, "/bellwether");
    assert_eq!(body["schema"], "bellwether.webhook.v1");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["team"], "payments");
    assert_eq!(body["service"], "checkout");
    assert_eq!(body["release"]["version"], "2.4.0");
    assert_eq!(body["release"]["commit"], "0123abcd");
    assert_eq!(body["kind"], "error_spike");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(2));
    assert!(body["dashboard_url"].as_str().is_some_and(
        |u| u.starts_with("http://bellwether.example.internal/releases/checkout/2.4.0")
    ));
    let signature = hook
        .headers
        .get(webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or("no signature header")?;
    let signed_at = webhook::verify(SECRET.as_bytes(), signature, &hook.body);
    assert!(
        signed_at.is_some_and(|t| (t - now_unix_ms() / 1000).abs() < 60),
        "{signature}"
    );
    assert_eq!(webhook::verify(b"wrong", signature, &hook.body), None);

    let slack = receivers.slack.accepted();
    assert_eq!(slack.len(), 1);
    assert_eq!(slack[0].path, "/services/T000/B000/XXXX");
    let slack = slack[0].json();
    assert!(slack["text"]
        .as_str()
        .is_some_and(|t| t.contains("checkout 2.4.0")));
    assert!(slack["blocks"].as_array().is_some_and(|b| b.len() >= 3));

    let pd = receivers.pagerduty.accepted();
    assert_eq!(pd.len(), 2);
    let mut dedup_keys = Vec::new();
    for event in &pd {
        let e = event.json();
        assert_eq!(event.path, "/v2/enqueue");
        assert_eq!(e["event_action"], "trigger");
        assert_eq!(e["routing_key"], PD_KEY);
        assert!(e["payload"]["summary"]
            .as_str()
            .is_some_and(|s| s.len() <= 1024));
        dedup_keys.push(e["dedup_key"].as_str().unwrap_or_default().to_owned());
    }
    dedup_keys.sort();
    assert_eq!(
        dedup_keys,
        [
            "checkout/production/2.4.0/error_spike",
            "checkout/production/2.4.0/new_issue/fp-cart"
        ]
    );
    assert!(receivers.others_silent());

    // No secret in the outbox view.
    let view = serde_json::to_string(&h.outbox.view()?)?;
    assert!(!view.contains(SECRET) && !view.contains(PD_KEY) && !view.contains("XXXX"));
    h.stop().await
}

#[tokio::test]
async fn new_error_in_billing_code_goes_to_billing_by_code_rule() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    let h = Harness::open(dir.path(), &receivers.alerting()?)?;
    let t0 = now_unix_ms();
    let mut verdict = unhealthy(deployment("checkout", "2.5.0", t0), t0);
    verdict.health = bellwether_model::alert::Health::Degraded;
    verdict.error_spike = false;
    verdict.new_issues = vec![new_issue("fp-bill", "/srv/app/src/billing/invoice.rs")];
    h.engine.observe(verdict).await?;
    h.engine.tick(t0 + WINDOW_MS).await?;
    let got = receivers.billing.wait_accepted(1, WAIT).await?;
    h.settled().await?;
    let body = got[0].json();
    assert_eq!(body["team"], "billing");
    assert_eq!(body["kind"], "new_issue");
    assert_eq!(body["alerts"][0]["fingerprint"], "fp-bill");
    assert!(body["alerts"][0]["routed_by"]
        .as_str()
        .is_some_and(|r| r.contains("src/billing/**") && r.contains("routing.code[0]")));
    assert!(receivers.hook.requests().is_empty());
    assert!(receivers.pagerduty.requests().is_empty());
    assert!(receivers.platform.requests().is_empty());
    h.stop().await
}

#[tokio::test]
async fn failing_receiver_gets_the_notification_once_after_retries() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    receivers.hook.fail_next(3);
    let h = Harness::open(dir.path(), &receivers.alerting()?)?;
    let t0 = now_unix_ms();
    h.engine
        .observe(unhealthy(deployment("checkout", "3.0.0", t0), t0))
        .await?;
    h.engine.tick(t0 + WINDOW_MS).await?;
    let counters = h.settled().await?;
    assert_eq!(receivers.hook.requests().len(), 4);
    let accepted = receivers.hook.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(counters.retries, 3);
    assert_eq!(counters.delivered, 3);
    // The retried body carries the same notification id.
    let ids: Vec<String> = receivers
        .hook
        .requests()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    h.stop().await
}

#[tokio::test]
async fn outbox_survives_a_restart_and_delivers_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    let alerting = receivers.alerting()?;
    receivers.hook.fail_next(usize::MAX);
    let h = Harness::open(dir.path(), &alerting)?;
    let t0 = now_unix_ms();
    h.engine
        .observe(unhealthy(deployment("checkout", "3.1.0", t0), t0))
        .await?;
    h.engine.tick(t0 + WINDOW_MS).await?;
    // At least one failed attempt recorded in the outbox, then "crash". (The receiver
    // seeing a request is not enough: the attempt is saved once the answer is back.)
    eventually(WAIT, || async {
        let recorded = h.outbox.view().ok().is_some_and(|view| {
            view.pending
                .iter()
                .any(|e| e.receiver == "payments-hook" && e.attempts >= 1)
        });
        Ok(recorded.then_some(()))
    })
    .await?;
    h.stop().await?;
    assert!(receivers.hook.accepted().is_empty());

    receivers.hook.fail_next(0);
    let h = Harness::open(dir.path(), &alerting)?;
    let pending = h.outbox.view()?.pending;
    assert!(pending
        .iter()
        .any(|e| e.receiver == "payments-hook" && e.attempts >= 1));
    let counters = h.settled().await?;
    assert_eq!(receivers.hook.accepted().len(), 1);
    assert!(counters.retries >= 1);
    // The alert state came back too: it is still firing and was sent to the hook.
    let alerts = h.engine.alerts(AlertFilter::default()).await?;
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].notified.contains("payments-hook"));
    h.stop().await
}

#[tokio::test]
async fn roll_forward_resolves_and_tells_every_receiver_that_got_the_trigger() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    let h = Harness::open(dir.path(), &receivers.alerting()?)?;
    let t0 = now_unix_ms();
    let bad = deployment("checkout", "4.0.0", t0 - 120_000);
    h.engine.observe(unhealthy(bad.clone(), t0)).await?;
    h.engine.tick(t0 + WINDOW_MS).await?;
    h.settled().await?;

    let next = deployment("checkout", "4.0.1", t0 + 60_000);
    h.engine.observe(healthy(next, t0 + 120_000)).await?;
    h.settled().await?;

    let hooks = receivers.hook.accepted();
    assert_eq!(hooks.len(), 2);
    let resolved = hooks[1].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["release"]["version"], "4.0.0");
    assert_eq!(resolved["alerts"][0]["resolution"], "superseded by 4.0.1");
    assert!(resolved["resolved_at"].is_string());
    let slack = receivers.slack.accepted();
    assert_eq!(slack.len(), 2);
    assert!(slack[1].json()["text"]
        .as_str()
        .is_some_and(|t| t.contains("RESOLVED")));
    let pd = receivers.pagerduty.accepted();
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[1].json()["event_action"], "resolve");
    assert_eq!(pd[1].json()["dedup_key"], pd[0].json()["dedup_key"]);

    let alerts = h.engine.alerts(AlertFilter::default()).await?;
    assert_eq!(alerts[0].state, AlertState::Resolved);
    assert_eq!(alerts[0].superseded_by.as_deref(), Some("4.0.1"));
    // A late verdict for the superseded release does not reopen it.
    h.engine.observe(unhealthy(bad, t0 + 130_000)).await?;
    let alerts = h.engine.alerts(AlertFilter::default()).await?;
    assert_eq!(alerts[0].state, AlertState::Resolved);
    assert!(receivers.others_silent());
    h.stop().await
}

#[tokio::test]
async fn a_silence_holds_notifications_back_until_it_is_removed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    let h = Harness::open(dir.path(), &receivers.alerting()?)?;
    let t0 = now_unix_ms();
    let silence = h
        .engine
        .add_silence(
            SilenceRequest {
                matchers: Matchers {
                    service: Some("checkout".into()),
                    ..Matchers::default()
                },
                duration: Some("2h".into()),
                comment: "planned migration".into(),
                ..SilenceRequest::default()
            },
            t0,
        )
        .await?;
    h.engine
        .observe(unhealthy(deployment("checkout", "5.0.0", t0), t0))
        .await?;
    h.engine.tick(t0 + WINDOW_MS).await?;
    h.engine.tick(t0 + WINDOW_MS + 60_000).await?;
    assert_eq!(h.outbox.view()?.counters.enqueued, 0);
    let alerts = h.engine.alerts(AlertFilter::default()).await?;
    assert_eq!(alerts[0].silenced_by.as_deref(), Some(silence.id.as_str()));

    h.engine.remove_silence(silence.id).await?;
    h.engine.tick(t0 + WINDOW_MS + 61_000).await?;
    let counters = h.settled().await?;
    assert_eq!(counters.delivered, 3);
    assert_eq!(receivers.hook.accepted().len(), 1);
    h.stop().await
}

#[tokio::test]
async fn an_acknowledged_alert_is_not_repeated() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    let h = Harness::open(dir.path(), &receivers.alerting()?)?;
    let t0 = now_unix_ms();
    h.engine
        .observe(unhealthy(deployment("checkout", "6.0.0", t0), t0))
        .await?;
    h.engine
        .observe(unhealthy(deployment("checkout-web", "6.0.0", t0), t0))
        .await?;
    h.engine.tick(t0 + WINDOW_MS).await?;
    h.settled().await?;
    assert_eq!(receivers.hook.accepted().len(), 2);

    let alerts = h
        .engine
        .alerts(AlertFilter {
            service: Some("checkout".into()),
            ..AlertFilter::default()
        })
        .await?;
    let acked = h
        .engine
        .acknowledge(alerts[0].id.clone(), Some("alice".into()), t0 + 60_000)
        .await?;
    assert_eq!(acked.state, AlertState::Acknowledged);
    h.settled().await?;
    let pd = receivers.pagerduty.accepted();
    assert_eq!(pd.len(), 3);
    assert_eq!(pd[2].json()["event_action"], "acknowledge");

    // Four hours later only the unacknowledged checkout-web alert repeats.
    h.engine.tick(t0 + WINDOW_MS + 4 * 3_600_000).await?;
    h.settled().await?;
    let hooks = receivers.hook.accepted();
    let firing: Vec<_> = hooks
        .iter()
        .map(|r| r.json())
        .filter(|b| b["status"] == "firing")
        .collect();
    assert_eq!(firing.len(), 3);
    let repeat = &firing[2];
    assert_eq!(repeat["repeat"], true);
    assert_eq!(repeat["service"], "checkout-web");
    h.stop().await
}

#[tokio::test]
async fn recorded_deploys_reach_receivers_that_opted_in() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    let h = Harness::open(dir.path(), &receivers.alerting()?)?;
    let mut d = deployment("checkout", "7.0.0", now_unix_ms());
    d.notes = Some("new payment flow".into());
    h.engine.deployment_recorded(d).await?;
    let counters = h.settled().await?;
    assert_eq!(counters.delivered, 2);
    let hook = receivers.hook.accepted();
    assert_eq!(hook[0].json()["type"], "deploy");
    assert_eq!(hook[0].json()["release"]["notes"], "new payment flow");
    let pd = receivers.pagerduty.accepted();
    assert_eq!(pd[0].path, "/v2/change/enqueue");
    assert_eq!(
        pd[0].json()["payload"]["custom_details"]["version"],
        "7.0.0"
    );
    assert!(receivers.slack.requests().is_empty());
    h.stop().await
}

/// A delivery that ends while the deliverer is reading the outbox must not be sent again:
/// the read can predate the entry's removal while the running set no longer holds it.
#[tokio::test]
async fn a_delivery_ending_while_the_outbox_is_read_is_sent_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    // The webhook answers slowly, PagerDuty at once: PagerDuty's answer starts a new read
    // while the webhook's delivery runs, and that read outlasts it.
    receivers.hook.delay_answers(Duration::from_millis(300));
    let pause_ms = Arc::new(AtomicU64::new(600));
    let h = Harness::open_with_read_pause(dir.path(), &receivers.alerting()?, pause_ms)?;
    h.engine
        .deployment_recorded(deployment("checkout", "7.0.1", now_unix_ms()))
        .await?;
    let counters = h.settled().await?;
    // Time for a second send to show.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(counters.delivered, 2);
    assert_eq!(
        receivers.hook.requests().len(),
        1,
        "{:?}",
        receivers.hook.requests()
    );
    assert_eq!(receivers.pagerduty.requests().len(), 1);
    assert_eq!(h.outbox.view()?.counters.delivered, 2);
    h.stop().await
}

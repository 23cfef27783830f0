//! Who is paged: the owning team by the service rule on every one of its receivers, or
//! billing by the code rule; nobody else.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::Result;
use bellwether_testkit::clock::bucket_aligned_now_ms;

use crate::support::{
    alerts, bad_release, baseline_then_deploy, billing_key_error, dedup_keys, kinds,
    release_traffic, start_collector, stays_at, verify_signature, Receivers, ALERT_TIMEOUT, ENV,
    HOOK_SECRET, PD_KEY, SERVICE,
};

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

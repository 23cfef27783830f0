//! Resolution: a healthy next release supersedes the bad one, and every receiver that got
//! the trigger gets one resolve.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{Context, Result};
use bellwether_e2e::detection::record_deployment;
use bellwether_testkit::clock::now_ms;
use bellwether_testkit::eventually;
use bellwether_testkit::traffic::declined;

use crate::support::{
    alerts, bad_release, dedup_keys, kinds, outline, release_traffic_of, start_collector, stays_at,
    verify_signature, Receivers, ALERT_TIMEOUT, ENV, HOOK_SECRET, SERVICE,
};

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

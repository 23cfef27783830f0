//! Delivery through the durable outbox: retried until a failing receiver recovers, and
//! still delivered, once, when the collector crashed with it pending.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use bellwether_testkit::eventually;
use bellwether_testkit::receiver::Recorded;

use crate::support::{
    alerts, bad_release, start_collector, stays_at, verify_signature, Receivers, ALERT_TIMEOUT,
    HOOK_SECRET,
};

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

//! Suspect commits, end to end: release 2 is recorded with the commits it adds (one of
//! them changes `src/billing/tax.py`), a new Python exception whose top in-app frame is
//! that file starts in it, and the verdict that flags it — the one the alert is sent from,
//! and the API serves — names that commit and not the others; so do the issue in
//! `/issues` and its row on the release page.

use anyhow::{ensure, Result};
use bellwether_e2e::browser::Browser;
use bellwether_e2e::detection::{self, release_traffic, start_collector_with_config};
use bellwether_e2e::{http_get_json, http_post_json};
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_testkit::clock::bucket_aligned_now_ms;
use bellwether_testkit::eventually;
use bellwether_testkit::otlp::{kv, log_record, SEVERITY_ERROR};
use bellwether_testkit::traffic::Mix;
use serde_json::{json, Value};
use std::time::Duration;

const CONFIG: &str = r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"
"#;
const ENV: &str = "prod";

const TRACE: &str = "Traceback (most recent call last):
  File \"/app/src/api/views.py\", line 40, in checkout
    total = billing.total(cart)
  File \"/app/src/billing/tax.py\", line 12, in total
    return round(amount * RATES[region], 2)
KeyError: 'eu-south'";

/// The new exception, as a Python logger's JSON handler ships it.
fn tax_error(unix_ms: i64) -> LogRecord {
    let mut record = log_record(
        "checkout failed",
        SEVERITY_ERROR,
        Some(("KeyError", "'eu-south'")),
        unix_ms,
    );
    record.attributes.push(kv("exception.stacktrace", TRACE));
    record
}

#[tokio::test]
async fn the_flagging_verdict_names_the_commit_that_changed_the_failing_frame() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    let deploy_ms = bucket_aligned_now_ms();
    detection::baseline_then_deploy(&collector, "checkout", ENV, "2", deploy_ms).await?;
    // Record release 2 again with its change set (recording merges into the deployment).
    let change = |sha: &str, subject: &str, files: &[&str]| {
        json!({"sha": sha, "author": "Ann", "committed_at": "2026-12-01T10:00:00Z",
               "subject": subject, "files": files})
    };
    let body = json!({
        "service": "checkout", "environment": ENV, "version": "2",
        "started_at_unix_ms": deploy_ms,
        "changes": [
            change("aaaaaaa111", "Docs: checkout", &["docs/checkout.md"]),
            change("bbbbbbb222", "Tax: rates for eu-south", &["src/billing/tax.py"]),
            change("ccccccc333", "Views: new checkout", &["src/api/views.py"]),
        ],
    });
    let (status, answer) =
        http_post_json(&format!("{}/api/v1/deployments", collector.url()), &body).await?;
    ensure!(status == 201, "{status}: {answer}");

    let mix = Mix {
        total: 2_000,
        timeouts: 2,
        new_errors: 30,
        new_error: &tax_error,
    };
    release_traffic(&collector, "checkout", ENV, "2", &mix).await?;

    let url = format!(
        "{}/api/v1/releases/checkout/2/health?environment={ENV}",
        collector.url()
    );
    let health = eventually(Duration::from_secs(30), || async {
        let (_, body) = http_get_json(&url).await?;
        let named = body["evidence"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "suspect_commits"));
        Ok(named.then_some(body))
    })
    .await?;
    let evidence: Vec<Value> = health["evidence"].as_array().cloned().unwrap_or_default();
    let suspects: Vec<&Value> = evidence
        .iter()
        .filter(|e| e["kind"] == "suspect_commits")
        .collect();
    ensure!(suspects.len() == 1, "{suspects:#?}");
    let listed = suspects[0]["suspects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shas: Vec<&str> = listed.iter().filter_map(|s| s["sha"].as_str()).collect();
    ensure!(shas == ["bbbbbbb222", "ccccccc333"], "{listed:#?}");
    ensure!(
        listed[0]["reason"] == "changed src/billing/tax.py, the top in-app frame",
        "{listed:#?}"
    );
    let summary = suspects[0]["summary"].as_str().unwrap_or_default();
    ensure!(
        summary.starts_with("KeyError: suspect commits bbbbbbb \"Tax: rates for eu-south\" by Ann"),
        "{summary}"
    );
    ensure!(!summary.contains("aaaaaaa"), "{summary}");

    // The issue names the same commits.
    let (status, issues) = http_get_json(&format!(
        "{}/api/v1/releases/checkout/2/issues?environment={ENV}",
        collector.url()
    ))
    .await?;
    ensure!(status == 200, "{status}: {issues}");
    let issue = issues["issues"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["exception_type"] == "KeyError"))
        .cloned()
        .unwrap_or_default();
    ensure!(
        issue["suspect_commits"] == Value::Array(listed.clone()),
        "{issue:#}"
    );
    let baseline_issue = issues["issues"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["status"] == "existing"))
        .cloned()
        .unwrap_or_default();
    ensure!(
        baseline_issue["suspect_commits"].is_null(),
        "{baseline_issue:#}"
    );

    // And the release page shows them on the issue.
    let Some(browser) = Browser::find()? else {
        return Ok(());
    };
    let page = browser
        .load(&format!(
            "{}/releases/checkout/2?environment={ENV}",
            collector.url()
        ))
        .await?;
    ensure!(
        page.console_errors().is_empty(),
        "{:?}",
        page.console_errors()
    );
    ensure!(
        page.dom.contains("data-suspect=\"bbbbbbb222\""),
        "{}",
        page.dom
    );
    Ok(())
}

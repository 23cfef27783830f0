//! The web UI and `/metrics` over a collector fed a scripted scenario: `checkout` 1 served
//! prod for a while, 2 was deployed and fails with a new exception. Headless Chromium
//! loads every page; the DOM after the page's scripts ran must show the unhealthy release,
//! the new issue, the alert and a chart with data points, with nothing on the console.

use std::time::Duration;

use anyhow::{Context, Result};
use bellwether_e2e::browser::{artifacts_dir, Browser, Page};
use bellwether_e2e::detection::{
    baseline_then_deploy, release_traffic, start_collector_with_config,
};
use bellwether_e2e::{http_get_json, prometheus, Collector};
use bellwether_testkit::clock::bucket_aligned_now_ms;
use bellwether_testkit::eventually;
use bellwether_testkit::otlp::{log_record, SEVERITY_ERROR};
use bellwether_testkit::traffic::Mix;

const CONFIG: &str = r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"

[routing]
default_team = "payments"
group_window = "1s"
retry_initial = "100ms"
retry_max = "1s"

[[routing.services]]
match = "checkout*"
team = "payments"

[[teams]]
name = "payments"
receivers = ["payments-hook"]

[[receivers]]
name = "payments-hook"
type = "webhook"
url = "http://127.0.0.1:9/hooks/payments"
"#;

/// Baseline 1 (20 000 records, 0.1 % timeouts), then 2 with 10× the timeouts and a new
/// `PaymentDeclinedError` on two instances; waits until 2 is unhealthy with a firing alert.
async fn scenario(collector: &Collector) -> Result<()> {
    baseline_then_deploy(collector, "checkout", "prod", "2", bucket_aligned_now_ms()).await?;
    let mix = Mix {
        total: 2_000,
        timeouts: 20,
        new_errors: 10,
        new_error: &|now| {
            log_record(
                "payment failed",
                SEVERITY_ERROR,
                Some((
                    "PaymentDeclinedError",
                    "card <script>alert(1)</script> declined",
                )),
                now,
            )
        },
    };
    release_traffic(collector, "checkout", "prod", "2", &mix).await?;
    eventually(Duration::from_secs(30), || async {
        let alerts = collector.get("/api/v1/alerts?service=checkout").await?;
        let firing = alerts["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["state"] == "firing" && x["release"]["version"] == "2")
        });
        let health = collector
            .get("/api/v1/releases/checkout/2/health?environment=prod")
            .await?;
        Ok((firing && health["verdict"] == "unhealthy").then_some(()))
    })
    .await
    .context("checkout 2 never became unhealthy with a firing alert")
}

fn points(dom: &str) -> usize {
    dom.matches("class=\"point\"").count()
}

fn assert_clean(name: &str, page: &Page) {
    assert!(
        page.dom.contains("data-ready=\"true\""),
        "{name}: the page did not finish rendering:\n{}",
        page.dom
    );
    let errors = page.console_errors();
    assert!(
        errors.is_empty(),
        "{name}: console errors:\n{}",
        errors.join("\n")
    );
    assert!(
        !page.dom.contains("<script>alert(1)"),
        "{name}: user-controlled text reached the DOM as HTML"
    );
}

#[tokio::test]
async fn every_page_shows_the_bad_release_its_issue_and_its_alert() -> Result<()> {
    let Some(browser) = Browser::find()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    scenario(&collector).await?;
    let url = collector.url();

    let services = browser.load(&format!("{url}/")).await?;
    assert_clean("services", &services);
    let row = services
        .dom
        .split("data-service=\"checkout\"")
        .nth(1)
        .unwrap_or_default();
    assert!(
        row.contains("data-verdict=\"unhealthy\""),
        "{}",
        services.dom
    );
    assert!(
        row.contains("payments"),
        "owning team missing: {}",
        services.dom
    );

    let service = browser
        .load(&format!("{url}/services/checkout?environment=prod"))
        .await?;
    assert_clean("service", &service);
    assert!(
        points(&service.dom) >= 2,
        "no chart points:\n{}",
        service.dom
    );
    assert!(service.dom.contains("id=\"comparison\""), "{}", service.dom);
    assert!(
        service.dom.contains("data-role=\"baseline\""),
        "{}",
        service.dom
    );

    let release = browser
        .load(&format!("{url}/releases/checkout/2?environment=prod"))
        .await?;
    assert_clean("release", &release);
    assert!(
        release.dom.contains("data-verdict=\"unhealthy\""),
        "{}",
        release.dom
    );
    assert!(
        release.dom.contains("PaymentDeclinedError"),
        "new issue missing:\n{}",
        release.dom
    );
    assert!(
        release.dom.contains("data-status=\"new\""),
        "{}",
        release.dom
    );
    assert!(
        release
            .dom
            .contains("card &lt;script&gt;alert(1)&lt;/script&gt; declined"),
        "the sample message is not shown as text:\n{}",
        release.dom
    );
    assert!(
        release.dom.contains("data-alert=\"bw-"),
        "alert missing:\n{}",
        release.dom
    );
    assert!(
        points(&release.dom) >= 2,
        "no chart points:\n{}",
        release.dom
    );

    let alerts = browser.load(&format!("{url}/alerts")).await?;
    assert_clean("alerts", &alerts);
    assert!(
        alerts.dom.contains("data-state=\"firing\""),
        "{}",
        alerts.dom
    );
    assert!(alerts.dom.contains("error_spike"), "{}", alerts.dom);
    assert!(
        alerts.dom.contains("class=\"ack\""),
        "no ack button: {}",
        alerts.dom
    );

    let shot = artifacts_dir().join("release.png");
    browser
        .screenshot(
            &format!("{url}/releases/checkout/2?environment=prod"),
            &shot,
        )
        .await?;
    assert!(
        std::fs::metadata(&shot)?.len() > 10_000,
        "screenshot looks empty"
    );
    Ok(())
}

#[tokio::test]
async fn metrics_parse_and_carry_the_scenario() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    scenario(&collector).await?;
    let (status, text) =
        bellwether_e2e::agent_ops::http_get_text(&format!("{}/metrics", collector.url())).await?;
    assert_eq!(status, 200);
    let (families, samples) = prometheus::parse(&text)?;
    assert_eq!(
        families
            .get("bellwether_release_verdict")
            .map(String::as_str),
        Some("gauge")
    );
    assert_eq!(
        families
            .get("bellwether_ingest_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    let release = [
        ("service", "checkout"),
        ("environment", "prod"),
        ("version", "2"),
    ];
    let verdict = |v: &str| {
        let mut labels = release.to_vec();
        labels.push(("verdict", v));
        prometheus::value(&samples, "bellwether_release_verdict", &labels)
    };
    assert_eq!(verdict("unhealthy"), Some(1.0), "{text}");
    assert_eq!(verdict("healthy"), Some(0.0), "{text}");
    let ratio = prometheus::value(&samples, "bellwether_release_error_ratio", &release);
    assert!(
        ratio.is_some_and(|r| (0.01..0.03).contains(&r)),
        "{ratio:?}\n{text}"
    );
    assert_eq!(
        prometheus::value(&samples, "bellwether_release_exposure_total", &release),
        Some(4_000.0)
    );
    assert_eq!(
        prometheus::value(
            &samples,
            "bellwether_deployments_total",
            &[("service", "checkout")]
        ),
        Some(2.0)
    );
    let firing = prometheus::value(
        &samples,
        "bellwether_alerts",
        &[("state", "firing"), ("team", "payments")],
    );
    assert!(firing.is_some_and(|n| n >= 1.0), "{text}");
    let applied = prometheus::value(
        &samples,
        "bellwether_ingest_requests_total",
        &[("signal", "logs"), ("result", "applied")],
    );
    assert!(applied.is_some_and(|n| n >= 3.0), "{text}");
    assert!(
        prometheus::value(
            &samples,
            "bellwether_ingest_records_total",
            &[("signal", "logs")]
        )
        .is_some_and(|n| n >= 24_000.0),
        "{text}"
    );
    // The receiver is unreachable: its attempts are counted as retried.
    let retried = eventually(Duration::from_secs(20), || async {
        let (_, text) =
            bellwether_e2e::agent_ops::http_get_text(&format!("{}/metrics", collector.url()))
                .await?;
        let (_, samples) = prometheus::parse(&text)?;
        let n = prometheus::value(
            &samples,
            "bellwether_notifications_total",
            &[("receiver", "payments-hook"), ("result", "retried")],
        );
        Ok(n.filter(|n| *n >= 1.0))
    })
    .await?;
    assert!(retried >= 1.0);
    // The UI's summary endpoint agrees.
    let (status, services) = http_get_json(&format!("{}/api/v1/services", collector.url())).await?;
    assert_eq!(status, 200);
    assert_eq!(
        services["services"][0]["environments"][0]["current"]["verdict"],
        "unhealthy"
    );
    assert_eq!(
        services["services"][0]["environments"][0]["team"],
        "payments"
    );
    Ok(())
}

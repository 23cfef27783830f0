//! The gates rollout tools ask, end to end: requests shaped as Argo Rollouts' `web`
//! metric provider and Flagger's webhooks send them, against a real `bellwether serve`
//! with a pending, a healthy, a degraded (slower) and an unhealthy release.

use anyhow::{ensure, Result};
use bellwether_e2e::detection::{self, release_traffic, start_collector_with_config};
use bellwether_e2e::{http_get_json, http_post_json, Collector};
use bellwether_testkit::clock::{bucket_aligned_now_ms, now_ms};
use bellwether_testkit::eventually;
use bellwether_testkit::otlp::{export_spans, release_resource, server_span};
use bellwether_testkit::traffic::{self, Mix};
use serde_json::json;
use std::time::Duration;

const CONFIG: &str = r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"
"#;
const ENV: &str = "prod";

/// What Argo's `web` provider reads with `jsonPath: "{$.verdict}"`.
async fn argo(collector: &Collector, service: &str) -> Result<(u16, serde_json::Value)> {
    http_get_json(&format!(
        "{}/api/v1/releases/{service}/2/verdict?environment={ENV}",
        collector.url()
    ))
    .await
}

/// A Flagger webhook body (fields as Flagger's documentation lists them).
fn flagger_body(canary: &str, kind: &str, metadata: serde_json::Value) -> serde_json::Value {
    json!({
        "name": canary,
        "namespace": ENV,
        "phase": "Progressing",
        "checksum": "85d557f47b",
        "type": kind,
        "metadata": metadata,
    })
}

async fn flagger(
    collector: &Collector,
    body: &serde_json::Value,
) -> Result<(u16, serde_json::Value)> {
    http_post_json(&format!("{}/api/v1/gates/flagger", collector.url()), body).await
}

/// `pricing`: release 1 served 3 000 requests in 18–24 ms over the five minutes before
/// `deploy_ms`; release 2, deployed then, serves 2 000 (from two instances) in 90–110 ms,
/// none failing: a latency regression and nothing else, so degraded.
async fn slower_release(collector: &Collector, deploy_ms: i64) -> Result<()> {
    detection::record_deployment(collector, "pricing", ENV, "1", deploy_ms - 30 * 60_000).await?;
    let before: Vec<_> = (0..3_000u64)
        .map(|i| {
            let at = deploy_ms - 300_000 + i as i64 * 100;
            server_span(i, at, 18.0 + (i % 7) as f64, false)
        })
        .collect();
    let resource = release_resource("pricing", "1", ENV, "pricing-1-a");
    export_spans(&collector.grpc_url(), &resource, before).await?;
    detection::record_deployment(collector, "pricing", ENV, "2", deploy_ms).await?;
    for (n, instance) in [(10_000u64, "a"), (20_000, "b")] {
        let now = now_ms();
        let after = (0..1_000u64)
            .map(|i| server_span(n + i, now, 90.0 + (i % 21) as f64, false))
            .collect();
        let resource = release_resource("pricing", "2", ENV, &format!("pricing-2-{instance}"));
        export_spans(&collector.grpc_url(), &resource, after).await?;
    }
    Ok(())
}

#[tokio::test]
async fn argo_and_flagger_get_the_verdict_of_pending_healthy_degraded_and_unhealthy_releases(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    let deploy_ms = bucket_aligned_now_ms();
    for service in ["checkout", "payments", "search"] {
        detection::baseline_then_deploy(&collector, service, ENV, "2", deploy_ms).await?;
    }
    // checkout: plenty of clean traffic; payments: 10× the errors and a new exception;
    // search: no traffic of 2 yet.
    let good = Mix {
        total: 10_000,
        timeouts: 2,
        new_errors: 0,
        new_error: &traffic::declined,
    };
    release_traffic(&collector, "checkout", ENV, "2", &good).await?;
    let bad = Mix {
        total: 2_000,
        timeouts: 20,
        new_errors: 10,
        new_error: &traffic::declined,
    };
    release_traffic(&collector, "payments", ENV, "2", &bad).await?;
    slower_release(&collector, deploy_ms).await?;

    for (service, expected) in [
        ("checkout", "healthy"),
        ("payments", "unhealthy"),
        ("pricing", "degraded"),
    ] {
        let seen = eventually(Duration::from_secs(30), || async {
            let (status, body) = argo(&collector, service).await?;
            ensure!(status == 200, "{status}: {body}");
            Ok((body["verdict"] == expected).then_some(body))
        })
        .await;
        ensure!(seen.is_ok(), "{service} never {expected} for Argo");
    }
    let (status, body) = argo(&collector, "search").await?;
    ensure!(
        status == 200 && body["verdict"] == "pending",
        "{status}: {body}"
    );
    ensure!(
        body["service"] == "search" && body["version"] == "2",
        "{body}"
    );
    let (status, _) = argo(&collector, "nosuch").await?;
    ensure!(status == 404, "an unknown release answered {status}");

    // Flagger: the canary's name and namespace are the service and environment unless
    // the metadata says otherwise; the version comes from the metadata.
    let cases = [
        (
            flagger_body("checkout", "confirm-promotion", json!({"version": "2"})),
            200,
        ),
        (
            flagger_body("payments", "rollout", json!({"version": "2"})),
            412,
        ),
        (
            flagger_body("search", "confirm-promotion", json!({"version": "2"})),
            425,
        ),
        (
            flagger_body(
                "checkout-canary",
                "rollout",
                json!({"service": "payments", "environment": ENV, "version": "2"}),
            ),
            412,
        ),
        (
            flagger_body("pricing", "confirm-promotion", json!({"version": "2"})),
            412,
        ),
        (
            flagger_body(
                "pricing",
                "confirm-promotion",
                json!({"version": "2", "allow_degraded": "true"}),
            ),
            200,
        ),
        (
            flagger_body("checkout", "rollout", json!({"version": "9"})),
            404,
        ),
    ];
    for (body, expected) in &cases {
        let (status, answer) = flagger(&collector, body).await?;
        ensure!(
            status == *expected,
            "{body} answered {status}, expected {expected}: {answer}"
        );
    }
    let (status, answer) =
        flagger(&collector, &flagger_body("checkout", "rollout", json!({}))).await?;
    ensure!(status == 400, "no version answered {status}");
    ensure!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("metadata.version")),
        "{answer}"
    );
    let (status, _) = flagger(&collector, &json!({"phase": "Progressing"})).await?;
    ensure!(status == 400, "a body without the canary answered {status}");

    // The shipped manifests name these very routes.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let in_cluster = "http://bellwether.bellwether.svc:8480";
    let url_in = |file: &str| -> Result<String> {
        let text = std::fs::read_to_string(root.join(file))?;
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("url: "))
            .ok_or_else(|| anyhow::anyhow!("{file} names no url"))?;
        Ok(line.trim_matches('"').replace(in_cluster, &collector.url()))
    };
    let argo_url = url_in("deploy/argo-rollouts/analysis-template.yaml")?
        .replace("{{args.service}}", "checkout")
        .replace("{{args.version}}", "2")
        .replace("{{args.environment}}", ENV);
    let (status, body) = http_get_json(&argo_url).await?;
    ensure!(
        status == 200 && body["verdict"] == "healthy",
        "{argo_url}: {status} {body}"
    );
    let flagger_url = url_in("deploy/flagger/canary.yaml")?;
    let body = flagger_body("checkout", "rollout", json!({"version": "2"}));
    let (status, answer) = http_post_json(&flagger_url, &body).await?;
    ensure!(status == 200, "{flagger_url}: {status} {answer}");
    Ok(())
}

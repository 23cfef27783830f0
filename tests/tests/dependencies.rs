//! Which dependency (or which feature-flag variant) a release broke, end to end: a service whose requests each call
//! `payments-api` and a PostgreSQL database, exported as OTLP traces to a real
//! `bellwether serve`; the new release's payments calls fail 8 % of the time (the
//! database's do not fail more but take four times as long), and the verdict names
//! payments-api for its errors and the database for its latency, and not the other way;
//! the release page shows both in its dependency table.

use anyhow::{ensure, Result};
use bellwether_e2e::browser::Browser;
use bellwether_e2e::detection::{self, start_collector_with_config};
use bellwether_e2e::{http_get_json, Collector};
use bellwether_proto::otlp::trace::Span;
use bellwether_testkit::clock::{bucket_aligned_now_ms, now_ms};
use bellwether_testkit::eventually;
use bellwether_testkit::otlp::{client_span, export_spans, release_resource, server_span};
use serde_json::Value;
use std::time::Duration;

const CONFIG: &str = r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"
"#;
const ENV: &str = "prod";
const PAYMENTS: &[(&str, &str)] = &[("peer.service", "payments-api")];
const DATABASE: &[(&str, &str)] = &[("db.system.name", "postgresql"), ("db.namespace", "orders")];

/// Request `n` ending at `at`: its server span (failed when a call failed) and its two
/// calls: payments in 30–34 ms, the database in `database_ms` to 2 ms more.
fn request(
    n: u64,
    at: i64,
    payments_fails: bool,
    database_fails: bool,
    database_ms: f64,
) -> Vec<Span> {
    let spread = |k: u64| (n % k) as f64;
    vec![
        server_span(n, at, 60.0, payments_fails || database_fails),
        client_span(n, 1, at, 30.0 + spread(5), PAYMENTS, payments_fails),
        client_span(n, 2, at, database_ms + spread(3), DATABASE, database_fails),
    ]
}

async fn health(collector: &Collector) -> Result<Value> {
    let (status, body) = http_get_json(&format!(
        "{}/api/v1/releases/checkout/2/health?environment={ENV}",
        collector.url()
    ))
    .await?;
    ensure!(status == 200, "{status}: {body}");
    Ok(body)
}

/// Release 1 of `checkout` (deployed 30 minutes before `deploy_ms`) with its spans
/// `before`, then release 2 deployed at `deploy_ms` with its spans `after`.
async fn cut_over(
    collector: &Collector,
    deploy_ms: i64,
    before: Vec<Span>,
    after: Vec<Span>,
) -> Result<()> {
    for (version, started, spans) in [
        ("1", deploy_ms - 30 * 60_000, before),
        ("2", deploy_ms, after),
    ] {
        detection::record_deployment(collector, "checkout", ENV, version, started).await?;
        let resource = release_resource("checkout", version, ENV, &format!("checkout-{version}-a"));
        export_spans(&collector.grpc_url(), &resource, spans).await?;
    }
    Ok(())
}

/// Release 2's health once its evidence holds an item of `kind`, and those items.
async fn health_naming(collector: &Collector, kind: &str) -> Result<(Value, Vec<Value>)> {
    let body = eventually(Duration::from_secs(30), || async {
        let body = health(collector).await?;
        let named = body["evidence"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == kind));
        Ok(named.then_some(body))
    })
    .await?;
    let items = body["evidence"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["kind"] == kind).cloned().collect())
        .unwrap_or_default();
    Ok((body, items))
}

/// Release 2's page in chromium (when there is one) holds every one of `rows`.
async fn page_shows(collector: &Collector, rows: &[String]) -> Result<()> {
    let Some(browser) = Browser::find()? else {
        return Ok(());
    };
    let page = browser
        .load(&format!(
            "{}/releases/checkout/2?environment={ENV}",
            collector.url()
        ))
        .await?;
    ensure!(page.dom.contains("data-ready=\"true\""), "{}", page.dom);
    ensure!(
        page.console_errors().is_empty(),
        "{:?}",
        page.console_errors()
    );
    for row in rows {
        ensure!(
            page.dom.contains(row.as_str()),
            "no row {row}:\n{}",
            page.dom
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_verdict_names_the_dependency_that_started_failing_and_not_the_other() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    let deploy_ms = bucket_aligned_now_ms();
    // Release 1: 3 000 requests over the 5 minutes before the deploy, one call in 500 of
    // each dependency failing (0.2 %).
    let before: Vec<_> = (0..3_000u64)
        .flat_map(|i| {
            request(
                i,
                deploy_ms - 300_000 + i as i64 * 100,
                i % 500 == 3,
                i % 500 == 7,
                3.0,
            )
        })
        .collect();
    // Release 2: 4 000 requests; payments calls fail 8 %, the database's 0.2 % as before
    // but four times slower.
    let now = now_ms();
    let after: Vec<_> = (0..4_000u64)
        .flat_map(|i| {
            request(
                10_000 + i,
                now,
                i % 25 == 0 || i % 25 == 13,
                i % 500 == 7,
                12.0,
            )
        })
        .collect();
    cut_over(&collector, deploy_ms, before, after).await?;

    let (body, broken) = health_naming(&collector, "dependency_regression").await?;
    let evidence = body["evidence"].as_array().cloned().unwrap_or_default();
    ensure!(broken.len() == 1, "one dependency named: {broken:#?}");
    let summary = broken[0]["summary"].as_str().unwrap_or_default();
    ensure!(
        summary.starts_with("calls to payments-api: errors 8.000% vs 0.200% in the baseline"),
        "{summary}"
    );
    ensure!(broken[0]["dependency"] == "payments-api", "{:#}", broken[0]);
    ensure!(!summary.contains("postgresql"), "{summary}");
    // The database's calls got slower, the payments calls did not.
    let slower: Vec<&Value> = evidence
        .iter()
        .filter(|e| e["kind"] == "dependency_latency_regression")
        .collect();
    ensure!(
        slower.len() == 1 && slower[0]["dependency"] == "postgresql/orders",
        "{slower:#?}"
    );
    ensure!(
        body["verdict"] == "unhealthy" || body["verdict"] == "degraded",
        "{:#}",
        body["verdict"]
    );
    // The analysis lists both, with exact counts, the database not a regression.
    let figures = body["analysis"]["dependencies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let row = |name: &str| figures.iter().find(|d| d["name"] == name).cloned();
    let payments =
        row("payments-api").ok_or_else(|| anyhow::anyhow!("no payments row: {figures:#?}"))?;
    let database =
        row("postgresql/orders").ok_or_else(|| anyhow::anyhow!("no database row: {figures:#?}"))?;
    ensure!(
        payments["calls"] == 4_000 && payments["errors"] == 320,
        "{payments:#}"
    );
    ensure!(
        payments["baseline_calls"] == 3_000 && payments["baseline_errors"] == 6,
        "{payments:#}"
    );
    ensure!(payments["regression"] == true, "{payments:#}");
    ensure!(
        database["calls"] == 4_000 && database["errors"] == 8,
        "{database:#}"
    );
    ensure!(database["regression"] == false, "{database:#}");
    ensure!(database["latency_regression"] == true, "{database:#}");
    ensure!(payments["latency_regression"] == false, "{payments:#}");

    // The release page shows the table, the failing dependency marked.
    let rows = [("payments-api", true), ("postgresql/orders", false)].map(|(name, regression)| {
        format!("data-dependency=\"{name}\" data-regression=\"{regression}\"")
    });
    page_shows(&collector, &rows).await
}

/// Request `n`, served at `at`, that evaluated `new-checkout` = `variant`.
fn flagged_request(n: u64, at: i64, variant: &str, failed: bool) -> Span {
    use bellwether_proto::otlp::trace::span::Event;
    use bellwether_testkit::otlp::kv;
    let mut span = server_span(n, at, 20.0, failed);
    span.events = vec![Event {
        name: "feature_flag.evaluation".to_owned(),
        attributes: vec![
            kv("feature_flag.key", "new-checkout"),
            kv("feature_flag.result.variant", variant),
        ],
        ..Event::default()
    }];
    span
}

#[tokio::test]
async fn the_verdict_names_the_flag_variant_that_fails() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    let deploy_ms = bucket_aligned_now_ms();
    let before: Vec<_> = (0..3_000u64)
        .map(|i| server_span(i, deploy_ms - 300_000 + i as i64 * 100, 20.0, i % 300 == 0))
        .collect();
    // Half the requests get `on`, which fails 9 %; `off` fails 0.3 %, as the baseline did.
    let now = now_ms();
    let after: Vec<_> = (0..6_000u64)
        .map(|i| {
            let on = i % 2 == 0;
            let failed = if on {
                (i / 2) % 100 < 9
            } else {
                (i / 2) % 1_000 < 3
            };
            flagged_request(10_000 + i, now, if on { "on" } else { "off" }, failed)
        })
        .collect();
    cut_over(&collector, deploy_ms, before, after).await?;

    let (body, named) = health_naming(&collector, "flag_variant_regression").await?;
    ensure!(named.len() == 1, "one variant named: {named:#?}");
    ensure!(
        named[0]["flag"] == "new-checkout" && named[0]["variant"] == "on",
        "{:#}",
        named[0]
    );
    let summary = named[0]["summary"].as_str().unwrap_or_default();
    ensure!(
        summary.starts_with("errors concentrated where `new-checkout` = `on`: 9.000% vs 0.300%"),
        "{summary}"
    );
    let figures = body["analysis"]["flags"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let off = figures
        .iter()
        .find(|f| f["variant"] == "off")
        .cloned()
        .unwrap_or_default();
    ensure!(
        off["requests"] == 3_000 && off["errors"] == 9 && off["regression"] == false,
        "{figures:#?}"
    );

    let rows = [("on", true), ("off", false)].map(|(variant, regression)| {
        format!("data-flag=\"new-checkout\" data-variant=\"{variant}\" data-regression=\"{regression}\"")
    });
    page_shows(&collector, &rows).await
}

//! The HTTP API and the gRPC ReleaseService over loopback, with a real sled store.

mod common;

use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::v1;
use bellwether_proto::v1::release_service_client::ReleaseServiceClient;
use common::*;
use serde_json::json;

#[tokio::test]
async fn healthz_and_unknown_routes_answer_json() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let response = get(server.http, "/healthz").await?;
    assert_eq!(
        (response.status, response.json()),
        (200, json!({"status": "ok"}))
    );
    let response = get(server.http, "/readyz").await?;
    assert_eq!(
        (response.status, response.json()),
        (200, json!({"status": "ready"}))
    );
    let response = get(server.http, "/api/v1/cluster").await?;
    assert_eq!(
        response.status, 404,
        "a single collector is no cluster node"
    );
    assert!(response.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("--cluster")));
    let response = get(server.http, "/api/v1/nope").await?;
    assert_eq!(response.status, 404);
    assert!(response.json()["error"].is_string());
    server.stop().await
}

#[tokio::test]
async fn deployment_bodies_are_validated() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let path = "/api/v1/deployments";

    let response = post_json(
        server.http,
        path,
        &json!({
            "service": "api", "environment": "prod", "version": "1", "colour": "red"
        }),
    )
    .await?;
    assert_eq!(response.status, 400);
    let message = response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("unknown field") && message.contains("colour"),
        "{message}"
    );

    let response = post_json(
        server.http,
        path,
        &json!({
            "service": "api", "environment": "prod", "version": 1
        }),
    )
    .await?;
    assert_eq!(response.status, 400);
    assert!(response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("invalid type"));

    let response = post_json(
        server.http,
        path,
        &json!({"service": "api", "environment": "prod"}),
    )
    .await?;
    assert_eq!(response.status, 400);
    assert!(response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("version"));

    let response = post_json(
        server.http,
        path,
        &json!({"service": "", "environment": "prod", "version": "1"}),
    )
    .await?;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"], "service must not be empty");

    let long = "x".repeat(257);
    let response = post_json(
        server.http,
        path,
        &json!({"service": "a", "environment": long, "version": "1"}),
    )
    .await?;
    assert_eq!(response.status, 400);

    let response = request(
        "POST",
        server.http,
        path,
        &[("content-type", "application/json")],
        b"{not json".to_vec(),
    )
    .await?;
    assert_eq!(response.status, 400);
    assert!(response.json()["error"].is_string());

    let releases = get(server.http, "/api/v1/releases").await?.json();
    assert_eq!(releases["releases"], json!([]));
    server.stop().await
}

#[tokio::test]
async fn recorded_deployments_appear_in_history_newest_first() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let path = "/api/v1/deployments";
    let response = post_json(
        server.http,
        path,
        &json!({
            "service": "checkout", "environment": "production", "version": "1.0",
            "started_at_unix_ms": 1_700_000_000_000_i64, "notes": "first"
        }),
    )
    .await?;
    assert_eq!(response.status, 201, "{}", response.text());
    let first = response.json();
    assert_eq!(first["source"], "recorded");
    assert_eq!(first["started_at"], "2023-11-14T22:13:20.000Z");
    assert_eq!(first["commit"], serde_json::Value::Null);

    let response = post_json(server.http, path, &json!({
        "service": "checkout", "environment": "production", "version": "1.1",
        "commit": "abc123", "deploy_id": "d-9", "pipeline_url": "https://ci/9", "team": "payments"
    })).await?;
    assert_eq!(response.status, 201);
    post_json(
        server.http,
        path,
        &json!({"service": "other", "environment": "production", "version": "9"}),
    )
    .await?;

    let list = get(
        server.http,
        "/api/v1/releases?service=checkout&environment=production",
    )
    .await?
    .json();
    let versions: Vec<&str> = list["releases"]
        .as_array()
        .map(|r| r.iter().filter_map(|e| e["version"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(versions, ["1.1", "1.0"]);
    let newest = &list["releases"][0];
    assert_eq!(newest["commit"], "abc123");
    assert_eq!(newest["deploy_id"], "d-9");
    assert_eq!(newest["pipeline_url"], "https://ci/9");
    assert_eq!(newest["team"], "payments");
    assert_eq!(
        newest["totals"],
        json!({"log_records": 0, "error_logs": 0, "spans": 0, "error_spans": 0,
               "server_spans": 0, "errors": 0, "metric_requests": 0, "metric_errors": 0})
    );

    // Re-recording updates metadata and stays recorded.
    let response = post_json(
        server.http,
        path,
        &json!({
            "service": "checkout", "environment": "production", "version": "1.0", "commit": "fff"
        }),
    )
    .await?;
    assert_eq!(response.status, 201);
    let again = response.json();
    assert_eq!(
        (again["commit"].clone(), again["notes"].clone()),
        (json!("fff"), json!("first"))
    );
    assert_eq!(again["started_at_unix_ms"], 1_700_000_000_000_i64);
    assert_eq!(
        get(server.http, "/api/v1/releases").await?.json()["releases"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    server.stop().await
}

#[tokio::test]
async fn detected_deployments_carry_resource_metadata() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let mut client = LogsServiceClient::connect(server.grpc_url()).await?;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let res = resource(
        "billing",
        "3.2.1",
        "prod",
        &[
            ("vcs.ref.head.revision", "0123abcd"),
            ("deployment.id", "pipeline-77"),
            ("bellwether.team", "money"),
        ],
    );
    client.export(logs(res, 1, 0, now_ns())).await?;
    let entry = release_entry(server.http, "billing", "3.2.1").await?;
    assert_eq!(entry["source"], "detected");
    assert_eq!(entry["commit"], "0123abcd");
    assert_eq!(entry["deploy_id"], "pipeline-77");
    assert_eq!(entry["team"], "money");
    let started = entry["started_at_unix_ms"].as_i64().unwrap_or(0);
    assert!(started >= before, "started {started} before {before}");

    // A recorded deployment without a commit gets it from telemetry, staying recorded.
    post_json(
        server.http,
        "/api/v1/deployments",
        &json!({"service": "billing", "environment": "prod", "version": "3.3"}),
    )
    .await?;
    let res = resource(
        "billing",
        "3.3",
        "prod",
        &[("vcs.ref.head.revision", "feed")],
    );
    client.export(logs(res, 1, 0, now_ns())).await?;
    let entry = release_entry(server.http, "billing", "3.3").await?;
    assert_eq!(
        (entry["source"].clone(), entry["commit"].clone()),
        (json!("recorded"), json!("feed"))
    );
    server.stop().await
}

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_everything() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let mut client = LogsServiceClient::connect(server.grpc_url()).await?;
    client
        .export(logs(resource("api", "1", "prod", &[]), 5, 2, now_ns()))
        .await?;
    post_json(
        server.http,
        "/api/v1/deployments",
        &json!({"service": "api", "environment": "prod", "version": "2", "notes": "kept"}),
    )
    .await?;
    drop(client);
    server.stop().await?;

    let server = TestServer::start(dir.path()).await?;
    let entry = release_entry(server.http, "api", "1").await?;
    assert_eq!(entry["totals"]["log_records"], 5);
    assert_eq!(entry["totals"]["error_logs"], 2);
    assert_eq!(entry["source"], "detected");
    let recorded = release_entry(server.http, "api", "2").await?;
    assert_eq!(recorded["notes"], "kept");
    server.stop().await
}

#[tokio::test]
async fn stats_resolve_the_environment_or_explain() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let response = get(server.http, "/api/v1/releases/api/1/stats").await?;
    assert_eq!(response.status, 404);
    assert!(response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("not found"));

    for environment in ["prod", "staging"] {
        post_json(
            server.http,
            "/api/v1/deployments",
            &json!({"service": "api", "environment": environment, "version": "1"}),
        )
        .await?;
    }
    let response = get(server.http, "/api/v1/releases/api/1/stats").await?;
    assert_eq!(response.status, 400);
    let message = response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("prod") && message.contains("staging"),
        "{message}"
    );

    let response = get(
        server.http,
        "/api/v1/releases/api/1/stats?environment=staging",
    )
    .await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["release"]["environment"], "staging");
    assert_eq!(response.json()["buckets"], json!([]));
    let response = get(server.http, "/api/v1/releases/api/1/stats?environment=qa").await?;
    assert_eq!(response.status, 404);
    server.stop().await
}

#[tokio::test]
async fn health_is_served_over_http_and_grpc() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let mut logs_client = LogsServiceClient::connect(server.grpc_url()).await?;
    logs_client
        .export(logs(resource("api", "1", "prod", &[]), 20, 1, now_ns()))
        .await?;

    let response = get(
        server.http,
        "/api/v1/releases/api/1/health?environment=prod",
    )
    .await?;
    assert_eq!(response.status, 200, "{}", response.text());
    let health = response.json();
    assert_eq!(
        health["release"],
        json!({"service": "api", "environment": "prod", "version": "1"})
    );
    let verdict = health["verdict"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["pending", "healthy", "degraded", "unhealthy"].contains(&verdict.as_str()),
        "{health}"
    );
    assert!(
        health["evidence"].as_array().is_some_and(|e| e
            .iter()
            .all(|i| i["kind"].is_string() && i["summary"].is_string())),
        "{health}"
    );
    assert_eq!(health["totals"]["log_records"], 20);
    assert!(health["evaluated_at_unix_ms"].as_i64().unwrap_or(0) > 0);
    assert_eq!(
        get(server.http, "/api/v1/releases/api/9/health")
            .await?
            .status,
        404
    );

    let mut releases = ReleaseServiceClient::connect(server.grpc_url()).await?;
    let key = v1::ReleaseKey {
        service: "api".into(),
        environment: String::new(),
        version: "1".into(),
    };
    let health = releases
        .get_release_health(v1::GetReleaseHealthRequest {
            release: Some(key.clone()),
        })
        .await?
        .into_inner();
    assert_eq!(health.totals.map(|t| t.log_records), Some(20));
    assert_ne!(health.verdict, v1::Verdict::Unspecified as i32);

    let mut stream = releases
        .watch_release_health(v1::WatchReleaseHealthRequest { release: Some(key) })
        .await?
        .into_inner();
    let first = stream
        .message()
        .await?
        .ok_or("watch ended without a first message")?;
    assert_eq!(
        first.release.map(|r| r.environment),
        Some("prod".to_owned())
    );

    let missing = releases
        .get_release_health(v1::GetReleaseHealthRequest {
            release: Some(v1::ReleaseKey {
                service: "nope".into(),
                environment: String::new(),
                version: "1".into(),
            }),
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(missing, Some(tonic::Code::NotFound));
    // An open watch must not hold up shutdown, and it ends when the server stops.
    tokio::time::timeout(std::time::Duration::from_secs(20), server.stop()).await??;
    let after = tokio::time::timeout(std::time::Duration::from_secs(20), stream.message()).await?;
    assert!(
        !matches!(after, Ok(Some(_))),
        "watch kept streaming after shutdown"
    );
    Ok(())
}

#[tokio::test]
async fn grpc_release_service_records_lists_and_reports_stats() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let mut client = ReleaseServiceClient::connect(server.grpc_url()).await?;
    let key = v1::ReleaseKey {
        service: "search".into(),
        environment: "prod".into(),
        version: "5".into(),
    };
    let recorded = client
        .record_deployment(v1::RecordDeploymentRequest {
            deployment: Some(v1::Deployment {
                release: Some(key.clone()),
                commit: "c0ffee".into(),
                ..v1::Deployment::default()
            }),
        })
        .await?
        .into_inner()
        .deployment
        .ok_or("no deployment returned")?;
    assert_eq!(recorded.source, v1::DeploymentSource::Recorded as i32);
    assert!(recorded.started_at_unix_ms > 0);

    let invalid = client
        .record_deployment(v1::RecordDeploymentRequest {
            deployment: Some(v1::Deployment {
                release: None,
                ..v1::Deployment::default()
            }),
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(invalid, Some(tonic::Code::InvalidArgument));

    let mut logs_client = LogsServiceClient::connect(server.grpc_url()).await?;
    logs_client
        .export(logs(resource("search", "5", "prod", &[]), 3, 1, now_ns()))
        .await?;

    let list = client
        .list_releases(v1::ListReleasesRequest {
            service: "search".into(),
            environment: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(list.releases.len(), 1);
    let summary = &list.releases[0];
    assert_eq!(
        summary.deployment.as_ref().map(|d| d.commit.as_str()),
        Some("c0ffee")
    );
    assert_eq!(summary.totals.map(|t| t.error_logs), Some(1));

    let stats = client
        .get_release_stats(v1::GetReleaseStatsRequest { release: Some(key) })
        .await?
        .into_inner();
    assert_eq!(stats.buckets.len(), 1);
    assert_eq!(stats.buckets[0].stats.map(|s| s.log_records), Some(3));
    server.stop().await
}

#[tokio::test]
async fn watch_sends_the_health_again_when_evidence_changes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let mut logs_client = LogsServiceClient::connect(server.grpc_url()).await?;
    let res = resource("web", "4", "prod", &[]);
    logs_client
        .export(logs(res.clone(), 10, 1, now_ns()))
        .await?;

    let mut releases = ReleaseServiceClient::connect(server.grpc_url()).await?;
    let key = v1::ReleaseKey {
        service: "web".into(),
        environment: "prod".into(),
        version: "4".into(),
    };
    let mut stream = releases
        .watch_release_health(v1::WatchReleaseHealthRequest { release: Some(key) })
        .await?
        .into_inner();
    let first = stream.message().await?.ok_or("no first message")?;
    assert_eq!(first.totals.map(|t| t.log_records), Some(10));

    // More traffic changes the evidence (error rate, exposure still needed).
    logs_client.export(logs(res, 30, 10, now_ns())).await?;
    let next = tokio::time::timeout(std::time::Duration::from_secs(20), stream.message())
        .await??
        .ok_or("watch ended")?;
    assert_eq!(next.totals.map(|t| t.log_records), Some(40));
    assert_ne!(next.evidence, first.evidence);
    drop(stream);
    server.stop().await
}

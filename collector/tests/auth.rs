//! Bearer tokens on every listener of the real server over loopback: each scope's token
//! works where it should, a missing or wrong one gets 401/UNAUTHENTICATED and a token of
//! another scope gets 403/PERMISSION_DENIED.

mod common;

use std::path::Path;

use bellwether_collector::auth::{Scope, Token, Tokens};
use bellwether_collector::config::Settings;
use bellwether_collector::server::{self, Listeners};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::v1;
use bellwether_proto::v1::release_service_client::ReleaseServiceClient;
use common::*;
use prost::Message;
use tokio::sync::oneshot;

const INGEST: &str = "ingest-token-0123456789";
const DEPLOY: &str = "deploy-token-0123456789";
const READ: &str = "read-token-0123456789ab";
const ADMIN: &str = "admin-token-0123456789a";

struct Secured {
    grpc: std::net::SocketAddr,
    otlp_http: std::net::SocketAddr,
    http: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), server::ServerError>>,
}

async fn start(dir: &Path) -> Result<Secured, Box<dyn std::error::Error + Send + Sync>> {
    let mut settings = Settings::ephemeral(dir);
    settings.auth = Tokens::new(vec![
        Token::from_secret("agents", &[Scope::Ingest], INGEST),
        Token::from_secret("ci", &[Scope::Deploy], DEPLOY),
        Token::from_secret("viewers", &[Scope::Read], READ),
        Token::from_secret("ops", &[Scope::Admin], ADMIN),
    ]);
    let listeners = Listeners::bind(&settings).await?;
    let (grpc, otlp_http, http) = (
        listeners.otlp_grpc.local_addr()?,
        listeners.otlp_http.local_addr()?,
        listeners.http.local_addr()?,
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(settings, listeners, async {
        let _ = stopped.await;
    }));
    Ok(Secured {
        grpc,
        otlp_http,
        http,
        stop,
        task,
    })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn call(
    method: &str,
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
    let auth = token.map(bearer);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    request(method, addr, path, &headers, body.as_bytes().to_vec()).await
}

const DEPLOYMENT: &str = r#"{"service":"pay","environment":"prod","version":"v1"}"#;

#[tokio::test]
async fn http_api_scopes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let s = start(dir.path()).await?;

    // Probes stay open.
    assert_eq!(get(s.http, "/healthz").await?.status, 200);

    // Recording a deployment: deploy (or admin) only.
    for (token, status) in [
        (Some(DEPLOY), 201),
        (Some(ADMIN), 201),
        (Some(READ), 403),
        (Some(INGEST), 403),
        (Some("wrong-token-0123456789"), 401),
        (None, 401),
    ] {
        let r = call("POST", s.http, "/api/v1/deployments", token, DEPLOYMENT).await?;
        assert_eq!(r.status, status, "{token:?}: {}", r.text());
    }
    let missing = call("POST", s.http, "/api/v1/deployments", None, DEPLOYMENT).await?;
    assert_eq!(missing.json()["error"], "missing bearer token");
    let forbidden = call(
        "POST",
        s.http,
        "/api/v1/deployments",
        Some(READ),
        DEPLOYMENT,
    )
    .await?;
    assert!(forbidden.text().contains("viewers"), "{}", forbidden.text());
    assert!(!forbidden.text().contains(READ));

    // Release health and history: deploy or read.
    for (token, status) in [
        (Some(DEPLOY), 200),
        (Some(READ), 200),
        (Some(ADMIN), 200),
        (Some(INGEST), 403),
        (None, 401),
    ] {
        let r = call("GET", s.http, "/api/v1/releases", token, "").await?;
        assert_eq!(r.status, status, "{token:?}: {}", r.text());
        let r = call("GET", s.http, "/api/v1/releases/pay/v1/stats", token, "").await?;
        assert_eq!(r.status, status, "{token:?}: {}", r.text());
    }

    // UI, /metrics and alerts: read.
    for path in ["/", "/metrics", "/api/v1/alerts"] {
        for (token, status) in [
            (Some(READ), 200),
            (Some(ADMIN), 200),
            (Some(DEPLOY), 403),
            (None, 401),
        ] {
            let r = call("GET", s.http, path, token, "").await?;
            assert_eq!(r.status, status, "{path} {token:?}: {}", r.text());
        }
    }

    // Writes to alerts and silences: admin. An unknown alert is a 404 past the check.
    for (token, status) in [
        (Some(ADMIN), 404),
        (Some(READ), 403),
        (Some(DEPLOY), 403),
        (None, 401),
    ] {
        let r = call("POST", s.http, "/api/v1/alerts/nope/ack", token, "").await?;
        assert_eq!(r.status, status, "{token:?}: {}", r.text());
    }

    // The 401 says how to authenticate.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let response = client
        .request(
            http::Request::get(format!("http://{}/", s.http))
                .body(http_body_util::Full::new(bytes::Bytes::new()))?,
        )
        .await?;
    let challenges: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer")),
        "{challenges:?}"
    );
    // A browser's login prompt (Basic, token as password) opens the UI.
    let r = request(
        "GET",
        s.http,
        "/",
        &[(
            "authorization",
            "Basic dmlld2VyOnJlYWQtdG9rZW4tMDEyMzQ1Njc4OWFi",
        )],
        Vec::new(),
    )
    .await?;
    assert_eq!(r.status, 200);

    let _ = s.stop.send(());
    s.task.await??;
    Ok(())
}

#[tokio::test]
async fn otlp_http_needs_ingest() -> TestResult {
    let dir = tempfile::tempdir()?;
    let s = start(dir.path()).await?;
    let body = logs(resource("pay", "v1", "prod", &[]), 2, 0, now_ns()).encode_to_vec();
    for (token, status) in [
        (Some(INGEST), 200),
        (Some(ADMIN), 200),
        (Some(DEPLOY), 403),
        (Some(READ), 403),
        (Some("wrong-token-0123456789"), 401),
        (None, 401),
    ] {
        let auth = token.map(bearer);
        let mut headers = vec![("content-type", "application/x-protobuf")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        let r = request("POST", s.otlp_http, "/v1/logs", &headers, body.clone()).await?;
        assert_eq!(r.status, status, "{token:?}: {}", r.text());
    }
    // Two accepted requests of two records each were counted, nothing else.
    let r = call(
        "GET",
        s.http,
        "/api/v1/releases?service=pay",
        Some(READ),
        "",
    )
    .await?;
    assert_eq!(
        r.json()["releases"][0]["totals"]["log_records"],
        4,
        "{}",
        r.text()
    );
    let _ = s.stop.send(());
    s.task.await??;
    Ok(())
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = token.and_then(|t| bearer(t).parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[tokio::test]
async fn grpc_scopes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let s = start(dir.path()).await?;
    let url = format!("http://{}", s.grpc);
    let mut logs_client = LogsServiceClient::connect(url.clone()).await?;
    let mut releases = ReleaseServiceClient::connect(url).await?;
    let export = || logs(resource("pay", "v2", "prod", &[]), 1, 0, now_ns());

    let code = |r: Result<(), tonic::Status>| r.err().map(|s| s.code());
    for (token, expected) in [
        (Some(INGEST), None),
        (Some(ADMIN), None),
        (Some(DEPLOY), Some(tonic::Code::PermissionDenied)),
        (
            Some("wrong-token-0123456789"),
            Some(tonic::Code::Unauthenticated),
        ),
        (None, Some(tonic::Code::Unauthenticated)),
    ] {
        let result = logs_client.export(with_token(export(), token)).await;
        assert_eq!(code(result.map(drop)), expected, "export {token:?}");
    }

    let deployment = || v1::RecordDeploymentRequest {
        deployment: Some(v1::Deployment {
            release: Some(v1::ReleaseKey {
                service: "pay".into(),
                environment: "prod".into(),
                version: "v3".into(),
            }),
            ..v1::Deployment::default()
        }),
    };
    for (token, expected) in [
        (Some(DEPLOY), None),
        (Some(READ), Some(tonic::Code::PermissionDenied)),
        (Some(INGEST), Some(tonic::Code::PermissionDenied)),
        (None, Some(tonic::Code::Unauthenticated)),
    ] {
        let result = releases
            .record_deployment(with_token(deployment(), token))
            .await;
        assert_eq!(code(result.map(drop)), expected, "record {token:?}");
    }

    let list = || v1::ListReleasesRequest {
        service: "pay".into(),
        environment: String::new(),
    };
    for (token, expected) in [
        (Some(READ), None),
        (Some(DEPLOY), None),
        (Some(INGEST), Some(tonic::Code::PermissionDenied)),
        (None, Some(tonic::Code::Unauthenticated)),
    ] {
        let result = releases.list_releases(with_token(list(), token)).await;
        assert_eq!(code(result.map(drop)), expected, "list {token:?}");
    }
    let listed = releases
        .list_releases(with_token(list(), Some(READ)))
        .await?
        .into_inner();
    // v2 from the two accepted exports, v3 recorded once.
    assert_eq!(listed.releases.len(), 2);

    let _ = s.stop.send(());
    s.task.await??;
    Ok(())
}

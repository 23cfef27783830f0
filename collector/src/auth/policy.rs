//! The scopes each route accepts. Anything not listed needs `admin` for writes and `read`
//! for reads, so a route added later is never open by accident.
//!
//! | listener | request | scopes |
//! |---|---|---|
//! | HTTP API | `GET /healthz`, `GET /readyz` | open |
//! | HTTP API | `POST /api/v1/deployments` | deploy |
//! | HTTP API | `GET /api/v1/releases…` (list, stats, health, verdict, verdicts, issues) | deploy or read |
//! | HTTP API | `POST /api/v1/gates/flagger` (asks for a verdict) | deploy or read |
//! | HTTP API | any other `GET`/`HEAD` (UI, `/metrics`, alerts, silences, outbox) | read |
//! | HTTP API | `POST /api/v1/admin/backup` (the whole store) | admin |
//! | HTTP API | any other method (acks, silences) | admin |
//! | OTLP/HTTP | everything | ingest |
//! | gRPC | `LogsService`, `TraceService`, `MetricsService` | ingest |
//! | gRPC | `ReleaseService/RecordDeployment` | deploy |
//! | gRPC | other `ReleaseService` methods | deploy or read |
//! | gRPC | anything else | admin |
//!
//! `admin` satisfies every row. `/metrics` needs `read`: its labels name every active
//! service and release.

use http::Method;

use super::{Need, Scope};

const INGEST: Need = Need::AnyOf(&[Scope::Ingest]);
const DEPLOY: Need = Need::AnyOf(&[Scope::Deploy]);
const DEPLOY_OR_READ: Need = Need::AnyOf(&[Scope::Deploy, Scope::Read]);
const READ: Need = Need::AnyOf(&[Scope::Read]);
const ADMIN: Need = Need::AnyOf(&[Scope::Admin]);

/// The HTTP API listener (API, UI, `/metrics`).
pub fn http_api(method: &Method, path: &str) -> Need {
    let reading = method == Method::GET || method == Method::HEAD;
    match path {
        "/healthz" | "/readyz" if reading => Need::Open,
        "/api/v1/deployments" if method == Method::POST => DEPLOY,
        // Flagger asks for a verdict with a POST; it changes nothing.
        "/api/v1/gates/flagger" if method == Method::POST => DEPLOY_OR_READ,
        "/api/v1/admin/backup" => ADMIN,
        "/api/v1/releases" if reading => DEPLOY_OR_READ,
        _ if reading && path.starts_with("/api/v1/releases/") => DEPLOY_OR_READ,
        _ if reading => READ,
        _ => ADMIN,
    }
}

/// The OTLP/HTTP listener.
pub fn otlp_http(_method: &Method, _path: &str) -> Need {
    INGEST
}

/// The gRPC listener; `path` is `/<package.Service>/<Method>`.
pub fn grpc(path: &str) -> Need {
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .unwrap_or(("", ""));
    match service {
        "opentelemetry.proto.collector.logs.v1.LogsService"
        | "opentelemetry.proto.collector.trace.v1.TraceService"
        | "opentelemetry.proto.collector.metrics.v1.MetricsService" => INGEST,
        "bellwether.v1.ReleaseService" if method == "RecordDeployment" => DEPLOY,
        "bellwether.v1.ReleaseService" => DEPLOY_OR_READ,
        _ => ADMIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_scopes() {
        let get = Method::GET;
        assert_eq!(http_api(&get, "/healthz"), Need::Open);
        assert_eq!(http_api(&get, "/readyz"), Need::Open);
        assert_eq!(http_api(&Method::POST, "/healthz"), ADMIN);
        assert_eq!(http_api(&Method::POST, "/api/v1/deployments"), DEPLOY);
        assert_eq!(http_api(&get, "/api/v1/releases"), DEPLOY_OR_READ);
        assert_eq!(
            http_api(&get, "/api/v1/releases/pay/v1/health"),
            DEPLOY_OR_READ
        );
        assert_eq!(http_api(&get, "/metrics"), READ);
        assert_eq!(http_api(&get, "/"), READ);
        assert_eq!(http_api(&get, "/api/v1/alerts"), READ);
        assert_eq!(http_api(&Method::POST, "/api/v1/alerts/a1/ack"), ADMIN);
        assert_eq!(http_api(&Method::DELETE, "/api/v1/silences/s1"), ADMIN);
        assert_eq!(http_api(&Method::PUT, "/api/v1/new-thing"), ADMIN);
        assert_eq!(http_api(&Method::POST, "/api/v1/admin/backup"), ADMIN);
        assert_eq!(http_api(&get, "/api/v1/admin/backup"), ADMIN);
        assert_eq!(
            grpc("/opentelemetry.proto.collector.logs.v1.LogsService/Export"),
            INGEST
        );
        assert_eq!(
            grpc("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"),
            INGEST
        );
        assert_eq!(
            grpc("/bellwether.v1.ReleaseService/RecordDeployment"),
            DEPLOY
        );
        assert_eq!(
            grpc("/bellwether.v1.ReleaseService/WatchReleaseHealth"),
            DEPLOY_OR_READ
        );
        assert_eq!(grpc("/grpc.reflection.v1.ServerReflection/Info"), ADMIN);
        assert_eq!(grpc("garbage"), ADMIN);
    }
}

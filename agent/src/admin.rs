//! Admin HTTP endpoint: the agent's own health.
//!
//! - `GET /healthz`: 200 while the process serves requests.
//! - `GET /readyz`: 200 while delivery makes progress or nothing is queued; 503 with the
//!   reason when the oldest queued batch waited longer than [`STALL_AFTER`] and nothing
//!   was delivered for as long.
//! - `GET /metrics`: Prometheus text format ([`metrics`]).
//! - `GET /stats`: the counters as JSON.

pub mod metrics;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::stats::{now_unix_ms, Stats, StatsSnapshot};

/// How long queued data may wait with no successful export before the agent reports
/// itself not ready.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

pub fn router(stats: Arc<Stats>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route("/stats", get(stats_handler))
        .with_state(stats)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(stats))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Why the agent is not ready at `now_unix_ms`, if it is not.
pub fn not_ready_reason(stats: &Stats, now_unix_ms: u64) -> Option<String> {
    let oldest = stats.queue_oldest_age(now_unix_ms);
    if oldest <= STALL_AFTER {
        return None;
    }
    let last = stats.last_export_unix_ms.load(Ordering::Relaxed);
    let since_export = (last > 0).then(|| Duration::from_millis(now_unix_ms.saturating_sub(last)));
    if since_export.is_some_and(|d| d <= STALL_AFTER) {
        return None;
    }
    let delivered = match since_export {
        Some(d) => format!("the last successful export was {} s ago", d.as_secs()),
        None => "nothing was delivered since start-up".to_owned(),
    };
    Some(format!(
        "delivery is stalled: the oldest queued batch is {} s old and {delivered}",
        oldest.as_secs()
    ))
}

async fn readyz(State(stats): State<Arc<Stats>>) -> Response {
    match not_ready_reason(&stats, now_unix_ms()) {
        None => Json(json!({"status": "ready"})).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics_handler(State(stats): State<Arc<Stats>>) -> Response {
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&stats, now_unix_ms()),
    )
        .into_response()
}

async fn stats_handler(State(stats): State<Arc<Stats>>) -> Json<StatsSnapshot> {
    Json(stats.snapshot())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get_json(stats: Arc<Stats>, path: &str) -> Value {
        let response = router(stats)
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&body).expect("json")
    }

    #[tokio::test]
    async fn healthz_is_ok() {
        let value = get_json(Arc::new(Stats::default()), "/healthz").await;
        assert_eq!(value, json!({"status": "ok"}));
    }

    #[test]
    fn readiness_follows_delivery_progress() {
        let stats = Stats::default();
        let now = 1_000_000;
        assert_eq!(not_ready_reason(&stats, now), None, "empty queue is ready");
        stats
            .queue_oldest_unix_ms
            .store(now - 40_000, Ordering::Relaxed);
        let reason = not_ready_reason(&stats, now).expect("stalled since start-up");
        assert!(reason.contains("40 s old"), "{reason}");
        stats
            .last_export_unix_ms
            .store(now - 5_000, Ordering::Relaxed);
        assert_eq!(not_ready_reason(&stats, now), None, "exports progress");
        stats
            .last_export_unix_ms
            .store(now - 31_000, Ordering::Relaxed);
        assert!(not_ready_reason(&stats, now).is_some_and(|r| r.contains("31 s ago")));
        stats
            .queue_oldest_unix_ms
            .store(now - 10_000, Ordering::Relaxed);
        assert_eq!(not_ready_reason(&stats, now), None, "young queue is ready");
    }

    #[tokio::test]
    async fn readyz_and_metrics_respond() {
        let stats = Arc::new(Stats::default());
        stats
            .queue_oldest_unix_ms
            .store(now_unix_ms() - 60_000, Ordering::Relaxed);
        let response = router(stats.clone())
            .oneshot(
                Request::get("/readyz")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = router(stats)
            .oneshot(
                Request::get("/metrics")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], metrics::CONTENT_TYPE);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("bellwether_agent_queue_oldest_age_seconds 6"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn stats_reports_counters() {
        let stats = Arc::new(Stats::default());
        stats.received_stdin.add(3, 0);
        stats.exported.add(2, 5);
        Stats::incr(&stats.retries);
        let value = get_json(stats, "/stats").await;
        assert_eq!(value["received"]["stdin"]["log_records"], 3);
        assert_eq!(value["exported"]["spans"], 5);
        assert_eq!(value["retries"], 1);
        assert_eq!(value["dropped"]["non_retryable"], 0);
    }
}

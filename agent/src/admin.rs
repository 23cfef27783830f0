//! Admin HTTP endpoint: `GET /healthz` and `GET /stats`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::stats::{Stats, StatsSnapshot};

pub fn router(stats: Arc<Stats>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
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

async fn stats_handler(State(stats): State<Arc<Stats>>) -> Json<StatsSnapshot> {
    Json(stats.snapshot())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{Request, StatusCode};
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

//! The demo's webhook receiver: an HTTP server on loopback that takes Bellwether's
//! `bellwether.webhook.v1` notifications for each team and hands them to the narrator.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One notification as the receiver saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The team in the URL path (`/hooks/{team}`).
    pub team: String,
    /// `alert` or `deploy`.
    pub kind: String,
    /// `firing`, `acknowledged`, `resolved` (alerts).
    pub status: String,
    pub summary: String,
    pub service: String,
    pub version: String,
}

impl Received {
    fn from_json(team: String, body: &serde_json::Value) -> Self {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        Self {
            team,
            kind: text(&body["type"]),
            status: text(&body["status"]),
            summary: text(&body["summary"]),
            service: text(&body["service"]),
            version: text(&body["release"]["version"]),
        }
    }
}

/// Binds a receiver on `127.0.0.1:0`; notifications arrive on the returned channel.
pub async fn start(
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, mpsc::UnboundedReceiver<Received>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/hooks/{team}", post(receive))
        .with_state(tx);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %error, "demo webhook receiver failed");
        }
    });
    Ok((addr, rx))
}

async fn receive(
    State(tx): State<mpsc::UnboundedSender<Received>>,
    Path(team): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    // A closed channel means the story is over; the notification is still accepted.
    let _ = tx.send(Received::from_json(team, &body));
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_the_story_tells() {
        let body = serde_json::json!({
            "schema": "bellwether.webhook.v1", "type": "alert", "status": "firing",
            "summary": "[FIRING] checkout 1.6.0 in prod: 2 alerts", "service": "checkout",
            "release": {"version": "1.6.0"}
        });
        let r = Received::from_json("payments".into(), &body);
        assert_eq!(r.team, "payments");
        assert_eq!(r.status, "firing");
        assert_eq!(r.version, "1.6.0");
        assert!(r.summary.contains("2 alerts"));
    }
}

//! Shared harness: a collector served by `server::run` on loopback ports with a real sled
//! data directory, HTTP requests to it by address, and the OTLP builders of
//! [`bellwether_testkit::otlp`].
// Each test binary uses a part of this module, so the rest is unused there.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::path::Path;

use bellwether_collector::config::Settings;
use bellwether_collector::server::{self, Listeners, ServerError};
use bellwether_testkit::http;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use bellwether_testkit::clock::now_ns;
pub use bellwether_testkit::http::HttpResponse;
pub use bellwether_testkit::otlp::{kv, logs, resource, spans};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub struct TestServer {
    pub grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl TestServer {
    pub async fn start(data_dir: &Path) -> Result<Self, ServerError> {
        let settings = Settings::ephemeral(data_dir);
        let listeners = Listeners::bind(&settings).await?;
        let addr = |l: &tokio::net::TcpListener| {
            l.local_addr().map_err(|e| ServerError::Serve {
                kind: "test",
                message: e.to_string(),
            })
        };
        let (grpc, otlp_http, http) = (
            addr(&listeners.otlp_grpc)?,
            addr(&listeners.otlp_http)?,
            addr(&listeners.http)?,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(settings, listeners, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            grpc,
            otlp_http,
            http,
            stop: Some(stop),
            task,
        })
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Stops the server and waits until the store is flushed and closed.
    pub async fn stop(mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }
}

/// `method http://addr/path` with `headers` and `body`.
pub async fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
    let url = format!("http://{addr}{path}");
    Ok(http::request(method, &url, headers, body).await?)
}

/// `GET http://addr/path`.
pub async fn get(
    addr: SocketAddr,
    path: &str,
) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
    Ok(http::get(&format!("http://{addr}{path}")).await?)
}

/// `POST http://addr/path` with a JSON body.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
    Ok(http::post_json(&format!("http://{addr}{path}"), body).await?)
}

/// The release entry of `service`/`version` in `GET /api/v1/releases`.
pub async fn release_entry(
    http: SocketAddr,
    service: &str,
    version: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
    let response = get(http, &format!("/api/v1/releases?service={service}")).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    let json = response.json();
    let entry = json["releases"]
        .as_array()
        .and_then(|releases| releases.iter().find(|r| r["version"] == version))
        .cloned();
    entry.ok_or_else(|| format!("release {service} {version} not listed: {json}").into())
}

//! A notification receiver: a real HTTP server on a free loopback port that records every
//! request (method, path, headers, raw body) and answers 200, or 500 while it has been
//! told to fail, optionally after a delay. It stands in for a webhook, Slack or
//! PagerDuty endpoint.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use tokio::task::JoinHandle;

use crate::eventually;

/// The largest body the receiver reads.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status the receiver answered.
    pub status: u16,
}

impl Recorded {
    /// The first value of header `name`, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    /// Requests still to be answered 500.
    failures_left: AtomicUsize,
    /// How long to wait before answering.
    delay_ms: AtomicU64,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1:0` answering 200 at once.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a receiver")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next `n` requests are answered 500 (replaces any earlier count).
    pub fn fail_next(&self, n: usize) {
        self.shared.failures_left.store(n, Ordering::SeqCst);
    }

    /// Every later request waits `delay` before it is recorded and answered.
    pub fn delay_answers(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Requests answered 2xx, oldest first.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::succeeded)
            .collect()
    }

    /// Waits until `count` requests were accepted; returns them.
    pub async fn wait_accepted(&self, count: usize, timeout: Duration) -> Result<Vec<Recorded>> {
        eventually(timeout, || async {
            let accepted = self.accepted();
            Ok((accepted.len() >= count).then_some(accepted))
        })
        .await
        .with_context(|| {
            format!(
                "receiver {} did not accept {count} requests in {timeout:?}; saw {:?}",
                self.addr,
                self.requests()
                    .iter()
                    .map(|r| (r.path.clone(), r.status))
                    .collect::<Vec<_>>()
            )
        })
    }

    /// Waits until at least `count` requests arrived, whatever the answer.
    pub async fn wait_requests(&self, count: usize, timeout: Duration) -> Result<Vec<Recorded>> {
        eventually(timeout, || async {
            let requests = self.requests();
            Ok((requests.len() >= count).then_some(requests))
        })
        .await
        .with_context(|| format!("receiver {} got fewer than {count} requests", self.addr))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn record(State(shared): State<Arc<Shared>>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fail = shared
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    lock(&shared.requests).push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
        status: status.as_u16(),
    });
    status
}

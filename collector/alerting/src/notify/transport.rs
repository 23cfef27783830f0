//! One HTTP POST to a receiver and the classification of its outcome: delivered,
//! retryable (with the receiver's `Retry-After` when it gave one) or rejected.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::notify::Outgoing;

/// Longest part of an error response kept in the outbox's `last_error`.
const ERROR_BODY_BYTES: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Worth trying again: 408, 425, 429, 5xx, connection errors, timeouts.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Will not succeed by retrying (other 4xx, unusable URL).
    Reject {
        error: String,
    },
}

/// HTTP/1.1 client shared by all receivers: `https://` is verified against the Mozilla
/// root certificates compiled in (no system store needed), `http://` is sent as is.
#[derive(Clone)]
pub struct HttpTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpTransport {
    pub fn new() -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends `outgoing` within `timeout`. Errors never contain the URL (it may be secret).
    pub async fn send(&self, outgoing: Outgoing, timeout: Duration) -> Delivery {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(outgoing.url.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("bellwether/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in &outgoing.headers {
            request = request.header(*name, value.as_str());
        }
        let request = match request.body(Full::new(Bytes::from(outgoing.body))) {
            Ok(request) => request,
            Err(_) => {
                return Delivery::Reject {
                    error: "invalid receiver URL or header".to_owned(),
                }
            }
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    message.push_str(": ");
                    message.push_str(&cause.to_string());
                    source = cause.source();
                }
                message
            })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((status, retry_after, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Delivery::Retry {
                error: format!("no answer within {}ms", timeout.as_millis()),
                retry_after: None,
            },
            Ok(Err(error)) => Delivery::Retry {
                error,
                retry_after: None,
            },
            Ok(Ok((status, retry_after, body))) => classify(status, retry_after, &body),
        }
    }
}

fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Delivery {
    if status.is_success() {
        return Delivery::Delivered;
    }
    let text = String::from_utf8_lossy(body);
    let error = format!(
        "HTTP {}: {}",
        status.as_u16(),
        super::truncate(text.trim(), ERROR_BODY_BYTES)
    );
    let retryable = status.is_server_error()
        || matches!(status.as_u16(), 408 | 425 | 429)
        || retry_after.is_some();
    if retryable {
        Delivery::Retry { error, retry_after }
    } else {
        Delivery::Reject { error }
    }
}

/// `Retry-After` as delay-seconds. (An HTTP-date falls back to the backoff.)
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server that answers every connection with a plain-text HTTP 200.
    async fn plain_http_server() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn https_urls_are_spoken_with_tls_and_http_urls_without() {
        let addr = plain_http_server().await;
        let transport = HttpTransport::new();
        let send = |scheme: &str| Outgoing {
            url: format!("{scheme}://{addr}/hook"),
            headers: Vec::new(),
            body: b"{}".to_vec(),
        };
        let timeout = Duration::from_secs(5);
        assert_eq!(
            transport.send(send("http"), timeout).await,
            Delivery::Delivered
        );
        // The same server cannot complete a TLS handshake: the https send must fail
        // (retryably), which proves it was not sent in plain text.
        match transport.send(send("https"), timeout).await {
            Delivery::Retry { .. } => {}
            other => panic!("https to a plain server must fail the handshake: {other:?}"),
        }
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(classify(StatusCode::OK, None, b""), Delivery::Delivered);
        assert_eq!(
            classify(StatusCode::ACCEPTED, None, b""),
            Delivery::Delivered
        );
        let throttled = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            b"slow down",
        );
        assert_eq!(
            throttled,
            Delivery::Retry {
                error: "HTTP 429: slow down".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, None, b""),
            Delivery::Retry { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, None, b"bad"),
            Delivery::Reject { .. }
        ));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}

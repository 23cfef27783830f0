//! Requests to an HTTP/1 API (the collector's, an agent's admin endpoint), answered with
//! the status and the whole body. A request that gets no answer within a minute fails.

use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long a request may take, answer included.
const TIMEOUT: Duration = Duration::from_secs(60);

/// An answer: status and body.
pub struct HttpResponse {
    pub status: u16,
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `method url` with `headers` and `body`. An error only when no answer came (connection
/// refused or reset, timeout).
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<HttpResponse> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::from(body)))?;
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| anyhow!("{method} {url} timed out"))??;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(HttpResponse { status, body })
}

/// `GET url`.
pub async fn get(url: &str) -> Result<HttpResponse> {
    request("GET", url, &[], Vec::new()).await
}

/// `POST url` with a JSON body.
pub async fn post_json(url: &str, body: &serde_json::Value) -> Result<HttpResponse> {
    request(
        "POST",
        url,
        &[("content-type", "application/json")],
        serde_json::to_vec(body)?,
    )
    .await
}

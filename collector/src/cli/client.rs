//! A small JSON client for the collector's HTTP API over plain HTTP/1.1.
//!
//! It knows one or more collector URLs (the nodes of a cluster, where any node answers
//! every call). A request goes to the URL that answered last; when that one cannot be
//! reached (no connection, the connection closed or reset, or no answer in time) the same
//! request goes to the next URL, in order and wrapping around, each URL once. An HTTP
//! answer, whatever its status, is final: it is never asked again of another node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

/// Longest wait for one URL's complete answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a TCP connection, so that an unreachable host is left sooner.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the status line of a download: a backup answers once its snapshot is
/// spooled, which takes a while for a large store.
const DOWNLOAD_HEAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    /// No URL answered; with several, `url` lists them all and `message` says what
    /// happened at each.
    #[error("cannot reach the collector at {url}: {message}")]
    Connection { url: String, message: String },
    /// The collector answered with an error status.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
}

impl ClientError {
    /// 1 when the API rejected the request, 2 for usage and connection problems.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Api { .. } => 1,
            ClientError::Usage(_) | ClientError::Connection { .. } => 2,
        }
    }
}

pub struct ApiClient {
    urls: Vec<String>,
    /// Index in `urls` of the one that answered last: requests start there.
    current: AtomicUsize,
    authorization: Option<http::HeaderValue>,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub use bellwether_model::notification::encode_component;

/// The collector URLs in `values` (each one URL or a comma-separated list, as `--url` and
/// `BELLWETHER_URL` take them), checked and without a trailing `/`, first occurrence
/// order, duplicates dropped. Any bad or empty entry is a usage error that names it.
pub fn parse_urls<S: AsRef<str>>(values: &[S]) -> Result<Vec<String>, ClientError> {
    let mut urls: Vec<String> = Vec::new();
    for value in values {
        let value = value.as_ref();
        if !value.contains(',') {
            push_new(&mut urls, check_url(value.trim())?);
            continue;
        }
        for entry in value.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(ClientError::Usage(format!(
                    "invalid --url {value:?}: empty entry in the comma-separated list"
                )));
            }
            push_new(&mut urls, check_url(entry)?);
        }
    }
    if urls.is_empty() {
        return Err(ClientError::Usage("no --url given".into()));
    }
    Ok(urls)
}

fn push_new(urls: &mut Vec<String>, url: String) {
    if !urls.contains(&url) {
        urls.push(url);
    }
}

/// One base URL like `http://127.0.0.1:8480` (a path prefix is kept).
fn check_url(base: &str) -> Result<String, ClientError> {
    let uri: Uri = base
        .parse()
        .map_err(|e| ClientError::Usage(format!("invalid --url {base:?}: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(ClientError::Usage(format!(
                "invalid --url {base:?}: scheme {other} is not supported, use http"
            )))
        }
        None => {
            return Err(ClientError::Usage(format!(
                "invalid --url {base:?}: expected http://HOST:PORT"
            )))
        }
    }
    if uri.authority().is_none() {
        return Err(ClientError::Usage(format!(
            "invalid --url {base:?}: no host"
        )));
    }
    Ok(base.trim_end_matches('/').to_owned())
}

/// What one URL made of a request.
enum Attempt {
    /// An HTTP answer: status and body.
    Answered(StatusCode, Bytes),
    /// No answer at all: worth asking the next URL.
    Unreachable(String),
}

impl ApiClient {
    /// `base` like `http://127.0.0.1:8480` (a path prefix is kept), or several such URLs
    /// separated by commas.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        Self::from_urls(&[base])
    }

    /// The URLs of [`parse_urls`], tried in this order.
    pub fn from_urls<S: AsRef<str>>(values: &[S]) -> Result<Self, ClientError> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Ok(Self {
            urls: parse_urls(values)?,
            current: AtomicUsize::new(0),
            authorization: None,
            timeout: TIMEOUT,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// The collector URLs, in the order they are tried.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Sends `Authorization: Bearer <token>` with every request (None or empty: none).
    pub fn with_token(mut self, token: Option<&str>) -> Result<Self, ClientError> {
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(self);
        };
        let mut value = http::HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| ClientError::Usage("invalid --token: not a valid header value".into()))?;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(self)
    }

    /// Gives each URL this long instead of 30 s.
    #[cfg(test)]
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub async fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, ClientError> {
        let (answer, _) = self
            .send(Method::GET, &|_| path_and_query.into(), None)
            .await?;
        Ok(answer)
    }

    /// `GET path_for(url)` from the URLs in turn, and the URL that answered: for a
    /// question that only makes sense to one node (a long poll for a change since that
    /// node's revision), asked differently of the others.
    pub async fn get_per_url<T: DeserializeOwned>(
        &self,
        path_for: impl Fn(&str) -> String,
    ) -> Result<(T, &str), ClientError> {
        self.send(Method::GET, &path_for, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ClientError::Usage(format!("encoding request: {e}")))?;
        let (answer, _) = self
            .send(Method::POST, &|_| path.into(), Some(body))
            .await?;
        Ok(answer)
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (answer, _) = self.send(Method::DELETE, &|_| path.into(), None).await?;
        Ok(answer)
    }

    /// `POST path` with an empty body, the answer's body written to `out` as it arrives;
    /// returns the bytes written. URLs are tried in turn until one answers, as for every
    /// request; a failure once the body streams is final (`out` then holds part of it).
    pub async fn download(
        &self,
        path: &str,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;
        let first = self.current.load(Ordering::Relaxed);
        let head_timeout = DOWNLOAD_HEAD_TIMEOUT.max(self.timeout);
        let mut failures = Vec::new();
        for step in 0..self.urls.len() {
            let index = (first + step) % self.urls.len();
            let base = &self.urls[index];
            let request = self.request(base, &Method::POST, path, false, Bytes::new())?;
            let response =
                match tokio::time::timeout(head_timeout, self.client.request(request)).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(e)) => {
                        failures.push((base.as_str(), with_causes(&e)));
                        continue;
                    }
                    Err(_) => {
                        let message = format!("no answer within {}", seconds(head_timeout));
                        failures.push((base.as_str(), message));
                        continue;
                    }
                };
            self.current.store(index, Ordering::Relaxed);
            let status = response.status();
            let connection = |message: String| ClientError::Connection {
                url: base.to_owned(),
                message,
            };
            let mut body = response.into_body();
            if !status.is_success() {
                let bytes = tokio::time::timeout(self.timeout, body.collect())
                    .await
                    .map_err(|_| connection("the error answer stalled".into()))?
                    .map_err(|e| connection(e.to_string()))?
                    .to_bytes();
                return Err(api_error(status, &bytes));
            }
            let mut written = 0u64;
            loop {
                let frame = match tokio::time::timeout(self.timeout, body.frame()).await {
                    Err(_) => {
                        let stalled = format!(
                            "the answer stalled for {} after {written} bytes",
                            seconds(self.timeout)
                        );
                        return Err(connection(stalled));
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        return Err(connection(format!(
                            "the answer broke off after {written} bytes: {}",
                            with_causes(&e)
                        )))
                    }
                    Ok(Some(Ok(frame))) => frame,
                };
                if let Ok(data) = frame.into_data() {
                    out.write_all(&data)
                        .await
                        .map_err(|e| ClientError::Usage(format!("writing the download: {e}")))?;
                    written += data.len() as u64;
                }
            }
            out.flush()
                .await
                .map_err(|e| ClientError::Usage(format!("writing the download: {e}")))?;
            return Ok(written);
        }
        Err(unreachable(&failures))
    }

    /// Asks each URL in turn, from the one that answered last, until one answers; returns
    /// the answer and that URL.
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path_for: &dyn Fn(&str) -> String,
        body: Option<Vec<u8>>,
    ) -> Result<(T, &str), ClientError> {
        let json = body.is_some();
        let body = Bytes::from(body.unwrap_or_default());
        let first = self.current.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for step in 0..self.urls.len() {
            let index = (first + step) % self.urls.len();
            let base = &self.urls[index];
            let request = self.request(base, &method, &path_for(base), json, body.clone())?;
            match self.attempt(base, request).await? {
                Attempt::Answered(status, bytes) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok((decode(base, status, &bytes)?, base));
                }
                Attempt::Unreachable(message) => failures.push((base.as_str(), message)),
            }
        }
        Err(unreachable(&failures))
    }

    fn request(
        &self,
        base: &str,
        method: &Method,
        path_and_query: &str,
        json: bool,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let url = format!("{base}{path_and_query}");
        let mut request = Request::builder().method(method.clone()).uri(&url);
        if json {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization.clone());
        }
        request
            .body(Full::new(body))
            .map_err(|e| ClientError::Usage(format!("invalid request to {url}: {e}")))
    }

    /// One exchange with one URL. Failing before the answer's status line arrives makes it
    /// [`Attempt::Unreachable`]; failing while reading an answer's body is an error (the
    /// node answered, so the request is not asked of another).
    async fn attempt(
        &self,
        base: &str,
        request: Request<Full<Bytes>>,
    ) -> Result<Attempt, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let no_answer = || format!("no answer within {}", seconds(self.timeout));
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Ok(Attempt::Unreachable(with_causes(&e))),
            Err(_) => return Ok(Attempt::Unreachable(no_answer())),
        };
        let status = response.status();
        let connection = |message: String| ClientError::Connection {
            url: base.to_owned(),
            message,
        };
        let bytes = tokio::time::timeout_at(deadline, response.into_body().collect())
            .await
            .map_err(|_| connection(no_answer()))?
            .map_err(|e| connection(e.to_string()))?
            .to_bytes();
        Ok(Attempt::Answered(status, bytes))
    }
}

/// An error and its causes, `outer: inner: innermost` (hyper's errors print only the
/// outermost, "client error (Connect)").
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// An answer as `T`, or the API's error.
fn decode<T: DeserializeOwned>(
    base: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(api_error(status, bytes));
    }
    serde_json::from_slice(bytes).map_err(|e| ClientError::Connection {
        url: base.to_owned(),
        message: format!("unexpected response from the collector: {e}"),
    })
}

/// An error answer as the API's error: its `{"error": …}` message, else its text.
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
    ClientError::Api {
        status: status.as_u16(),
        message,
    }
}

/// The error once every URL failed: with one URL as it failed, with several naming each.
fn unreachable(failures: &[(&str, String)]) -> ClientError {
    if let [(url, message)] = failures {
        return ClientError::Connection {
            url: (*url).to_owned(),
            message: message.clone(),
        };
    }
    let urls: Vec<&str> = failures.iter().map(|(url, _)| *url).collect();
    let messages: Vec<String> = failures
        .iter()
        .map(|(url, message)| format!("{url}: {message}"))
        .collect();
    ClientError::Connection {
        url: urls.join(", "),
        message: messages.join("; "),
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

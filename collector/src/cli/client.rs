//! A small JSON client for the collector's HTTP API over plain HTTP/1.1.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
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
    base: String,
    authorization: Option<http::HeaderValue>,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub use bellwether_model::notification::encode_component;

impl ApiClient {
    /// `base` like `http://127.0.0.1:8480` (a path prefix is kept).
    pub fn new(base: &str) -> Result<Self, ClientError> {
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
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            authorization: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
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

    pub async fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, ClientError> {
        self.send(Method::GET, path_and_query, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ClientError::Usage(format!("encoding request: {e}")))?;
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Method::DELETE, path, None).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path_and_query}", self.base);
        let connection = |message: String| ClientError::Connection {
            url: self.base.clone(),
            message,
        };
        let mut request = Request::builder().method(method).uri(&url);
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Usage(format!("invalid request to {url}: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| connection(format!("{e:#}")))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| connection(e.to_string()))?
                .to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| connection(format!("no answer within {}s", TIMEOUT.as_secs())))??;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Api {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| connection(format!("unexpected response from the collector: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_components() {
        assert_eq!(encode_component("a b/c&d=é"), "a%20b%2Fc%26d%3D%C3%A9");
        assert_eq!(encode_component("v1.2-rc_3~"), "v1.2-rc_3~");
    }

    #[test]
    fn rejects_unusable_urls() {
        for url in ["https://x:1", "127.0.0.1:8480", "not a url"] {
            let code = ApiClient::new(url).err().map(|e| e.exit_code());
            assert_eq!(code, Some(2), "{url}");
        }
        assert!(ApiClient::new("http://127.0.0.1:8480/").is_ok());
    }
}

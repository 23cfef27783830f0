//! The collector's one error type, mapped to both gRPC codes and HTTP statuses here and
//! nowhere else.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;

use bellwether_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or fails validation.
    #[error("{0}")]
    InvalidArgument(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
    /// No valid credentials were presented.
    #[error("{0}")]
    Unauthenticated(String),
    /// The credentials are valid but lack the scope this request needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// A configured limit was exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// Ingest is busier than the store can keep up with: retry after [`RETRY_AFTER_SECS`].
    #[error("{0}")]
    Overloaded(String),
    /// The data directory's disk is (nearly) full: nothing was stored, retry later.
    #[error("{0}")]
    DiskFull(String),
    /// This collector does not do that (a backup of a cluster node).
    #[error("{0}")]
    NotImplemented(String),
}

/// The delay, in seconds, an overloaded collector asks a sender to wait before retrying.
pub const RETRY_AFTER_SECS: u64 = 1;
/// The delay, in seconds, a collector whose disk is full asks a sender to wait.
pub const DISK_FULL_RETRY_AFTER_SECS: u64 = 5;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            // Storage trouble is transient from the client's point of view: retry later.
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Self::LimitExceeded(_) => StatusCode::BAD_REQUEST,
            Self::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::DiskFull(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Self::InvalidArgument(_) | Self::UnsupportedMediaType(_) => {
                tonic::Code::InvalidArgument
            }
            Self::NotFound(_) => tonic::Code::NotFound,
            Self::PayloadTooLarge { .. } => tonic::Code::ResourceExhausted,
            Self::Store(_) => tonic::Code::Unavailable,
            Self::Internal(_) => tonic::Code::Internal,
            Self::Unauthenticated(_) => tonic::Code::Unauthenticated,
            Self::PermissionDenied(_) => tonic::Code::PermissionDenied,
            Self::LimitExceeded(_) => tonic::Code::InvalidArgument,
            Self::Overloaded(_) => tonic::Code::ResourceExhausted,
            Self::DiskFull(_) => tonic::Code::Unavailable,
            Self::NotImplemented(_) => tonic::Code::Unimplemented,
        }
    }

    /// Seconds the client should wait before retrying, sent as `Retry-After` (HTTP) or
    /// `retry-after` metadata (gRPC).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Overloaded(_) => Some(RETRY_AFTER_SECS),
            Self::DiskFull(_) => Some(DISK_FULL_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    fn log_if_server_side(&self) {
        if matches!(self, Self::Store(_) | Self::Internal(_)) {
            tracing::error!(error = %self, "request failed");
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        error.log_if_server_side();
        let mut status = tonic::Status::new(error.grpc_code(), error.to_string());
        if let Some(secs) = error.retry_after() {
            status
                .metadata_mut()
                .insert("retry-after", tonic::metadata::MetadataValue::from(secs));
        }
        status
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log_if_server_side();
        let body = serde_json::json!({ "error": self.to_string() });
        let mut response = (self.http_status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

impl From<bellwether_alerting::alerts::AlertError> for Error {
    fn from(e: bellwether_alerting::alerts::AlertError) -> Self {
        match e {
            bellwether_alerting::alerts::AlertError::Store(e) => Self::Store(e),
            bellwether_alerting::alerts::AlertError::NotFound(m) => Self::NotFound(m),
            bellwether_alerting::alerts::AlertError::Invalid(m) => Self::InvalidArgument(m),
            bellwether_alerting::alerts::AlertError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Internal(format!("background task failed: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mapping_for_both_protocols() {
        let cases = [
            (
                Error::invalid("x"),
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
            ),
            (
                Error::NotFound("x".into()),
                StatusCode::NOT_FOUND,
                tonic::Code::NotFound,
            ),
            (
                Error::PayloadTooLarge { limit: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
                tonic::Code::ResourceExhausted,
            ),
            (
                Error::UnsupportedMediaType("x".into()),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
            ),
            (
                Error::Overloaded("x".into()),
                StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::ResourceExhausted,
            ),
        ];
        for (error, http, grpc) in cases {
            assert_eq!(error.http_status(), http);
            assert_eq!(error.grpc_code(), grpc);
        }
        let status = tonic::Status::from(Error::invalid("bad batch"));
        assert_eq!(status.message(), "bad batch");
        assert_eq!(Error::invalid("x").retry_after(), None);
        let status = tonic::Status::from(Error::Overloaded("busy".into()));
        let hint = status
            .metadata()
            .get("retry-after")
            .map(|v| v.to_str().ok());
        assert_eq!(hint, Some(Some("1")));
        let response = Error::Overloaded("busy".into()).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(http::header::RETRY_AFTER),
            Some(&http::HeaderValue::from_static("1"))
        );
    }
}

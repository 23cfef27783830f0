//! Sources: where telemetry enters the agent.
//!
//! - [`otlp_grpc`]: OTLP/gRPC `LogsService` and `TraceService` receivers.
//! - [`otlp_http`]: OTLP/HTTP `POST /v1/logs` and `/v1/traces`, protobuf or JSON.
//! - [`stdin`]: log records from the lines of standard input.
//! - [`files`]: tails files matching globs, through rotation, with checkpoints.
//! - [`exec`]: runs the service as a child and reads its stdout and stderr.
//!
//! The line sources share [`lines`] (chunks to lines, bounded) and
//! [`parse::LineAssembler`](crate::parse::LineAssembler) (multi-line joining, parsing).
//!
//! Each source hands its data to the [`PipelineSender`](crate::pipeline::PipelineSender)
//! and only then acknowledges it.

pub mod exec;
pub mod files;
pub mod lines;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod stdin;
#[cfg(test)]
pub(crate) mod testing;

use std::time::Duration;

use http::StatusCode;
use tonic::Status;

use crate::pipeline::SubmitError;

/// How long an OTLP request waits for room in a full queue before the client is told to
/// retry later.
pub const ENQUEUE_WAIT: Duration = Duration::from_secs(10);

/// Largest OTLP request accepted, before and after decompression.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Why a receiver refused a request; the one place mapping to gRPC and HTTP statuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiveError {
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: use gzip or none")]
    UnsupportedEncoding(String),
    #[error("request body larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

impl ReceiveError {
    pub fn http_status(&self) -> StatusCode {
        match self {
            ReceiveError::UnsupportedContentType(_) | ReceiveError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ReceiveError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ReceiveError::Malformed(_) => StatusCode::BAD_REQUEST,
            ReceiveError::Submit(SubmitError::Full) => StatusCode::TOO_MANY_REQUESTS,
            ReceiveError::Submit(
                SubmitError::Closed | SubmitError::DiskFull | SubmitError::Storage(_),
            ) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn grpc_status(&self) -> Status {
        let message = self.to_string();
        match self {
            ReceiveError::UnsupportedContentType(_)
            | ReceiveError::UnsupportedEncoding(_)
            | ReceiveError::Malformed(_) => Status::invalid_argument(message),
            ReceiveError::TooLarge => Status::resource_exhausted(message),
            ReceiveError::Submit(SubmitError::Full | SubmitError::DiskFull) => {
                Status::resource_exhausted(message)
            }
            ReceiveError::Submit(SubmitError::Closed | SubmitError::Storage(_)) => {
                Status::unavailable(message)
            }
        }
    }
}

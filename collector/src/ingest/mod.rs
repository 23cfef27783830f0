//! OTLP ingest: gRPC ([`grpc`]) and HTTP ([`http`]) receivers decode a request, then
//! [`Ingestor`] summarizes it ([`summarize`]) and applies it to the store in one
//! transaction, together with the request's batch id.

pub mod grpc;
pub mod http;
pub mod summarize;

use std::sync::Arc;

use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;

use crate::error::Error;
use crate::store::{ApplyOutcome, IngestBatch, ReleaseStore};
use crate::time::now_unix_ms;

/// Largest accepted request, compressed or not.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Largest accepted batch id.
pub const MAX_BATCH_ID_BYTES: usize = 256;

/// Counts decoded OTLP requests into the store.
#[derive(Clone)]
pub struct Ingestor {
    store: Arc<dyn ReleaseStore>,
}

impl Ingestor {
    pub fn new(store: Arc<dyn ReleaseStore>) -> Self {
        Self { store }
    }

    pub async fn logs(
        &self,
        request: ExportLogsServiceRequest,
        batch_id: Option<String>,
    ) -> Result<ApplyOutcome, Error> {
        let received = now_unix_ms();
        self.apply_with(move || summarize::summarize_logs(&request, batch_id, received))
            .await
    }

    pub async fn traces(
        &self,
        request: ExportTraceServiceRequest,
        batch_id: Option<String>,
    ) -> Result<ApplyOutcome, Error> {
        let received = now_unix_ms();
        self.apply_with(move || summarize::summarize_traces(&request, batch_id, received))
            .await
    }

    /// Summarizes and applies off the async executor: both can take a while on large batches.
    async fn apply_with(
        &self,
        summarize: impl FnOnce() -> IngestBatch + Send + 'static,
    ) -> Result<ApplyOutcome, Error> {
        let store = Arc::clone(&self.store);
        let outcome = tokio::task::spawn_blocking(move || {
            let batch = summarize();
            if batch.releases.is_empty() && batch.batch_id.is_none() {
                return Ok(ApplyOutcome::Applied);
            }
            store.apply(&batch)
        })
        .await??;
        if outcome == ApplyOutcome::Duplicate {
            tracing::debug!("batch already applied");
        }
        Ok(outcome)
    }
}

/// Validates the optional batch id header value; empty means none.
pub fn parse_batch_id(raw: Option<&[u8]>) -> Result<Option<String>, Error> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if raw.len() > MAX_BATCH_ID_BYTES {
        return Err(Error::invalid(format!(
            "{} exceeds {MAX_BATCH_ID_BYTES} bytes",
            bellwether_proto::BATCH_ID_HEADER
        )));
    }
    let id = std::str::from_utf8(raw).map_err(|_| {
        Error::invalid(format!(
            "{} is not valid UTF-8",
            bellwether_proto::BATCH_ID_HEADER
        ))
    })?;
    Ok((!id.is_empty()).then(|| id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_bounded_utf8() {
        assert_eq!(parse_batch_id(None).ok(), Some(None));
        assert_eq!(parse_batch_id(Some(b"")).ok(), Some(None));
        assert_eq!(
            parse_batch_id(Some(b"i-1:boot:7")).ok(),
            Some(Some("i-1:boot:7".to_owned()))
        );
        assert!(parse_batch_id(Some(&[b'a'; 257])).is_err());
        assert!(parse_batch_id(Some(&[0xff, 0xfe])).is_err());
    }
}

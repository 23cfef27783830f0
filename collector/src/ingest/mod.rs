//! OTLP ingest: gRPC ([`grpc`]) and HTTP ([`http`]) receivers decode a request, then
//! [`Ingestor`] summarizes it ([`summarize`]: counts, errors described by [`errors`] and
//! de-duplicated per trace by [`dedup`], latency samples) and applies it to the store in
//! one transaction, together with the request's batch id.
//!
//! Admission control: at most `limits.max_inflight_ingest` requests are summarized and
//! stored at once. A request that finds no free slot within `limits.ingest_admission_wait`
//! is refused with [`Error::Overloaded`] (HTTP 429 / gRPC RESOURCE_EXHAUSTED) before any
//! of it is applied, so senders back off instead of queueing without bound, and nothing
//! an accepted request carried is lost.

pub mod dedup;
pub mod errors;
pub mod grpc;
pub mod http;
pub mod summarize;
pub mod wire;

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;

use crate::error::Error;
use crate::limits::{self, Limit, Limits, Seen};
use crate::metrics;
use crate::store::{ApplyOutcome, DeploymentFilter, ReleaseStore};
use crate::time::now_unix_ms;
use dedup::RecentErrors;
use summarize::Summary;

/// Largest accepted request, compressed or not, unless `limits.max_request_bytes` says
/// otherwise.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Largest accepted batch id.
pub const MAX_BATCH_ID_BYTES: usize = 256;

/// Counts decoded OTLP requests into the store.
#[derive(Clone)]
pub struct Ingestor {
    store: Arc<dyn ReleaseStore>,
    recent: Arc<RecentErrors>,
    limits: Limits,
    /// Services and versions admitted so far; read from the store on first use.
    seen: Arc<Mutex<Option<Seen>>>,
    /// One permit per request being summarized and stored.
    inflight: Arc<Semaphore>,
}

impl Ingestor {
    pub fn new(store: Arc<dyn ReleaseStore>) -> Self {
        let limits = Limits::default();
        Self {
            store,
            recent: Arc::new(RecentErrors::default()),
            limits,
            seen: Arc::new(Mutex::new(None)),
            inflight: Arc::new(Semaphore::new(limits.max_inflight_ingest)),
        }
    }

    /// Applies `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.inflight = Arc::new(Semaphore::new(limits.max_inflight_ingest));
        self
    }

    /// Takes an ingest slot, waiting at most `ingest_admission_wait` for one.
    async fn admission(&self) -> Result<OwnedSemaphorePermit, Error> {
        let inflight = Arc::clone(&self.inflight);
        let wait = self.limits.ingest_admission_wait;
        match tokio::time::timeout(wait, inflight.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(Error::Internal("ingest admission closed".to_owned())),
            Err(_elapsed) => {
                limits::hit(Limit::Inflight, 1);
                tracing::debug!(
                    max_inflight_ingest = self.limits.max_inflight_ingest,
                    "ingest overloaded, request refused"
                );
                Err(Error::Overloaded(format!(
                    "collector overloaded: {} ingest requests in flight \
                     (max_inflight_ingest), retry later",
                    self.limits.max_inflight_ingest
                )))
            }
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub async fn logs(
        &self,
        mut request: ExportLogsServiceRequest,
        batch_id: Option<String>,
    ) -> Result<ApplyOutcome, Error> {
        let received = now_unix_ms();
        let (started, records) = (std::time::Instant::now(), metrics::log_records(&request));
        let outcome = match limits::check_records(&self.limits, records as usize) {
            Err(e) => Err(e),
            Ok(()) => {
                limits::cap_logs(&self.limits, &mut request);
                self.apply_with(move |recent| {
                    summarize::summarize_logs_with(&request, batch_id, received, recent)
                })
                .await
            }
        };
        metrics::ingested(metrics::Signal::Logs, records, started.elapsed(), &outcome);
        outcome
    }

    pub async fn traces(
        &self,
        mut request: ExportTraceServiceRequest,
        batch_id: Option<String>,
    ) -> Result<ApplyOutcome, Error> {
        let received = now_unix_ms();
        let (started, records) = (std::time::Instant::now(), metrics::spans(&request));
        let outcome = match limits::check_records(&self.limits, records as usize) {
            Err(e) => Err(e),
            Ok(()) => {
                limits::cap_traces(&self.limits, &mut request);
                self.apply_with(move |recent| {
                    summarize::summarize_traces_with(&request, batch_id, received, recent)
                })
                .await
            }
        };
        let signal = metrics::Signal::Traces;
        metrics::ingested(signal, records, started.elapsed(), &outcome);
        outcome
    }

    /// Summarizes and applies off the async executor: both can take a while on large batches.
    /// The errors a batch counted are remembered only once it is stored. The ingest slot is
    /// held until the store is done, even if the client goes away meanwhile.
    async fn apply_with(
        &self,
        summarize: impl FnOnce(&RecentErrors) -> Summary + Send + 'static,
    ) -> Result<ApplyOutcome, Error> {
        let permit = self.admission().await?;
        let store = Arc::clone(&self.store);
        let recent = Arc::clone(&self.recent);
        let (limits, seen) = (self.limits, Arc::clone(&self.seen));
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let Summary { batch, counted } = summarize(&recent);
            if batch.releases.is_empty() && batch.batch_id.is_none() {
                return Ok(ApplyOutcome::Applied);
            }
            admit(&*store, &seen, &limits, batch.releases.keys())?;
            let outcome = store.apply(&batch)?;
            recent.insert_all(&counted);
            Ok::<_, Error>(outcome)
        })
        .await??;
        if outcome == ApplyOutcome::Duplicate {
            tracing::debug!("batch already applied");
        }
        Ok(outcome)
    }
}

/// Refuses a batch that would bring a service or version past the limits; the releases
/// known to the store are read once, on first use.
fn admit<'r>(
    store: &dyn ReleaseStore,
    seen: &Mutex<Option<Seen>>,
    limits: &Limits,
    releases: impl IntoIterator<Item = &'r crate::store::ReleaseKey> + Clone,
) -> Result<(), Error> {
    let mut seen = seen
        .lock()
        .map_err(|_| Error::Internal("service registry lock poisoned".to_owned()))?;
    let seen = match &mut *seen {
        Some(seen) => seen,
        empty => {
            let known = store.deployments(&DeploymentFilter::default())?;
            empty.insert(Seen::new(known.into_iter().map(|d| d.release)))
        }
    };
    seen.admit(limits, releases)
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

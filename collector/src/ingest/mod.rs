//! OTLP ingest: gRPC ([`grpc`]) and HTTP ([`http`]) receivers decode a request, then
//! [`Ingestor`] summarizes it ([`summarize`]: counts, errors described by [`errors`] and
//! de-duplicated per trace by [`dedup`], latency samples; [`request_metrics`] for OTLP
//! metrics) and applies it to the store in one transaction, together with the request's
//! batch id.
//!
//! Admission control: at most `limits.max_inflight_ingest` requests are summarized and
//! stored at once. A request that finds no free slot within `limits.ingest_admission_wait`
//! is refused with [`Error::Overloaded`] (HTTP 429 / gRPC RESOURCE_EXHAUSTED) before any
//! of it is applied, so senders back off instead of queueing without bound, and nothing
//! an accepted request carried is lost.

pub mod calls;
pub mod dedup;
pub mod disk;
pub mod errors;
pub mod grpc;
pub mod http;
pub mod request_metrics;
pub mod summarize;
pub mod wire;

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;

use crate::error::Error;
use crate::limits::{self, Limits, Seen};
use crate::metrics;
use bellwether_cluster::ingest::IngestLog;
use bellwether_model::limit::Limit;
use bellwether_model::release::DeploymentFilter;
use bellwether_model::time::now_unix_ms;
use bellwether_store::{ApplyOutcome, IngestBatch, ReleaseStore};
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
    /// In a cluster: the stream batches are published to instead of the store (every
    /// node's replica applies them from there).
    log: Option<IngestLog>,
    /// Levels of cumulative request-metric series (see [`request_metrics`]).
    series: Arc<request_metrics::SeriesTable>,
    /// Free space of the data directory, checked before each request is applied.
    disk: Option<Arc<disk::FreeDisk>>,
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
            log: None,
            series: Arc::default(),
            disk: None,
        }
    }

    /// Publishes every batch to the cluster's ingest stream instead of storing it; the
    /// sender is answered once the stream acknowledged it.
    pub fn publishing_to(mut self, log: IngestLog) -> Self {
        self.log = Some(log);
        self
    }

    /// Applies `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.inflight = Arc::new(Semaphore::new(limits.max_inflight_ingest));
        self
    }

    /// Refuses ingest while `data_dir`'s file system has less than
    /// `limits.min_free_disk_bytes` free (see [`disk`]).
    pub fn checking_disk(mut self, data_dir: &std::path::Path) -> Self {
        let min_free = self.limits.min_free_disk_bytes;
        self.disk = Some(Arc::new(disk::FreeDisk::new(data_dir, min_free)));
        self
    }

    /// Takes an ingest slot, waiting at most `ingest_admission_wait` for one; refuses
    /// at once while the disk is full.
    async fn admission(&self) -> Result<OwnedSemaphorePermit, Error> {
        if let Some(disk) = &self.disk {
            disk.check()?;
        }
        let inflight = Arc::clone(&self.inflight);
        let wait = self.limits.ingest_admission_wait;
        match tokio::time::timeout(wait, inflight.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(Error::Internal("ingest admission closed".to_owned())),
            Err(_elapsed) => {
                bellwether_model::limit::hit(Limit::Inflight, 1);
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
                    summarize::summarize_logs_with(&request, batch_id.clone(), received, recent)
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
                    summarize::summarize_traces_with(&request, batch_id.clone(), received, recent)
                })
                .await
            }
        };
        let signal = metrics::Signal::Traces;
        metrics::ingested(signal, records, started.elapsed(), &outcome);
        outcome
    }

    /// Summarizes and applies off the async executor: both can take a while on large batches.
    /// The ingest slot is held until the store is done, even if the client goes away
    /// meanwhile.
    async fn apply_with(
        &self,
        summarize: impl Fn(&RecentErrors) -> Summary + Send + 'static,
    ) -> Result<ApplyOutcome, Error> {
        let permit = self.admission().await?;
        if let Some(log) = &self.log {
            return self.publish_with(log, summarize, permit).await;
        }
        let store = Arc::clone(&self.store);
        let recent = Arc::clone(&self.recent);
        let (limits, seen) = (self.limits, Arc::clone(&self.seen));
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            store_summary(&*store, &recent, summarize, |batch| {
                admit(&*store, &seen, &limits, batch.releases.keys())
            })
        })
        .await??;
        if outcome == ApplyOutcome::Duplicate {
            tracing::debug!("batch already applied");
        }
        Ok(outcome)
    }
}

impl Ingestor {
    /// The cluster's way of [`Ingestor::apply_with`]: summarized and admitted off the
    /// executor, then published. A batch without an id gets a unique one, so that every
    /// replica counts it once however often the stream is read. The trace ledger is
    /// this node's: a failing request whose span and log reach two nodes counts on each.
    async fn publish_with(
        &self,
        log: &IngestLog,
        summarize: impl Fn(&RecentErrors) -> Summary + Send + 'static,
        permit: OwnedSemaphorePermit,
    ) -> Result<ApplyOutcome, Error> {
        let store = Arc::clone(&self.store);
        let recent = Arc::clone(&self.recent);
        let (limits, seen) = (self.limits, Arc::clone(&self.seen));
        let summary = tokio::task::spawn_blocking(move || {
            let summary = summarize(&recent);
            admit(&*store, &seen, &limits, summary.batch.releases.keys())?;
            Ok::<_, Error>(summary)
        })
        .await??;
        let Summary { mut batch, counted } = summary;
        if batch.releases.is_empty() {
            return Ok(ApplyOutcome::Applied);
        }
        if batch.batch_id.is_none() {
            batch.batch_id = Some(format!("gen-{:032x}", rand::random::<u128>()));
        }
        let started = std::time::Instant::now();
        let published = log.publish(&batch).await;
        crate::cluster::api::published(started.elapsed(), published.is_ok());
        let published = published.map_err(|e| {
            tracing::warn!(error = %e, "publishing to the ingest stream failed");
            Error::Overloaded(format!(
                "cluster ingest stream unavailable, retry later: {e}"
            ))
        })?;
        drop(permit);
        self.recent.insert_all(&counted);
        if published.parts > 0 && published.duplicates == published.parts {
            return Ok(ApplyOutcome::Duplicate);
        }
        Ok(ApplyOutcome::Applied)
    }
}

/// Summarizes a request and stores the batch, once `admit` lets it in. The error keys it
/// counted are remembered only once it is stored; from the check that none of them was
/// remembered meanwhile to that point, the batch holds the ledger (see [`dedup`]), and if
/// one was, it is summarized again under it. Summarizing the first time takes no lock,
/// nor does a batch that counted no traced error.
fn store_summary(
    store: &dyn ReleaseStore,
    recent: &RecentErrors,
    summarize: impl Fn(&RecentErrors) -> Summary,
    admit: impl FnOnce(&IngestBatch) -> Result<(), Error>,
) -> Result<ApplyOutcome, Error> {
    let mut summary = summarize(recent);
    if summary.batch.releases.is_empty() && summary.batch.batch_id.is_none() {
        return Ok(ApplyOutcome::Applied);
    }
    let traced = summary.counted.values().any(|keys| !keys.is_empty());
    let _ledger = traced.then(|| recent.ledger());
    if traced && recent.remembers_any(&summary.counted) {
        summary = summarize(recent);
    }
    let Summary { batch, counted } = summary;
    admit(&batch)?;
    let outcome = store.apply(&batch)?;
    recent.insert_all(&counted);
    Ok(outcome)
}

/// Refuses a batch that would bring a service or version past the limits; the releases
/// known to the store are read once, on first use.
fn admit<'r>(
    store: &dyn ReleaseStore,
    seen: &Mutex<Option<Seen>>,
    limits: &Limits,
    releases: impl IntoIterator<Item = &'r bellwether_model::release::ReleaseKey> + Clone,
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
    use std::cell::Cell;

    use super::*;
    use bellwether_model::release::ReleaseKey;
    use bellwether_proto::otlp::common::any_value::Value;
    use bellwether_proto::otlp::common::{AnyValue, KeyValue};
    use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    use bellwether_proto::otlp::resource::Resource;
    use bellwether_proto::otlp::trace::span::{Event, SpanKind};
    use bellwether_proto::otlp::trace::status::StatusCode;
    use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans};
    use bellwether_proto::otlp::trace::{Span, Status};
    use bellwether_store::SledStore;

    const NOW_MS: i64 = 1_700_000_005_000;
    const TIME_NS: u64 = 1_700_000_001_000_000_000;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    fn resource() -> Option<Resource> {
        Some(Resource {
            attributes: vec![kv("service.name", "api"), kv("service.version", "1")],
            ..Resource::default()
        })
    }

    /// One failing request of trace 1: its span with an exception event…
    fn failed_span() -> ExportTraceServiceRequest {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            kind: SpanKind::Server as i32,
            name: "POST /pay".into(),
            start_time_unix_nano: TIME_NS - 20_000_000,
            end_time_unix_nano: TIME_NS,
            status: Some(Status {
                code: StatusCode::Error as i32,
                ..Status::default()
            }),
            events: vec![Event {
                name: "exception".into(),
                attributes: vec![kv("exception.type", "PaymentError")],
                ..Event::default()
            }],
            ..Span::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    /// …and its exception log record, of another fingerprint.
    fn failed_log() -> ExportLogsServiceRequest {
        let record = LogRecord {
            time_unix_nano: TIME_NS,
            severity_number: 17,
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            attributes: vec![
                kv("exception.type", "PaymentError"),
                kv("exception.message", "declined"),
            ],
            ..LogRecord::default()
        };
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
    }

    fn admit_all(_: &IngestBatch) -> Result<(), Error> {
        Ok(())
    }

    #[test]
    fn a_failure_stored_meanwhile_by_another_request_counts_once() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
        let store = SledStore::open(dir.path())?;
        let recent = RecentErrors::default();
        let (spans, logs) = (failed_span(), failed_log());
        // The log is summarized; before it is stored, the span's batch is summarized,
        // stored and remembered (two export requests in flight at once).
        let summarized = Cell::new(0);
        let outcome = store_summary(
            &store,
            &recent,
            |recent| {
                let summary = summarize::summarize_logs_with(&logs, None, NOW_MS, recent);
                summarized.set(summarized.get() + 1);
                if summarized.get() == 1 {
                    let spans = |recent: &RecentErrors| {
                        summarize::summarize_traces_with(&spans, None, NOW_MS, recent)
                    };
                    let stored = store_summary(&store, recent, spans, admit_all);
                    assert_eq!(stored.ok(), Some(ApplyOutcome::Applied));
                }
                summary
            },
            admit_all,
        )?;
        assert_eq!(outcome, ApplyOutcome::Applied);
        assert_eq!(summarized.get(), 2, "summarized again under the ledger");
        let totals = store.totals(&ReleaseKey::new("api", "unknown", "1"))?;
        assert_eq!((totals.error_spans, totals.error_logs), (1, 1));
        assert_eq!(totals.errors, 1, "one failing request");
        let issues = store.release_issue_counts(&ReleaseKey::new("api", "unknown", "1"))?;
        assert_eq!(issues.iter().map(|i| i.count).sum::<u64>(), 2, "{issues:?}");

        // Without a key in common, a batch is summarized once.
        let summarized = Cell::new(0);
        let other = failed_span();
        store_summary(
            &store,
            &RecentErrors::default(),
            |recent| {
                summarized.set(summarized.get() + 1);
                summarize::summarize_traces_with(&other, None, NOW_MS, recent)
            },
            admit_all,
        )?;
        assert_eq!(summarized.get(), 1);
        Ok(())
    }

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

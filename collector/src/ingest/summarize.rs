//! OTLP requests → per-(release, bucket) counts, error fingerprints and latency samples,
//! in memory, before anything is stored.
//!
//! Rules (see the contract): a log is an error when severity_number >= ERROR (17), or when
//! it is unset (0) and severity_text names an error level; a span is an error when its
//! status code is ERROR. A record's time picks its 10 s bucket; a time of 0 or more than
//! an hour past the receive time falls back to the receive time. Missing identity
//! attributes count under "unknown".
//!
//! On top of the raw counts: every error (see [`super::errors`]) gets a fingerprint; it
//! counts in `errors` (the rate) at most once per trace, whichever record of the trace
//! comes first — span, `exception` event or log — and in its issue at most once per
//! (trace, fingerprint) ([`super::dedup`]). Errors without a trace id count every time.
//! Root spans and spans of kind SERVER count as `server_spans`, and their durations go to
//! the bucket's latency reservoir. Spans of kind CLIENT and PRODUCER are calls to a
//! dependency ([`dependency_of`]), counted per dependency with their errors. A request
//! span whose trace evaluated feature flags counts for each (flag, variant) once
//! ([`FlagTally`]).

use std::collections::{HashMap, HashSet};

use bellwether_proto::otlp::logs::LogRecord;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::span::SpanKind;
use bellwether_proto::otlp::trace::status::StatusCode;
use bellwether_proto::otlp::trace::Span;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;

use super::calls::{attribute, dependency_of, FlagTally};
use super::dedup::{error_keys, RecentErrors};
use super::errors::{log_error, span_errors, ErrorInfo};
use bellwether_model::dependency::duration_bucket;
use bellwether_model::issue::{IssueDelta, IssueSample, Occurrence};
use bellwether_model::issue::{MAX_FINGERPRINTS_PER_RELEASE, OTHER_FINGERPRINT, OTHER_TITLE};
use bellwether_model::release::{bucket_start, Counts, ReleaseKey, ResourceIdentity};
use bellwether_store::{duration_micros, IngestBatch, ReleaseDelta};

/// Name used for a missing service, version or environment.
pub const UNKNOWN: &str = "unknown";
const SEVERITY_NUMBER_ERROR: i32 = 17;
const ERROR_SEVERITY_TEXTS: &[&str] = &[
    "error", "err", "fatal", "critical", "crit", "alert", "emerg", "panic",
];
const FUTURE_TOLERANCE_NS: u64 = 3_600 * 1_000_000_000;

/// A summarized request, and the error keys (failures and issues) it counted per service,
/// to be remembered in [`RecentErrors`] once the batch is stored.
#[derive(Debug, Default)]
pub struct Summary {
    pub batch: IngestBatch,
    pub counted: HashMap<String, HashSet<u64>>,
}

/// Summarizes a logs export request received at `received_at_unix_ms`, de-duplicating
/// errors only within the request.
pub fn summarize_logs(
    request: &ExportLogsServiceRequest,
    batch_id: Option<String>,
    received_at_unix_ms: i64,
) -> IngestBatch {
    let recent = RecentErrors::new(1);
    summarize_logs_with(request, batch_id, received_at_unix_ms, &recent).batch
}

/// Summarizes a traces export request received at `received_at_unix_ms`, de-duplicating
/// errors only within the request.
pub fn summarize_traces(
    request: &ExportTraceServiceRequest,
    batch_id: Option<String>,
    received_at_unix_ms: i64,
) -> IngestBatch {
    let recent = RecentErrors::new(1);
    summarize_traces_with(request, batch_id, received_at_unix_ms, &recent).batch
}

/// Summarizes a logs export request; errors already in `recent` do not count again.
pub fn summarize_logs_with(
    request: &ExportLogsServiceRequest,
    batch_id: Option<String>,
    received_at_unix_ms: i64,
    recent: &RecentErrors,
) -> Summary {
    let mut summary = Summary::new(batch_id, received_at_unix_ms);
    for resource_logs in &request.resource_logs {
        let mut records = resource_logs
            .scope_logs
            .iter()
            .flat_map(|s| &s.log_records)
            .peekable();
        if records.peek().is_none() {
            continue;
        }
        let resource = resource_logs.resource.as_ref();
        let instance = instance_of(resource);
        let mut target = summary.target(resource, recent);
        let flags = FlagTally::of_logs(
            resource_logs.scope_logs.iter().flat_map(|s| &s.log_records),
            is_error_log,
        );
        for record in records {
            let time = if record.time_unix_nano != 0 {
                record.time_unix_nano
            } else {
                record.observed_time_unix_nano
            };
            let at = occurrence(time, received_at_unix_ms, &instance);
            let mut counts = Counts {
                log_records: 1,
                ..Counts::default()
            };
            if let Some(error) = log_error(record) {
                counts.error_logs = 1;
                let ids = (record.trace_id.as_slice(), record.span_id.as_slice());
                if target.error(&at, ids, error) {
                    counts.errors = 1;
                }
            }
            target.add(&at, &counts);
        }
        let bucket_of =
            |time| occurrence(time, received_at_unix_ms, &instance).bucket_start_unix_ms;
        flags.count_rest(bucket_of, &mut target.delta.flags);
    }
    summary
}

/// Summarizes a traces export request; errors already in `recent` do not count again.
pub fn summarize_traces_with(
    request: &ExportTraceServiceRequest,
    batch_id: Option<String>,
    received_at_unix_ms: i64,
    recent: &RecentErrors,
) -> Summary {
    let mut summary = Summary::new(batch_id, received_at_unix_ms);
    for resource_spans in &request.resource_spans {
        let mut spans = resource_spans
            .scope_spans
            .iter()
            .flat_map(|s| &s.spans)
            .peekable();
        if spans.peek().is_none() {
            continue;
        }
        let resource = resource_spans.resource.as_ref();
        let instance = instance_of(resource);
        let mut target = summary.target(resource, recent);
        let mut flags =
            FlagTally::of_spans(resource_spans.scope_spans.iter().flat_map(|s| &s.spans));
        for span in spans {
            let time = if span.end_time_unix_nano != 0 {
                span.end_time_unix_nano
            } else {
                span.start_time_unix_nano
            };
            let at = occurrence(time, received_at_unix_ms, &instance);
            let server = is_server_span(span);
            let mut counts = Counts {
                spans: 1,
                error_spans: u64::from(is_error_span(span)),
                server_spans: u64::from(server),
                ..Counts::default()
            };
            for error in span_errors(span) {
                let ids = (span.trace_id.as_slice(), span.span_id.as_slice());
                if target.error(&at, ids, error) {
                    counts.errors += 1;
                }
            }
            let duration = span
                .end_time_unix_nano
                .checked_sub(span.start_time_unix_nano)
                .filter(|_| span.start_time_unix_nano != 0 && span.end_time_unix_nano != 0);
            if let Some(dependency) = dependency_of(span) {
                let calls = target
                    .delta
                    .dependencies
                    .entry(at.bucket_start_unix_ms)
                    .or_default()
                    .entry(dependency)
                    .or_default();
                calls.calls += 1;
                calls.errors += u64::from(is_error_span(span));
                if let Some(duration) = duration {
                    let slot = &mut calls.durations[duration_bucket(duration as f64 / 1e6)];
                    *slot = slot.saturating_add(1);
                }
            }
            if server {
                flags.count_request(span, at.bucket_start_unix_ms, &mut target.delta.flags);
            }
            if let (true, Some(duration)) = (server, duration) {
                target
                    .delta
                    .latency
                    .entry(at.bucket_start_unix_ms)
                    .or_default()
                    .offer(duration_micros(duration));
            }
            target.add(&at, &counts);
        }
        // Flags evaluated in traces whose request span is not in this export count with
        // the span that evaluated them.
        flags.count_rest(
            |time| occurrence(time, received_at_unix_ms, &instance).bucket_start_unix_ms,
            &mut target.delta.flags,
        );
    }
    summary
}

/// A root span (no parent) or a span of kind SERVER: one request served.
pub fn is_server_span(span: &Span) -> bool {
    span.parent_span_id.iter().all(|&b| b == 0) || span.kind == SpanKind::Server as i32
}

impl Summary {
    pub(super) fn new(batch_id: Option<String>, received_at_unix_ms: i64) -> Self {
        Self {
            batch: IngestBatch {
                batch_id,
                received_at_unix_ms,
                ..IngestBatch::default()
            },
            counted: HashMap::new(),
        }
    }

    /// Where the records of one resource go.
    fn target<'s>(
        &'s mut self,
        resource: Option<&Resource>,
        recent: &'s RecentErrors,
    ) -> Target<'s> {
        let (release, identity) = release_of(resource);
        let counted = self.counted.entry(release.service.clone()).or_default();
        let delta = self.batch.releases.entry(release.clone()).or_default();
        delta.identity.merge(&identity);
        Target {
            service: release.service,
            delta,
            counted,
            recent,
        }
    }
}

/// The release delta of one resource, and the error keys of its service.
struct Target<'s> {
    service: String,
    delta: &'s mut ReleaseDelta,
    counted: &'s mut HashSet<u64>,
    recent: &'s RecentErrors,
}

/// When a record happened, and on which instance.
fn occurrence(time_unix_nano: u64, received_at_unix_ms: i64, instance: &str) -> Occurrence<'_> {
    let unix_ms = record_time_ms(time_unix_nano, received_at_unix_ms);
    Occurrence {
        bucket_start_unix_ms: bucket_start(unix_ms),
        unix_ms,
        instance,
    }
}

impl Target<'_> {
    fn add(&mut self, at: &Occurrence<'_>, counts: &Counts) {
        self.delta
            .buckets
            .entry(at.bucket_start_unix_ms)
            .or_default()
            .add(counts);
    }

    /// Counts `error` in its issue unless its (trace, fingerprint) was counted already;
    /// true when it also counts in the rate, i.e. when it is the first error of its trace
    /// (or has no trace).
    fn error(
        &mut self,
        at: &Occurrence<'_>,
        (trace_id, span_id): (&[u8], &[u8]),
        error: ErrorInfo,
    ) -> bool {
        let (failure, issue) = match error_keys(trace_id, &error.fingerprint.id) {
            Some(keys) => (self.first(keys.failure), self.first(keys.issue)),
            None => (true, true),
        };
        if issue {
            self.issue(at, (trace_id, span_id), error);
        }
        failure
    }

    /// True, and `key` remembered for the batch, unless it was counted before.
    fn first(&mut self, key: u64) -> bool {
        if self.counted.contains(&key) || self.recent.contains(&self.service, key) {
            return false;
        }
        self.counted.insert(key)
    }

    /// Counts `error` in its issue, with a sample while the issue takes samples.
    fn issue(
        &mut self,
        at: &Occurrence<'_>,
        (trace_id, span_id): (&[u8], &[u8]),
        error: ErrorInfo,
    ) {
        let issues = &mut self.delta.issues;
        // Bounded within the batch too; the store applies the release's cap over time.
        let id = if issues.contains_key(&error.fingerprint.id)
            || issues.len() < MAX_FINGERPRINTS_PER_RELEASE as usize
        {
            error.fingerprint.id.as_str()
        } else {
            OTHER_FINGERPRINT
        };
        if !issues.contains_key(id) {
            let fresh = if id == OTHER_FINGERPRINT {
                IssueDelta::new(OTHER_TITLE, "")
            } else {
                IssueDelta::new(&error.fingerprint.title, &error.exception_type)
            };
            issues.insert(id.to_owned(), fresh);
        }
        if let Some(issue) = issues.get_mut(id) {
            issue.record(at, || IssueSample {
                message: error.message,
                stack: error.stack,
                trace_id: hex(trace_id),
                span_id: hex(span_id),
                instance: at.instance.to_owned(),
                unix_ms: at.unix_ms,
            });
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    if bytes.iter().all(|&b| b == 0) {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn is_error_log(record: &LogRecord) -> bool {
    if record.severity_number >= SEVERITY_NUMBER_ERROR {
        return true;
    }
    record.severity_number == 0
        && ERROR_SEVERITY_TEXTS
            .iter()
            .any(|text| record.severity_text.trim().eq_ignore_ascii_case(text))
}

pub fn is_error_span(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|status| status.code == StatusCode::Error as i32)
}

/// The bucket a record belongs to, by its own time unless that time is unusable.
pub fn record_bucket(time_unix_nano: u64, received_at_unix_ms: i64) -> i64 {
    bucket_start(record_time_ms(time_unix_nano, received_at_unix_ms))
}

/// A record's time in Unix ms: its own unless 0 or more than an hour in the future.
pub fn record_time_ms(time_unix_nano: u64, received_at_unix_ms: i64) -> i64 {
    let received_ns = (received_at_unix_ms.max(0) as u64).saturating_mul(1_000_000);
    if time_unix_nano == 0 || time_unix_nano > received_ns.saturating_add(FUTURE_TOLERANCE_NS) {
        received_at_unix_ms
    } else {
        (time_unix_nano / 1_000_000) as i64
    }
}

/// `service.instance.id` of a resource; empty when absent.
fn instance_of(resource: Option<&Resource>) -> String {
    let attributes = resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
    attribute(attributes, "service.instance.id").unwrap_or_default()
}

/// The release and release metadata named by a resource's attributes.
pub fn release_of(resource: Option<&Resource>) -> (ReleaseKey, ResourceIdentity) {
    let attributes = resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
    let get = |key: &str| attribute(attributes, key);
    let or_unknown = |value: Option<String>| value.unwrap_or_else(|| UNKNOWN.to_owned());
    let release = ReleaseKey {
        service: or_unknown(get("service.name")),
        environment: or_unknown(
            get("deployment.environment.name").or_else(|| get("deployment.environment")),
        ),
        version: or_unknown(get("service.version")),
    };
    let identity = ResourceIdentity {
        commit: get("vcs.ref.head.revision"),
        deploy_id: get("deployment.id"),
        team: get("bellwether.team"),
    };
    (release, identity)
}

#[cfg(test)]
#[path = "summarize_tests.rs"]
mod tests;

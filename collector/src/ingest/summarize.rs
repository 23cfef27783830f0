//! OTLP requests → per-(release, bucket) counts, in memory, before anything is stored.
//!
//! Rules (see the contract): a log is an error when severity_number >= ERROR (17), or when
//! it is unset (0) and severity_text names an error level; a span is an error when its
//! status code is ERROR. A record's time picks its 10 s bucket; a time of 0 or more than
//! an hour past the receive time falls back to the receive time. Missing identity
//! attributes count under "unknown".

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::common::KeyValue;
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::{status::StatusCode, Span};
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;

use crate::store::{bucket_start, Counts, IngestBatch, ReleaseKey, ResourceIdentity};

/// Name used for a missing service, version or environment.
pub const UNKNOWN: &str = "unknown";
const SEVERITY_NUMBER_ERROR: i32 = 17;
const ERROR_SEVERITY_TEXTS: &[&str] = &[
    "error", "err", "fatal", "critical", "crit", "alert", "emerg", "panic",
];
const FUTURE_TOLERANCE_NS: u64 = 3_600 * 1_000_000_000;

/// Summarizes a logs export request received at `received_at_unix_ms`.
pub fn summarize_logs(
    request: &ExportLogsServiceRequest,
    batch_id: Option<String>,
    received_at_unix_ms: i64,
) -> IngestBatch {
    let mut batch = new_batch(batch_id, received_at_unix_ms);
    for resource_logs in &request.resource_logs {
        let (release, identity) = release_of(resource_logs.resource.as_ref());
        let records = resource_logs.scope_logs.iter().flat_map(|s| &s.log_records);
        for record in records {
            let time = if record.time_unix_nano != 0 {
                record.time_unix_nano
            } else {
                record.observed_time_unix_nano
            };
            let counts = Counts {
                log_records: 1,
                error_logs: u64::from(is_error_log(record)),
                ..Counts::default()
            };
            add(&mut batch, &release, &identity, time, &counts);
        }
    }
    batch
}

/// Summarizes a traces export request received at `received_at_unix_ms`.
pub fn summarize_traces(
    request: &ExportTraceServiceRequest,
    batch_id: Option<String>,
    received_at_unix_ms: i64,
) -> IngestBatch {
    let mut batch = new_batch(batch_id, received_at_unix_ms);
    for resource_spans in &request.resource_spans {
        let (release, identity) = release_of(resource_spans.resource.as_ref());
        let spans = resource_spans.scope_spans.iter().flat_map(|s| &s.spans);
        for span in spans {
            let time = if span.end_time_unix_nano != 0 {
                span.end_time_unix_nano
            } else {
                span.start_time_unix_nano
            };
            let counts = Counts {
                spans: 1,
                error_spans: u64::from(is_error_span(span)),
                ..Counts::default()
            };
            add(&mut batch, &release, &identity, time, &counts);
        }
    }
    batch
}

fn new_batch(batch_id: Option<String>, received_at_unix_ms: i64) -> IngestBatch {
    IngestBatch {
        batch_id,
        received_at_unix_ms,
        ..IngestBatch::default()
    }
}

fn add(
    batch: &mut IngestBatch,
    release: &ReleaseKey,
    identity: &ResourceIdentity,
    time_unix_nano: u64,
    counts: &Counts,
) {
    let start = record_bucket(time_unix_nano, batch.received_at_unix_ms);
    // Look up before inserting so the common case does not clone the key.
    let delta = match batch.releases.get_mut(release) {
        Some(delta) => delta,
        None => batch.releases.entry(release.clone()).or_default(),
    };
    delta.identity.merge(identity);
    delta.buckets.entry(start).or_default().add(counts);
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
    let received_ns = (received_at_unix_ms.max(0) as u64).saturating_mul(1_000_000);
    let ms = if time_unix_nano == 0
        || time_unix_nano > received_ns.saturating_add(FUTURE_TOLERANCE_NS)
    {
        received_at_unix_ms
    } else {
        (time_unix_nano / 1_000_000) as i64
    };
    bucket_start(ms)
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

/// A scalar attribute as a non-empty string; NUL (the store's key separator) is replaced.
fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    let text = match value {
        Value::StringValue(s) => s.trim().to_owned(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BoolValue(b) => b.to_string(),
        _ => return None,
    };
    if text.is_empty() {
        return None;
    }
    Some(text.replace('\0', "\u{fffd}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_proto::otlp::common::AnyValue;
    use bellwether_proto::otlp::logs::{ResourceLogs, ScopeLogs};
    use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans, Status};

    const NOW_MS: i64 = 1_700_000_005_000;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    fn resource(attrs: &[(&str, &str)]) -> Option<Resource> {
        Some(Resource {
            attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
            ..Resource::default()
        })
    }

    fn log(number: i32, text: &str, time: u64) -> LogRecord {
        LogRecord {
            severity_number: number,
            severity_text: text.into(),
            time_unix_nano: time,
            ..LogRecord::default()
        }
    }

    fn logs_request(
        resource: Option<Resource>,
        records: Vec<LogRecord>,
    ) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource,
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
    }

    #[test]
    fn error_logs_by_number_or_text() {
        assert!(is_error_log(&log(17, "", 0)));
        assert!(is_error_log(&log(21, "info", 0)));
        assert!(
            !is_error_log(&log(13, "error", 0)),
            "a set number wins over the text"
        );
        for text in [
            "error", "ERR", "Fatal", "critical", "crit", "alert", "emerg", "PANIC",
        ] {
            assert!(is_error_log(&log(0, text, 0)), "{text}");
        }
        assert!(!is_error_log(&log(0, "warn", 0)));
        assert!(!is_error_log(&log(0, "errors", 0)));
    }

    #[test]
    fn error_spans_by_status() {
        let span = |code: Option<StatusCode>| Span {
            status: code.map(|c| Status {
                code: c as i32,
                ..Status::default()
            }),
            ..Span::default()
        };
        assert!(is_error_span(&span(Some(StatusCode::Error))));
        assert!(!is_error_span(&span(Some(StatusCode::Ok))));
        assert!(!is_error_span(&span(Some(StatusCode::Unset))));
        assert!(!is_error_span(&span(None)));
    }

    #[test]
    fn bucket_times() {
        // 1_700_000_003_500 ms → bucket 1_700_000_000_000
        assert_eq!(
            record_bucket(1_700_000_003_500_000_000, NOW_MS),
            1_700_000_000_000
        );
        // zero and far future use the receive time
        assert_eq!(record_bucket(0, NOW_MS), 1_700_000_000_000);
        let far = (NOW_MS as u64 + 3_600_001) * 1_000_000;
        assert_eq!(record_bucket(far, NOW_MS), 1_700_000_000_000);
        // just under an hour ahead is still the record's own time
        let near = (NOW_MS as u64 + 3_590_000) * 1_000_000;
        assert_eq!(record_bucket(near, NOW_MS), 1_700_003_590_000);
        // old records keep their own time
        assert_eq!(record_bucket(10_500_000_000, NOW_MS), 10_000);
    }

    #[test]
    fn logs_fall_back_to_observed_time() {
        let mut record = log(9, "", 0);
        record.observed_time_unix_nano = 1_600_000_001_000_000_000;
        let batch = summarize_logs(&logs_request(None, vec![record]), None, NOW_MS);
        let delta = batch.releases.values().next();
        assert_eq!(
            delta.and_then(|d| d.buckets.keys().next().copied()),
            Some(1_600_000_000_000)
        );
    }

    #[test]
    fn unknown_identity_and_resource_metadata() {
        let batch = summarize_logs(&logs_request(None, vec![log(17, "", 0)]), None, NOW_MS);
        let unknown = ReleaseKey::new(UNKNOWN, UNKNOWN, UNKNOWN);
        assert_eq!(
            batch.releases.get(&unknown).map(|d| d.buckets.len()),
            Some(1)
        );

        let res = resource(&[
            ("service.name", "checkout"),
            ("service.version", "1.4.2"),
            ("deployment.environment", "staging"),
            ("vcs.ref.head.revision", "abc123"),
            ("deployment.id", "deploy-7"),
            ("bellwether.team", "payments"),
        ]);
        let request = logs_request(res, vec![log(17, "", 0), log(9, "", 0), log(0, "error", 0)]);
        let batch = summarize_logs(&request, Some("b1".into()), NOW_MS);
        let key = ReleaseKey::new("checkout", "staging", "1.4.2");
        let delta = batch.releases.get(&key);
        let counts = delta
            .and_then(|d| d.buckets.get(&1_700_000_000_000))
            .copied();
        assert_eq!(counts.map(|c| (c.log_records, c.error_logs)), Some((3, 2)));
        let identity = delta.map(|d| d.identity.clone()).unwrap_or_default();
        assert_eq!(identity.commit.as_deref(), Some("abc123"));
        assert_eq!(identity.deploy_id.as_deref(), Some("deploy-7"));
        assert_eq!(identity.team.as_deref(), Some("payments"));
        assert_eq!(batch.batch_id.as_deref(), Some("b1"));
    }

    #[test]
    fn new_environment_attribute_wins_and_partial_identity_is_unknown() {
        let res = resource(&[
            ("service.name", "api"),
            ("deployment.environment", "old"),
            ("deployment.environment.name", "prod"),
        ]);
        let (release, _) = release_of(res.as_ref());
        assert_eq!(release, ReleaseKey::new("api", "prod", UNKNOWN));
    }

    #[test]
    fn spans_use_end_then_start_time() {
        let span = |start: u64, end: u64, code: StatusCode| Span {
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            status: Some(Status {
                code: code as i32,
                ..Status::default()
            }),
            ..Span::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(&[("service.name", "api"), ("service.version", "2")]),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(
                            1_000_000_000_000_000_000,
                            1_000_000_020_000_000_000,
                            StatusCode::Error,
                        ),
                        span(1_000_000_000_000_000_000, 0, StatusCode::Ok),
                    ],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let batch = summarize_traces(&request, None, NOW_MS);
        let delta = batch.releases.get(&ReleaseKey::new("api", UNKNOWN, "2"));
        let buckets: Vec<(i64, u64, u64)> = delta
            .map(|d| {
                d.buckets
                    .iter()
                    .map(|(k, c)| (*k, c.spans, c.error_spans))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            buckets,
            vec![(1_000_000_000_000, 1, 0), (1_000_000_020_000, 1, 1)]
        );
    }
}

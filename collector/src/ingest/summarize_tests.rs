use super::*;
use bellwether_proto::otlp::common::AnyValue;
use bellwether_proto::otlp::logs::{ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans, Status};
use std::collections::BTreeMap;

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::common::KeyValue;

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

fn logs_request(resource: Option<Resource>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
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

fn traced_error(trace: u8, body: &str) -> LogRecord {
    LogRecord {
        severity_number: 17,
        time_unix_nano: 1_700_000_001_000_000_000,
        trace_id: if trace == 0 { vec![] } else { vec![trace; 16] },
        span_id: vec![7; 8],
        body: Some(AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        ..LogRecord::default()
    }
}

fn service_resource() -> Option<Resource> {
    resource(&[
        ("service.name", "api"),
        ("service.version", "1"),
        ("deployment.environment.name", "prod"),
        ("service.instance.id", "pod-a"),
    ])
}

fn totals(batch: &IngestBatch) -> Counts {
    let mut total = Counts::default();
    for delta in batch.releases.values() {
        for counts in delta.buckets.values() {
            total.add(counts);
        }
    }
    total
}

#[test]
fn errors_count_once_per_trace_in_the_rate_and_per_fingerprint_in_issues() {
    let records = vec![
        traced_error(1, "payment 1 declined"),
        traced_error(1, "payment 2 declined"), // same trace, same fingerprint: retry
        traced_error(1, "cart empty"),         // same trace, another fingerprint
        traced_error(2, "payment 3 declined"), // another trace
        traced_error(0, "payment 4 declined"), // no trace: always counts
        traced_error(0, "payment 5 declined"),
        log(9, "", 1_700_000_001_000_000_000),
    ];
    let recent = RecentErrors::default();
    let request = logs_request(service_resource(), records);
    let summary = summarize_logs_with(&request, None, NOW_MS, &recent);
    let counts = totals(&summary.batch);
    // Rate: trace 1 once, trace 2 once, the two untraced records each.
    assert_eq!(
        (counts.log_records, counts.error_logs, counts.errors),
        (7, 6, 4)
    );
    let delta = summary.batch.releases.values().next();
    let issues: Vec<(String, u64)> = delta
        .map(|d| {
            d.issues
                .values()
                .map(|i| (i.title.clone(), i.count))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(issues.len(), 2);
    assert!(issues.contains(&("payment <int> declined".to_owned(), 4)));
    assert!(issues.contains(&("cart empty".to_owned(), 1)));
    let sample = delta
        .and_then(|d| d.issues.values().find(|i| i.count == 4))
        .and_then(|i| i.samples.first().cloned())
        .unwrap_or_default();
    assert_eq!(sample.trace_id, "01".repeat(16));
    assert_eq!(sample.span_id, "07".repeat(8));
    assert_eq!(sample.instance, "pod-a");
    assert_eq!(sample.message, "payment 1 declined");

    // Once the batch is stored, the same pairs in a later batch (a retry) do not count.
    recent.insert_all(&summary.counted);
    let retry = logs_request(
        service_resource(),
        vec![
            traced_error(1, "payment 9 declined"),
            traced_error(2, "payment 9 declined"),
            traced_error(3, "payment 9 declined"),
            traced_error(0, "payment 9 declined"),
        ],
    );
    let again = summarize_logs_with(&retry, None, NOW_MS, &recent);
    let counts = totals(&again.batch);
    assert_eq!((counts.error_logs, counts.errors), (4, 2));
    // Another service's identical trace ids are not damped.
    let other = logs_request(
        resource(&[("service.name", "web")]),
        vec![traced_error(1, "payment 9 declined")],
    );
    let counts = totals(&summarize_logs_with(&other, None, NOW_MS, &recent).batch);
    assert_eq!(counts.errors, 1);
}

fn span_with(
    parent: &[u8],
    kind: SpanKind,
    duration_ms: u64,
    status: StatusCode,
    events: Vec<bellwether_proto::otlp::trace::span::Event>,
) -> Span {
    let end = 1_700_000_001_000_000_000u64;
    Span {
        trace_id: vec![9; 16],
        span_id: vec![1; 8],
        parent_span_id: parent.to_vec(),
        kind: kind as i32,
        name: "GET /cart".into(),
        start_time_unix_nano: end - duration_ms * 1_000_000,
        end_time_unix_nano: end,
        status: Some(Status {
            code: status as i32,
            ..Status::default()
        }),
        events,
        ..Span::default()
    }
}

#[test]
fn server_spans_exposure_latency_and_span_errors() {
    let exception = |kind: &str| bellwether_proto::otlp::trace::span::Event {
        name: "exception".into(),
        attributes: vec![kv("exception.type", kind)],
        ..Default::default()
    };
    let spans = vec![
        span_with(&[], SpanKind::Internal, 120, StatusCode::Ok, vec![]), // root
        span_with(&[0; 8], SpanKind::Client, 5, StatusCode::Ok, vec![]), // zero parent: root
        span_with(&[3; 8], SpanKind::Server, 80, StatusCode::Error, vec![]), // server
        span_with(&[3; 8], SpanKind::Client, 30, StatusCode::Error, vec![]), // child
        span_with(
            &[3; 8],
            SpanKind::Internal,
            1,
            StatusCode::Ok,
            vec![exception("A"), exception("B"), exception("A")],
        ),
    ];
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: service_resource(),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let summary = summarize_traces_with(&request, None, NOW_MS, &RecentErrors::default());
    let counts = totals(&summary.batch);
    assert_eq!((counts.spans, counts.server_spans), (5, 3));
    // Error spans raw: 2. Every span is in one trace, so the failed spans and the
    // exception events A, B, A are one failure in the rate.
    assert_eq!((counts.error_spans, counts.errors), (2, 1));
    let issues: Vec<u64> = summary
        .batch
        .releases
        .values()
        .flat_map(|d| d.issues.values().map(|i| i.count))
        .collect();
    // Issues: the failed spans' (empty type, span name) fingerprint once, A once, B once.
    assert_eq!(issues, vec![1, 1, 1]);
    let delta = summary.batch.releases.values().next();
    let latency = delta
        .and_then(|d| d.latency.values().next().cloned())
        .unwrap_or_default();
    let mut values = latency.values_us.clone();
    values.sort_unstable();
    assert_eq!((latency.seen, values), (3, vec![5_000, 80_000, 120_000]));
}

#[test]
fn resources_without_records_create_no_release() {
    let request = logs_request(service_resource(), vec![]);
    assert!(summarize_logs(&request, None, NOW_MS).releases.is_empty());
}

fn traces_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: service_resource(),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// A failed SERVER span of trace `trace` with an `exception` event, as SDKs record one.
fn failed_request_span(trace: u8) -> Span {
    let exception = bellwether_proto::otlp::trace::span::Event {
        name: "exception".into(),
        attributes: vec![
            kv("exception.type", "PaymentError"),
            kv("exception.message", "card declined"),
        ],
        ..Default::default()
    };
    let mut span = span_with(
        &[],
        SpanKind::Server,
        20,
        StatusCode::Error,
        vec![exception],
    );
    span.trace_id = if trace == 0 { vec![] } else { vec![trace; 16] };
    span
}

/// The exception log record of the same failure: with a stack trace, so its fingerprint
/// differs from the span event's.
fn failed_request_log(trace: u8) -> LogRecord {
    let mut record = traced_error(trace, "payment failed");
    record.attributes = vec![
        kv("exception.type", "PaymentError"),
        kv("exception.message", "card declined"),
        kv(
            "exception.stacktrace",
            "PaymentError: card declined\n    at charge (/app/src/payments.js:42:7)\n    \
             at checkout (/app/src/checkout.js:10:3)",
        ),
    ];
    record
}

fn issue_counts(summaries: &[&Summary]) -> Vec<u64> {
    let mut counts: Vec<u64> = summaries
        .iter()
        .flat_map(|s| s.batch.releases.values())
        .flat_map(|d| d.issues.values().map(|i| i.count))
        .collect();
    counts.sort_unstable();
    counts
}

fn errors_of(summaries: &[&Summary]) -> u64 {
    summaries.iter().map(|s| totals(&s.batch).errors).sum()
}

#[test]
fn a_failing_request_counts_once_in_the_rate_and_in_each_of_its_issues() {
    let recent = RecentErrors::default();
    let traces = traces_request(vec![failed_request_span(1)]);
    let spans = summarize_traces_with(&traces, None, NOW_MS, &recent);
    recent.insert_all(&spans.counted);
    let logs = logs_request(service_resource(), vec![failed_request_log(1)]);
    let logs = summarize_logs_with(&logs, None, NOW_MS, &recent);
    assert_eq!(totals(&spans.batch).error_spans, 1);
    assert_eq!(totals(&logs.batch).error_logs, 1);
    assert_eq!(errors_of(&[&spans, &logs]), 1);
    // The span's exception event and the log have different fingerprints: two issues.
    assert_eq!(issue_counts(&[&spans, &logs]), vec![1, 1]);
}

#[test]
fn logs_and_traces_of_a_request_count_once_in_either_order() {
    let traces = traces_request(vec![failed_request_span(1)]);
    let logs = logs_request(service_resource(), vec![failed_request_log(1)]);

    let recent = RecentErrors::default();
    let first = summarize_logs_with(&logs, None, NOW_MS, &recent);
    recent.insert_all(&first.counted);
    let second = summarize_traces_with(&traces, None, NOW_MS, &recent);
    assert_eq!(errors_of(&[&first, &second]), 1, "logs, then traces");
    assert_eq!(issue_counts(&[&first, &second]), vec![1, 1]);

    let recent = RecentErrors::default();
    let first = summarize_traces_with(&traces, None, NOW_MS, &recent);
    recent.insert_all(&first.counted);
    let second = summarize_logs_with(&logs, None, NOW_MS, &recent);
    assert_eq!(errors_of(&[&first, &second]), 1, "traces, then logs");

    // A batch that was not stored is not remembered: sent again, it still counts.
    let recent = RecentErrors::default();
    let lost = summarize_traces_with(&traces, None, NOW_MS, &recent);
    let again = summarize_traces_with(&traces, None, NOW_MS, &recent);
    assert_eq!((errors_of(&[&lost]), errors_of(&[&again])), (1, 1));
    recent.insert_all(&again.counted);
    let logs = summarize_logs_with(&logs, None, NOW_MS, &recent);
    assert_eq!(errors_of(&[&logs]), 0);
}

#[test]
fn failing_requests_of_different_traces_count_apart() {
    let recent = RecentErrors::default();
    let traces = traces_request(vec![failed_request_span(1), failed_request_span(2)]);
    let spans = summarize_traces_with(&traces, None, NOW_MS, &recent);
    recent.insert_all(&spans.counted);
    let logs = logs_request(
        service_resource(),
        vec![failed_request_log(2), failed_request_log(1)],
    );
    let logs = summarize_logs_with(&logs, None, NOW_MS, &recent);
    assert_eq!(errors_of(&[&spans, &logs]), 2);
    assert_eq!(issue_counts(&[&spans, &logs]), vec![2, 2]);
}

#[test]
fn errors_without_a_trace_count_every_record() {
    let recent = RecentErrors::default();
    let traces = traces_request(vec![failed_request_span(0), failed_request_span(0)]);
    let spans = summarize_traces_with(&traces, None, NOW_MS, &recent);
    recent.insert_all(&spans.counted);
    assert!(spans.counted.values().all(HashSet::is_empty));
    let logs = logs_request(
        service_resource(),
        vec![
            failed_request_log(0),
            failed_request_log(0),
            failed_request_log(0),
        ],
    );
    let logs = summarize_logs_with(&logs, None, NOW_MS, &recent);
    assert_eq!(errors_of(&[&spans]), 2);
    assert_eq!(errors_of(&[&logs]), 3);
    assert_eq!(issue_counts(&[&spans, &logs]), vec![2, 3]);
}

/// (calls, errors) per name, summed over the buckets.
fn named_counts(
    by_bucket: &BTreeMap<i64, BTreeMap<String, bellwether_model::dependency::DependencyCounts>>,
) -> BTreeMap<&str, (u64, u64)> {
    let mut out: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (name, counts) in by_bucket.values().flatten() {
        let entry = out.entry(name.as_str()).or_default();
        entry.0 += counts.calls;
        entry.1 += counts.errors;
    }
    out
}

#[test]
fn client_and_producer_spans_are_calls_to_their_dependency() {
    let call = |kind: SpanKind, status: StatusCode, attrs: &[(&str, &str)]| {
        let mut span = span_with(&[7; 8], kind, 3, status, vec![]);
        span.attributes = attrs.iter().map(|(k, v)| kv(k, v)).collect();
        span
    };
    let long = "x".repeat(300);
    let spans = vec![
        call(
            SpanKind::Client,
            StatusCode::Error,
            &[
                ("peer.service", "payments-api"),
                ("server.address", "10.0.0.7"),
            ],
        ),
        call(
            SpanKind::Client,
            StatusCode::Ok,
            &[("peer.service", "payments-api")],
        ),
        call(
            SpanKind::Client,
            StatusCode::Ok,
            &[("server.address", "api.stripe.com"), ("server.port", "443")],
        ),
        call(
            SpanKind::Client,
            StatusCode::Ok,
            &[("db.system.name", "postgresql"), ("db.namespace", "orders")],
        ),
        call(
            SpanKind::Client,
            StatusCode::Error,
            &[("db.system", "redis")],
        ),
        call(
            SpanKind::Client,
            StatusCode::Ok,
            &[("rpc.service", "inventory.v1.Stock")],
        ),
        call(
            SpanKind::Producer,
            StatusCode::Ok,
            &[("messaging.destination.name", "orders.created")],
        ),
        call(SpanKind::Client, StatusCode::Ok, &[]),
        call(SpanKind::Client, StatusCode::Ok, &[("peer.service", &long)]),
        // Not calls: a server span and an internal one, whatever they name.
        call(
            SpanKind::Server,
            StatusCode::Error,
            &[("peer.service", "payments-api")],
        ),
        call(
            SpanKind::Internal,
            StatusCode::Ok,
            &[("peer.service", "payments-api")],
        ),
    ];
    let summary = summarize_traces(&traces_request(spans), None, NOW_MS);
    let delta = summary.releases.values().next().expect("one release");
    let calls = named_counts(&delta.dependencies);
    let cut = "x".repeat(200);
    let expected: BTreeMap<&str, (u64, u64)> = [
        ("payments-api", (2, 1)),
        ("api.stripe.com:443", (1, 0)),
        ("postgresql/orders", (1, 0)),
        ("redis", (1, 1)),
        ("inventory.v1.Stock", (1, 0)),
        ("orders.created", (1, 0)),
        ("other", (1, 0)),
        (cut.as_str(), (1, 0)),
    ]
    .into_iter()
    .collect();
    assert_eq!(calls, expected);
}

#[test]
fn a_request_counts_once_for_each_flag_variant_its_trace_evaluated() {
    use bellwether_proto::otlp::trace::span::Event;
    let evaluation = |name: &str, attrs: &[(&str, &str)]| Event {
        name: name.into(),
        attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
        ..Event::default()
    };
    let in_trace = |trace: u8, mut span: Span| {
        span.trace_id = vec![trace; 16];
        span
    };
    // Trace 1: a failed request whose child span evaluated new-checkout=on twice and
    // dark-mode=true (the older attribute and event names).
    let mut child = in_trace(
        1,
        span_with(&[7; 8], SpanKind::Internal, 1, StatusCode::Ok, vec![]),
    );
    child.events = vec![
        evaluation(
            "feature_flag.evaluation",
            &[
                ("feature_flag.key", "new-checkout"),
                ("feature_flag.result.variant", "on"),
            ],
        ),
        evaluation(
            "feature_flag.evaluation",
            &[
                ("feature_flag.key", "new-checkout"),
                ("feature_flag.result.variant", "on"),
            ],
        ),
        evaluation(
            "feature_flag",
            &[
                ("feature_flag.key", "dark-mode"),
                ("feature_flag.variant", "true"),
            ],
        ),
    ];
    let request = in_trace(
        1,
        span_with(&[], SpanKind::Server, 20, StatusCode::Error, vec![]),
    );
    // Trace 2: the request evaluated new-checkout=off on its own span, and went well.
    let mut other = in_trace(
        2,
        span_with(&[], SpanKind::Server, 20, StatusCode::Ok, vec![]),
    );
    other.events = vec![evaluation(
        "feature_flag.evaluation",
        &[
            ("feature_flag.key", "new-checkout"),
            ("feature_flag.result.variant", "off"),
        ],
    )];
    // Trace 3: only a failed child span made it into this export: it counts itself.
    let mut orphan = in_trace(
        3,
        span_with(&[7; 8], SpanKind::Internal, 1, StatusCode::Error, vec![]),
    );
    orphan.events = vec![evaluation(
        "feature_flag.evaluation",
        &[
            ("feature_flag.key", "new-checkout"),
            ("feature_flag.result.value", "on"),
        ],
    )];
    // Not evaluations: another event, and one without a variant.
    let mut noise = in_trace(
        4,
        span_with(&[], SpanKind::Server, 20, StatusCode::Ok, vec![]),
    );
    noise.events = vec![
        evaluation(
            "exception",
            &[("feature_flag.key", "x"), ("feature_flag.variant", "y")],
        ),
        evaluation("feature_flag.evaluation", &[("feature_flag.key", "x")]),
    ];
    let summary = summarize_traces(
        &traces_request(vec![child, request, other, orphan, noise]),
        None,
        NOW_MS,
    );
    let delta = summary.releases.values().next().expect("one release");
    let seen = named_counts(&delta.flags);
    let expected: BTreeMap<&str, (u64, u64)> = [
        ("new-checkout\0on", (2, 2)),
        ("new-checkout\0off", (1, 0)),
        ("dark-mode\0true", (1, 1)),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, expected);
}

#[test]
fn flag_evaluations_in_log_records_count_once_per_trace() {
    let at = 1_700_000_001_000_000_000u64;
    let flagged = |trace: Option<u8>, variant: &str| {
        let mut record = log(9, "INFO", at);
        record.attributes = vec![
            kv("event.name", "feature_flag.evaluation"),
            kv("feature_flag.key", "new-checkout"),
            kv("feature_flag.result.variant", variant),
        ];
        record.trace_id = trace.map(|t| vec![t; 16]).unwrap_or_default();
        record
    };
    let mut failure = log(17, "ERROR", at);
    failure.trace_id = vec![1; 16];
    let records = vec![
        flagged(Some(1), "on"),
        flagged(Some(1), "on"),
        failure,
        flagged(Some(2), "off"),
        flagged(None, "on"),
    ];
    let summary = summarize_logs(&logs_request(service_resource(), records), None, NOW_MS);
    let delta = summary.releases.values().next().expect("one release");
    let seen = named_counts(&delta.flags);
    let expected: BTreeMap<&str, (u64, u64)> =
        [("new-checkout\0on", (2, 1)), ("new-checkout\0off", (1, 0))]
            .into_iter()
            .collect();
    assert_eq!(seen, expected);
}

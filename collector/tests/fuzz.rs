//! Fuzz-style properties with fixed case counts (a few seconds in all): OTLP protobuf and
//! JSON decoding + limits + summarizing on arbitrary bytes and on mutated valid requests,
//! the config loader on arbitrary TOML-ish text, and message parameterizing. None may
//! panic, and what they produce stays bounded by what they were given.

mod common;

use std::path::Path;

use bellwether_collector::auth;
use bellwether_collector::config::{self, Overrides};
use bellwether_collector::ingest::summarize::{summarize_logs, summarize_traces};
use bellwether_collector::ingest::wire::decode_logs;
use bellwether_collector::limits::{self, Limits};
use bellwether_fingerprint::{parameterize, Fingerprint};
use bellwether_proto::otlp::common::{any_value, AnyValue, KeyValue, KeyValueList};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use prost::Message;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

const NOW_MS: i64 = 1_700_000_000_000;

/// Decodes, caps and summarizes as the receivers do; the summary never holds more
/// releases than the request had resources.
fn ingest_logs(mut request: ExportLogsServiceRequest) {
    let limits = Limits::default();
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    if limits::check_records(&limits, records).is_err() {
        return;
    }
    limits::cap_logs(&limits, &mut request);
    let batch = summarize_logs(&request, Some("b".into()), NOW_MS);
    assert!(batch.releases.len() <= request.resource_logs.len());
}

fn ingest_traces(mut request: ExportTraceServiceRequest) {
    let limits = Limits::default();
    limits::cap_traces(&limits, &mut request);
    let batch = summarize_traces(&request, None, NOW_MS);
    assert!(batch.releases.len() <= request.resource_spans.len());
}

fn valid_logs() -> Vec<u8> {
    let mut request = logs(
        resource("pay", "v1", "prod", &[("service.instance.id", "pod-1")]),
        4,
        2,
        1_700_000_000_000_000_000,
    );
    for (i, record) in request.resource_logs[0].scope_logs[0]
        .log_records
        .iter_mut()
        .enumerate()
    {
        record.attributes = vec![
            kv("exception.type", "java.lang.IllegalStateException"),
            kv(
                "exception.message",
                &format!("order {i} failed at 10.0.0.{i}"),
            ),
            kv(
                "exception.stacktrace",
                "java.lang.IllegalStateException: boom\n\tat com.shop.Pay.run(Pay.java:12)\n",
            ),
        ];
        record.trace_id = vec![i as u8 + 1; 16];
    }
    request.encode_to_vec()
}

/// Info records with bodies and nested attributes between error records: the
/// receivers' own decoding keeps little of the former and all of the latter.
fn valid_mixed_logs() -> Vec<u8> {
    let mut request = ExportLogsServiceRequest::decode(valid_logs().as_slice()).unwrap_or_default();
    let user = AnyValue {
        value: Some(any_value::Value::KvlistValue(KeyValueList {
            values: vec![kv("id", "u-7"), kv("plan", "pro")],
        })),
    };
    for record in request.resource_logs[0].scope_logs[0]
        .log_records
        .iter_mut()
        .skip(2)
    {
        record.severity_text = "info".into();
        record.body = Some(AnyValue {
            value: Some(any_value::Value::StringValue("handled request 7".into())),
        });
        record.attributes = vec![
            kv("path", "/api/v1/orders/7"),
            KeyValue {
                key: "user".into(),
                value: Some(user.clone()),
                ..KeyValue::default()
            },
        ];
    }
    request.encode_to_vec()
}

/// The receivers' decoding accepts what prost accepts, and what it keeps summarizes the same.
fn decodes_as_prost_does(bytes: &[u8]) -> Result<(), TestCaseError> {
    let ours = decode_logs(bytes);
    let prost = ExportLogsServiceRequest::decode(bytes);
    prop_assert_eq!(
        ours.is_ok(),
        prost.is_ok(),
        "ours {:?}, prost {:?}",
        ours,
        prost
    );
    if let (Ok(ours), Ok(prost)) = (ours, prost) {
        prop_assert_eq!(
            summarize_logs(&ours, None, NOW_MS),
            summarize_logs(&prost, None, NOW_MS)
        );
    }
    Ok(())
}

fn valid_traces() -> Vec<u8> {
    spans(
        resource("pay", "v1", "prod", &[]),
        3,
        1,
        1_700_000_000_000_000_000,
    )
    .encode_to_vec()
}

/// A valid message with a few bytes overwritten, removed or inserted.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    proptest::collection::vec((0..len.max(1), any::<u8>(), 0..3u8), 1..8).prop_map(move |edits| {
        let mut bytes = base.clone();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len().saturating_sub(1));
            match kind {
                0 if !bytes.is_empty() => bytes[at] = byte,
                1 if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, byte),
            }
        }
        bytes
    })
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn protobuf_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = ExportLogsServiceRequest::decode(bytes.as_slice()) {
            ingest_logs(request);
        }
        if let Ok(request) = ExportTraceServiceRequest::decode(bytes.as_slice()) {
            ingest_traces(request);
        }
    }

    #[test]
    fn protobuf_mutated_logs(bytes in mutated(valid_logs())) {
        if let Ok(request) = ExportLogsServiceRequest::decode(bytes.as_slice()) {
            ingest_logs(request);
        }
    }

    #[test]
    fn protobuf_mutated_logs_decode_as_prost_does(bytes in mutated(valid_mixed_logs())) {
        decodes_as_prost_does(&bytes)?;
    }

    #[test]
    fn protobuf_arbitrary_bytes_decode_as_prost_does(
        bytes in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        decodes_as_prost_does(&bytes)?;
    }

    #[test]
    fn protobuf_mutated_traces(bytes in mutated(valid_traces())) {
        if let Ok(request) = ExportTraceServiceRequest::decode(bytes.as_slice()) {
            ingest_traces(request);
        }
    }

    #[test]
    fn json_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(request) = serde_json::from_slice::<ExportLogsServiceRequest>(&bytes) {
            ingest_logs(request);
        }
        if let Ok(request) = serde_json::from_slice::<ExportTraceServiceRequest>(&bytes) {
            ingest_traces(request);
        }
    }
}

fn valid_json() -> Vec<u8> {
    let request = ExportLogsServiceRequest::decode(valid_logs().as_slice()).unwrap_or_default();
    serde_json::to_vec(&request).unwrap_or_default()
}

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn json_mutated_logs(bytes in mutated(valid_json())) {
        if let Ok(request) = serde_json::from_slice::<ExportLogsServiceRequest>(&bytes) {
            ingest_logs(request);
        }
    }
}

/// Lines a collector config might hold, with values of every kind in the wrong places.
fn toml_ish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("data_dir"),
        Just("http_addr"),
        Just("otlp_grpc_addr"),
        Just("otlp_http_addr"),
        Just("name"),
        Just("scopes"),
        Just("sha256"),
        Just("token_env"),
        Just("token_file"),
        Just("max_services"),
        Just("max_request_bytes"),
        Just("buckets"),
        Just("interval"),
        Just("min_duration"),
        Just("alpha"),
        Just("rho"),
        Just("default_team"),
        Just("match"),
        Just("team"),
        Just("kind"),
        Just("url"),
        Just("x"),
    ];
    let value = prop_oneof![
        Just("\"127.0.0.1:0\"".to_owned()),
        Just("\"30s\"".to_owned()),
        Just("\"1h\"".to_owned()),
        Just("[\"read\", \"admin\"]".to_owned()),
        Just("[]".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("1e309".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("true".to_owned()),
        Just("\"\"".to_owned()),
        Just("{ a = 1 }".to_owned()),
        "\"[ -~]{0,20}\"",
        "[0-9]{1,25}",
    ];
    let table = prop_oneof![
        Just("[auth]"),
        Just("[[auth.tokens]]"),
        Just("[limits]"),
        Just("[retention]"),
        Just("[detection]"),
        Just("[[detection.services]]"),
        Just("[routing]"),
        Just("[[teams]]"),
        Just("[[receivers]]"),
        Just("[[routing.services]]"),
        Just("[x]"),
    ];
    let line = prop_oneof![
        3 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => table.prop_map(str::to_owned),
        1 => "[ -~]{0,30}",
    ];
    proptest::collection::vec(line, 0..14).prop_map(|lines| lines.join("\n"))
}

/// The whole loader as `bellwether serve` runs it; errors are fine, panics are not.
fn load_config(text: &str) {
    let path = Path::new("/nonexistent/bellwether.toml");
    let Ok(file) = config::parse_file(path, text) else {
        return;
    };
    let env = |name: &str| (name == "T").then(|| "a-token-of-enough-length".to_owned());
    let _ = config::load_alerting(&file, Some(text), Some(path), &env);
    let _ = auth::config::load(file.auth.as_ref(), path.parent(), &env);
    let _ = config::resolve(Overrides::default(), file);
}

proptest! {
    #![proptest_config(config(1_500))]

    #[test]
    fn config_loader_on_toml_ish_text(text in toml_ish()) {
        load_config(&text);
    }

    #[test]
    fn config_loader_on_arbitrary_text(text in "\\PC{0,200}") {
        load_config(&text);
    }

    #[test]
    fn parameterize_is_total_and_bounded(message in "\\PC{0,300}") {
        let out = parameterize(&message);
        // Placeholders are short; the output never grows much past the input.
        prop_assert!(out.len() <= message.len() * 4 + 16, "{} -> {}", message.len(), out.len());
        // Idempotent enough to be a stable key: parameterizing again changes nothing.
        prop_assert_eq!(parameterize(&out), out.clone());
        let fingerprint = Fingerprint::compute("E", &message, &[]);
        prop_assert_eq!(fingerprint.id, Fingerprint::compute("E", &message, &[]).id);
    }
}

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::common::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use prost::Message;

use super::*;
use crate::ingest::summarize::summarize_logs;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(value: &str) -> Value {
    Value::StringValue(value.to_owned())
}

/// Records of every shape: plain and nested attributes, every value kind, errors by
/// number, by text and with a stack trace, ids, and fields prost knows but rarely sees.
fn mixed() -> ExportLogsServiceRequest {
    let nested = Value::KvlistValue(KeyValueList {
        values: vec![
            kv("id", text("u-1")),
            kv(
                "tags",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::IntValue(-3)),
                        },
                        AnyValue {
                            value: Some(Value::BytesValue(vec![0, 255])),
                        },
                    ],
                }),
            ),
        ],
    });
    let info = |i: u64| LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000 + i,
        observed_time_unix_nano: 1_700_000_000_500_000_000,
        severity_number: 9,
        severity_text: "info".into(),
        body: Some(AnyValue {
            value: Some(text(&format!("handled request {i}"))),
        }),
        attributes: vec![
            kv("path", text("/api/v1/orders")),
            kv("status", Value::IntValue(200)),
            kv("ratio", Value::DoubleValue(0.5)),
            kv("cached", Value::BoolValue(true)),
            kv("user", nested.clone()),
            KeyValue {
                key_strindex: 4,
                ..KeyValue::default()
            },
            kv("interned", Value::StringValueStrindex(2)),
        ],
        dropped_attributes_count: 1,
        flags: 1,
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        event_name: "request".into(),
    };
    let error = LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(text("payment failed")),
        }),
        attributes: vec![
            kv("exception.type", text("IllegalStateException")),
            kv(
                "exception.stacktrace",
                text("java.lang.IllegalStateException: boom\n\tat com.shop.Pay.run(Pay.java:12)\n"),
            ),
        ],
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        ..LogRecord::default()
    };
    let error_by_text = LogRecord {
        severity_text: " fatal ".into(),
        body: Some(AnyValue {
            value: Some(text("Traceback (most recent call last):\n  File \"/app/x.py\", line 1, in <module>\nKeyError: 'k'")),
        }),
        ..LogRecord::default()
    };
    let warn_by_text = LogRecord {
        severity_text: "warning".into(),
        ..LogRecord::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", text("checkout")),
                        kv("service.version", text("2.4.0")),
                        kv("service.instance.id", text("pod-1")),
                    ],
                    ..Resource::default()
                }),
                scope_logs: vec![
                    ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "app".into(),
                            version: "1".into(),
                            ..InstrumentationScope::default()
                        }),
                        log_records: vec![info(1), error.clone(), info(2), error_by_text],
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                    },
                    ScopeLogs {
                        log_records: vec![warn_by_text, info(3)],
                        ..ScopeLogs::default()
                    },
                ],
                schema_url: "s".into(),
            },
            ResourceLogs::default(),
            ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![error, LogRecord::default()],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            },
        ],
    }
}

/// What the slim decoding keeps of a record that is not an error.
fn slimmed(record: &LogRecord) -> LogRecord {
    LogRecord {
        time_unix_nano: record.time_unix_nano,
        observed_time_unix_nano: record.observed_time_unix_nano,
        severity_number: record.severity_number,
        severity_text: if record.severity_number == 0 {
            record.severity_text.clone()
        } else {
            String::new()
        },
        ..LogRecord::default()
    }
}

#[test]
fn error_records_resources_and_scopes_are_whole_other_records_slim() {
    let request = mixed();
    let decoded = decode_logs(&request.encode_to_vec()).expect("decodes");
    let mut expected = request.clone();
    for record in expected
        .resource_logs
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
    {
        if !is_error_log(record) {
            *record = slimmed(record);
        }
    }
    assert_eq!(decoded, expected);
    let errors = decoded
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .filter(|r| is_error_log(r))
        .count();
    assert_eq!(errors, 3);
}

#[test]
fn summaries_match_those_of_the_full_decoding() {
    let bytes = mixed().encode_to_vec();
    let full = ExportLogsServiceRequest::decode(bytes.as_slice()).expect("prost decodes");
    let slim = decode_logs(&bytes).expect("decodes");
    let at = 1_700_000_000_000;
    assert_eq!(
        summarize_logs(&slim, Some("b".into()), at),
        summarize_logs(&full, Some("b".into()), at)
    );
}

#[test]
fn malformed_input_fails_where_prost_fails() {
    let valid = mixed().encode_to_vec();
    // Every prefix, and every single byte changed to a few telling values.
    let mut cases: Vec<Vec<u8>> = (0..valid.len()).map(|n| valid[..n].to_vec()).collect();
    for at in 0..valid.len() {
        for byte in [0x00, 0x07, 0x0b, 0x80, 0xff] {
            let mut bytes = valid.clone();
            bytes[at] = byte;
            cases.push(bytes);
        }
    }
    let mut refused = 0;
    for bytes in &cases {
        let ours = decode_logs(bytes);
        let prost = ExportLogsServiceRequest::decode(bytes.as_slice());
        assert_eq!(
            ours.is_ok(),
            prost.is_ok(),
            "{bytes:?}: ours {ours:?}, prost {prost:?}"
        );
        refused += usize::from(ours.is_err());
    }
    assert!(refused > cases.len() / 4, "{refused} of {}", cases.len());
}

#[test]
fn invalid_utf8_in_a_skipped_attribute_is_refused() {
    let mut request = mixed();
    request.resource_logs[0].scope_logs[0].log_records[0].attributes[0].key = "PATH".into();
    let mut bytes = request.encode_to_vec();
    let at = bytes
        .windows(4)
        .position(|w| w == b"PATH")
        .expect("key in the message");
    bytes[at] = 0xff;
    assert!(ExportLogsServiceRequest::decode(bytes.as_slice()).is_err());
    let e = decode_logs(&bytes).expect_err("refused");
    assert!(e.to_string().contains("UTF-8"), "{e}");
}

#[test]
fn nesting_deeper_than_prost_allows_is_refused() {
    let mut value = AnyValue {
        value: Some(text("leaf")),
    };
    for _ in 0..120 {
        value = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    let mut request = mixed();
    request.resource_logs[0].scope_logs[0].log_records[0].body = Some(value);
    let bytes = request.encode_to_vec();
    assert!(ExportLogsServiceRequest::decode(bytes.as_slice()).is_err());
    let e = decode_logs(&bytes).expect_err("refused");
    assert!(e.to_string().contains("recursion"), "{e}");
}

/// `bytes` as a length-delimited field `tag`.
fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

/// An `AnyValue` `levels` arrays deep whose innermost value is the fields `leaf`.
fn nested_value(levels: usize, leaf: &[u8]) -> Vec<u8> {
    (0..levels).fold(leaf.to_vec(), |inner, _| field(5, &field(1, &inner)))
}

#[test]
fn depth_is_counted_as_prost_counts_it_in_records_resources_and_scopes() {
    // Unknown fields in the innermost value: a varint, and a group holding one.
    let leaves: [&[u8]; 2] = [&[0x78, 0x01], &[0x73, 0x78, 0x01, 0x74]];
    let (mut accepted, mut refused) = (0, 0);
    for leaf in leaves {
        for levels in 44..=52 {
            let value = nested_value(levels, leaf);
            let in_body = field(2, &field(2, &field(5, &value)));
            let in_resource = field(1, &field(1, &field(2, &value)));
            let in_scope = field(2, &field(1, &field(3, &field(2, &value))));
            for resource_logs in [in_body, in_resource, in_scope] {
                let request = field(1, &resource_logs);
                let ours = decode_logs(&request);
                let prost = ExportLogsServiceRequest::decode(request.as_slice());
                assert_eq!(
                    ours.is_ok(),
                    prost.is_ok(),
                    "{levels} levels: ours {ours:?}, prost {prost:?}"
                );
                if ours.is_ok() {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn flag_evaluation_records_are_whole() {
    let mut flag = LogRecord {
        severity_number: 9,
        trace_id: vec![4; 16],
        ..LogRecord::default()
    };
    for (key, value) in [
        ("feature_flag.key", "new-checkout"),
        ("feature_flag.result.variant", "on"),
    ] {
        flag.attributes.push(KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        });
    }
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![flag.clone()],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    };
    let decoded = decode_logs(&request.encode_to_vec()).expect("decodes");
    assert_eq!(decoded, request);
}

use bellwether_proto::otlp::common::{any_value, AnyValue, InstrumentationScope};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use prost::Message;

use super::*;
use crate::otlp::string_kv as kv;

fn record(i: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: i,
        severity_number: 17,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("x".repeat(i as usize * 40))),
        }),
        attributes: (0..i).map(|a| kv(format!("k{a}"), "v")).collect(),
        trace_id: vec![7; 16],
        ..LogRecord::default()
    }
}

/// Resources with several scopes, empty scopes, scopes and schema urls set and unset,
/// records small and large (one past 16 KiB, whose length takes three bytes).
fn items() -> Vec<ResourceLogs> {
    vec![
        ResourceLogs::default(),
        ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "checkout")],
                ..Resource::default()
            }),
            scope_logs: vec![
                ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "bellwether.file".into(),
                        ..InstrumentationScope::default()
                    }),
                    log_records: (0..20).map(record).collect(),
                    schema_url: "https://example.com/s".into(),
                },
                ScopeLogs::default(),
                ScopeLogs {
                    scope: None,
                    log_records: vec![record(420), LogRecord::default()],
                    schema_url: String::new(),
                },
            ],
            schema_url: "u".into(),
        },
        ResourceLogs {
            resource: Some(Resource::default()),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![LogRecord::default(), record(3)],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        },
    ]
}

/// The same records as prost would carry them: one resource for each scope with records.
fn one_scope_each(items: Vec<ResourceLogs>) -> ExportLogsServiceRequest {
    let resource_logs = items
        .into_iter()
        .flat_map(|item| {
            let (resource, schema_url) = (item.resource, item.schema_url);
            item.scope_logs
                .into_iter()
                .filter(|s| !s.log_records.is_empty())
                .map(move |scope_logs| ResourceLogs {
                    resource: resource.clone(),
                    scope_logs: vec![scope_logs],
                    schema_url: schema_url.clone(),
                })
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

fn encoded(items: Vec<ResourceLogs>) -> Vec<EncodedLogs> {
    items
        .into_iter()
        .flat_map(|item| EncodedLogs::encode(item, 0))
        .collect()
}

#[test]
fn requests_are_byte_for_byte_what_prost_encodes() {
    let expected = one_scope_each(items()).encode_to_vec();
    assert_eq!(encode_request(&encoded(items())), expected);
    assert_eq!(encode_request(&[]), Vec::<u8>::new());
}

#[test]
fn sizes_are_exact() {
    let expected = one_scope_each(items());
    let encoded = encoded(items());
    assert_eq!(encoded.len(), expected.resource_logs.len());
    for (item, resource_logs) in encoded.iter().zip(&expected.resource_logs) {
        assert_eq!(item.batch_len(), resource_logs.encoded_len());
        assert_eq!(item.count(), resource_logs.scope_logs[0].log_records.len());
    }
}

#[test]
fn split_front_keeps_resource_scope_and_order() {
    let mut rest = encoded(items()).remove(0);
    assert_eq!(rest.count(), 20);
    let head = rest.split_front(7);
    let middle = rest.split_front(0);
    assert_eq!((head.count(), middle.count(), rest.count()), (7, 0, 13));
    assert_eq!(head.resource, rest.resource);
    assert_eq!(head.scope, rest.scope);
    assert_eq!(head.scope_schema_url, "https://example.com/s");

    let request = ExportLogsServiceRequest::decode(encode_request(&[head, rest]).as_slice())
        .expect("decodes");
    let times: Vec<u64> = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|r| r.time_unix_nano)
        .collect();
    assert_eq!(times, (0..20).collect::<Vec<u64>>());
    assert_eq!(
        request.resource_logs[1].scope_logs[0].log_records[0],
        record(7)
    );
}

#[test]
fn splitting_past_the_end_takes_everything() {
    let mut rest = encoded(items()).remove(0);
    let all = rest.clone();
    let head = rest.split_front(99);
    assert_eq!(head, all);
    assert_eq!(rest.count(), 0);
}

#[test]
fn a_pushed_field_reads_back_as_the_last_attribute() {
    let path = kv("log.file.path", "/var/log/app.log");
    let field = attribute_field(&path);
    let mut logs = EncodedLogs::new(None, None, 0);
    for i in 0..3 {
        logs.push(&record(i), &field);
    }
    assert_eq!((logs.len(), logs.is_empty()), (3, false));
    let request =
        ExportLogsServiceRequest::decode(encode_request(&[logs]).as_slice()).expect("decodes");
    let records = &request.resource_logs[0].scope_logs[0].log_records;
    for (i, decoded) in records.iter().enumerate() {
        let mut expected = record(i as u64);
        expected.attributes.push(path.clone());
        assert_eq!(decoded, &expected);
    }
    assert_eq!(records.len(), 3);
}

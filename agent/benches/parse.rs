//! Hot paths of the agent's log path: parsing one line, joining a stream with stack
//! traces, and tagging + encoding a batch for export.
//!
//! `cargo bench -p bellwether-agent --bench parse`

use std::hint::black_box;

use bellwether_agent::identity::Identity;
use bellwether_agent::parse::{parse_line, LineAssembler};
use bellwether_agent::pipeline::Tagger;
use bellwether_agent::sources::lines::LineSplitter;
use bellwether_proto::otlp::common::InstrumentationScope;
use bellwether_proto::otlp::logs::{ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

const NOW: u64 = 1_800_000_000_000_000_000;

fn json_line(i: usize) -> String {
    format!(
        r#"{{"time":"2026-11-26T12:00:01.{:03}Z","level":"{}","msg":"handled request {i} for customer","path":"/api/v1/orders/{i}","status":200,"duration_ms":{},"user":{{"id":"u-{}"}}}}"#,
        i % 1000,
        if i.is_multiple_of(20) {
            "error"
        } else {
            "info"
        },
        i % 97,
        i % 31
    )
}

const TRACE: &str = "java.lang.IllegalStateException: cart 5531 is empty
\tat com.shop.Checkout.main(Checkout.java:33)
\tat com.shop.Server.handle(Server.java:120)
\tat java.base/java.lang.Thread.run(Thread.java:840)";

/// A stream of lines: mostly JSON, one in a hundred a plain error line with a trace.
fn stream(lines: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(lines);
    let mut i = 0;
    while out.len() < lines {
        if i % 100 == 99 {
            out.push(format!(
                "2026-11-26 12:00:01.305 ERROR cart check failed {i}"
            ));
            out.extend(TRACE.lines().map(str::to_owned));
        } else {
            out.push(json_line(i));
        }
        i += 1;
    }
    out
}

fn identity() -> Identity {
    Identity {
        service: "checkout".into(),
        version: "1.4.2".into(),
        environment: "prod".into(),
        instance_id: "checkout-7d9f-abcde".into(),
        commit: Some("9f2c1e7".into()),
        deploy_id: Some("deploy-118".into()),
        team: Some("payments".into()),
    }
}

fn benches(c: &mut Criterion) {
    let json = json_line(7);
    let escaped = r#"{"time":"2026-11-26T12:00:01.305Z","level":"warn","msg":"retrying \"charge\"\n\tattempt 2","path":"/api/v1/orders/7","err":{"kind":"timeout","detail":"upstream \u00e9 slow"}}"#;
    let logfmt = r#"time=2026-11-26T12:00:01.101Z level=info msg="handled request 7" path=/api/v1/orders/7 status=200 duration_ms=12"#;
    let plain = "2026-11-26 12:00:01.101  INFO 1 --- [nio-8080-exec-1] com.shop.Checkout : handling order 981273";

    let mut group = c.benchmark_group("parse_line");
    group.throughput(Throughput::Elements(1));
    group.bench_function("json", |b| {
        b.iter(|| parse_line(black_box(json.as_bytes()), false, NOW))
    });
    group.bench_function("json_escaped", |b| {
        b.iter(|| parse_line(black_box(escaped.as_bytes()), false, NOW))
    });
    group.bench_function("logfmt", |b| {
        b.iter(|| parse_line(black_box(logfmt.as_bytes()), false, NOW))
    });
    group.bench_function("plain", |b| {
        b.iter(|| parse_line(black_box(plain.as_bytes()), false, NOW))
    });
    group.finish();

    let lines = stream(10_000);
    let mut group = c.benchmark_group("multiline");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("assemble_10k_lines", |b| {
        b.iter(|| {
            let mut assembler = LineAssembler::default();
            let mut out = Vec::with_capacity(lines.len());
            for line in &lines {
                assembler.push(line.as_bytes(), false, NOW, &mut out);
            }
            assembler.flush(NOW, &mut out);
            out
        })
    });
    // The whole per-line path of a tailed file: split chunks, then join and parse.
    let mut text = lines.join("\n");
    text.push('\n');
    group.bench_function("split_assemble_10k_lines", |b| {
        b.iter(|| {
            let mut splitter = LineSplitter::new(256 * 1024 + 1);
            let mut assembler = LineAssembler::default();
            let mut out = Vec::with_capacity(lines.len());
            for chunk in text.as_bytes().chunks(64 * 1024) {
                splitter.feed(chunk, |line, overflowed, _| {
                    assembler.push(line, overflowed, NOW, &mut out);
                });
            }
            assembler.flush(NOW, &mut out);
            out
        })
    });
    group.bench_function("split_10k_lines", |b| {
        b.iter(|| {
            let mut splitter = LineSplitter::new(256 * 1024 + 1);
            let mut count = 0usize;
            for chunk in text.as_bytes().chunks(64 * 1024) {
                splitter.feed(black_box(chunk), |line, _, _| count += line.len());
            }
            count
        })
    });
    group.finish();

    let tagger = Tagger::new(&identity());
    let mut records = Vec::new();
    let mut assembler = LineAssembler::default();
    for line in stream(512) {
        assembler.push(line.as_bytes(), false, NOW, &mut records);
    }
    assembler.flush(NOW, &mut records);
    let batch = ResourceLogs {
        resource: None,
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: "bellwether.file".into(),
                ..InstrumentationScope::default()
            }),
            log_records: records,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    };
    let mut group = c.benchmark_group("tag_encode");
    group.throughput(Throughput::Elements(512));
    group.bench_function("batch_512", |b| {
        b.iter(|| {
            let mut item = batch.clone();
            tagger.tag(&mut item.resource);
            let request = ExportLogsServiceRequest {
                resource_logs: vec![item],
            };
            let bytes = request.encode_to_vec();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &bytes).map(|()| gz.finish())
        })
    });
    group.finish();
}

criterion_group!(parse, benches);
criterion_main!(parse);

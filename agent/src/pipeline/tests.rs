use std::time::Duration;

use bellwether_proto::otlp::logs::{LogRecord, ScopeLogs};
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::{ScopeSpans, Span};

use super::*;
use crate::identity::Identity;
use crate::otlp::{as_str, string_kv};

fn identity() -> Identity {
    Identity {
        service: "checkout".into(),
        version: "1.4.2".into(),
        environment: "prod".into(),
        instance_id: "pod-7".into(),
        commit: None,
        deploy_id: None,
        team: None,
    }
}

fn logs(n: usize, app_service: Option<&str>) -> Telemetry {
    Telemetry::Logs(vec![ResourceLogs {
        resource: app_service.map(|name| Resource {
            attributes: vec![string_kv("service.name", name)],
            ..Resource::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: vec![LogRecord::default(); n],
            ..ScopeLogs::default()
        }],
        schema_url: String::new(),
    }])
}

fn spans(n: usize) -> Telemetry {
    Telemetry::Spans(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span::default(); n],
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }])
}

struct Harness {
    sender: PipelineSender,
    batches: mpsc::Receiver<Batch>,
    stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

fn start(max_records: usize) -> Harness {
    let stats = Arc::new(Stats::default());
    let (sender, rx) = channel(16, stats.clone());
    let (out, batches) = mpsc::channel(16);
    let task = tokio::spawn(run_pipeline(
        rx,
        Tagger::new(&identity()),
        BatchConfig {
            max_records,
            timeout: Duration::from_secs(1),
        },
        BatchIds::new("pod-7", "boot"),
        out,
    ));
    Harness {
        sender,
        batches,
        stats,
        task,
    }
}

fn service_names(batch: &Batch) -> Vec<String> {
    let Payload::Logs(request) = &batch.payload else {
        return Vec::new();
    };
    request
        .resource_logs
        .iter()
        .filter_map(|rl| rl.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| as_str(kv.value.as_ref()).map(str::to_owned))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn flushes_by_age_and_tags() {
    let mut h = start(512);
    h.sender
        .submit(Source::OtlpHttp, logs(3, Some("legacy")), None)
        .await
        .expect("enqueued");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(h.batches.try_recv().is_err(), "no batch before the timeout");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let batch = h.batches.recv().await.expect("batch after the timeout");
    assert_eq!(batch.records, 3);
    assert_eq!(batch.id, "pod-7:boot:0");
    assert_eq!(service_names(&batch), ["checkout"]);
    assert_eq!(h.stats.snapshot().received.otlp_http.log_records, 3);
}

#[tokio::test(start_paused = true)]
async fn flushes_by_count_and_splits() {
    let mut h = start(4);
    h.sender
        .submit(Source::OtlpGrpc, logs(10, None), None)
        .await
        .expect("enqueued");
    let first = h.batches.recv().await.expect("full batch");
    let second = h.batches.recv().await.expect("full batch");
    assert_eq!((first.records, second.records), (4, 4));
    assert_ne!(first.id, second.id);
    // The remaining 2 wait for the timer.
    assert!(h.batches.try_recv().is_err());
    let rest = h.batches.recv().await.expect("aged batch");
    assert_eq!(rest.records, 2);
}

#[tokio::test(start_paused = true)]
async fn logs_and_spans_are_separate_batches_and_close_flushes() {
    let mut h = start(512);
    h.sender
        .submit(Source::OtlpGrpc, logs(2, None), None)
        .await
        .expect("enqueued");
    h.sender
        .submit(Source::OtlpGrpc, spans(5), None)
        .await
        .expect("enqueued");
    // Let the pipeline take both messages before closing.
    tokio::task::yield_now().await;
    drop(h.sender);
    h.task.await.expect("pipeline ends when senders are gone");
    let mut kinds = Vec::new();
    while let Ok(batch) = h.batches.try_recv() {
        kinds.push((batch.payload.kind(), batch.records));
    }
    kinds.sort();
    assert_eq!(kinds, [("logs", 2), ("spans", 5)]);
}

#[tokio::test(start_paused = true)]
async fn empty_telemetry_is_accepted_without_counting() {
    let h = start(512);
    h.sender
        .submit(Source::OtlpHttp, Telemetry::Logs(Vec::new()), None)
        .await
        .expect("accepted");
    assert_eq!(h.stats.snapshot().received.otlp_http.log_records, 0);
}

#[tokio::test(start_paused = true)]
async fn full_queue_refuses_after_waiting() {
    let stats = Arc::new(Stats::default());
    let (sender, _rx) = channel(1, stats.clone());
    sender
        .submit(Source::OtlpHttp, logs(1, None), None)
        .await
        .expect("room for one");
    let refused = sender
        .submit(
            Source::OtlpHttp,
            logs(1, None),
            Some(Duration::from_secs(10)),
        )
        .await;
    assert_eq!(refused, Err(SubmitError::Full));
    assert_eq!(stats.snapshot().refused_requests, 1);
    assert_eq!(stats.snapshot().received.otlp_http.log_records, 1);
}

#[tokio::test]
async fn closed_pipeline_refuses() {
    let stats = Arc::new(Stats::default());
    let (sender, rx) = channel(1, stats);
    drop(rx);
    let refused = sender.submit(Source::Stdin, logs(1, None), None).await;
    assert_eq!(refused, Err(SubmitError::Closed));
}

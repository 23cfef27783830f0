use std::collections::BTreeSet;
use std::time::Duration;

use bellwether_proto::otlp::logs::{LogRecord, ScopeLogs};
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::{ScopeSpans, Span};

use super::*;
use crate::batch::Batch;
use crate::identity::Identity;
use crate::otlp::{as_str, string_kv};
use crate::queue::{Queue, Read};

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
    queue: Queue,
    stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

fn start_with(max_records: usize, queue_max_bytes: u64) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = Arc::new(Stats::default());
    // Stored uncompressed, so the queue's byte count follows the records submitted.
    let options = crate::queue::Options {
        max_bytes: queue_max_bytes,
        compression: crate::batch::Compression::None,
        ..crate::queue::Options::default()
    };
    let (queue, _) =
        Queue::open_with(dir.path(), "pod-7", options, stats.clone()).expect("queue opens");
    let (sender, rx) = channel(16, queue.clone(), stats.clone());
    let task = tokio::spawn(run_pipeline(
        rx,
        Tagger::new(&identity()),
        BatchConfig {
            max_records,
            max_bytes: DEFAULT_BATCH_MAX_BYTES,
            timeout: Duration::from_secs(1),
        },
        queue.clone(),
    ));
    Harness {
        sender,
        queue,
        stats,
        task,
        _dir: dir,
    }
}

fn start(max_records: usize) -> Harness {
    start_with(max_records, crate::queue::DEFAULT_MAX_BYTES)
}

/// Every queued batch, oldest first.
fn queued(queue: &Queue) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut cursor = None;
    while let Some(seq) = queue.next_after(cursor) {
        cursor = Some(seq);
        if let Ok(Read::Batch(queued)) = queue.read(seq) {
            out.push(queued.batch);
        }
    }
    out
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

#[tokio::test]
async fn submit_returns_once_tagged_data_is_queued() {
    let h = start(512);
    h.sender
        .submit(Source::OtlpHttp, logs(3, Some("legacy")), None)
        .await
        .expect("queued");
    // No waiting: the data is in the queue when submit returns.
    let batches = queued(&h.queue);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].records, 3);
    assert!(batches[0].id.starts_with("pod-7:"), "{}", batches[0].id);
    assert_eq!(service_names(&batches[0]), ["checkout"]);
    assert_eq!(h.stats.snapshot().received.otlp_http.log_records, 3);
}

#[tokio::test]
async fn splits_by_count() {
    let h = start(4);
    h.sender
        .submit(Source::OtlpGrpc, logs(10, None), None)
        .await
        .expect("queued");
    let sizes: Vec<usize> = queued(&h.queue).iter().map(|b| b.records).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let ids: BTreeSet<String> = queued(&h.queue).into_iter().map(|b| b.id).collect();
    assert_eq!(ids.len(), 3, "distinct batch ids");
}

#[tokio::test]
async fn concurrent_submissions_share_appends() {
    let h = start(512);
    let submits: Vec<_> = (0..40)
        .map(|_| {
            let sender = h.sender.clone();
            tokio::spawn(async move { sender.submit(Source::OtlpGrpc, logs(1, None), None).await })
        })
        .collect();
    for submit in submits {
        submit.await.expect("joins").expect("queued");
    }
    let batches = queued(&h.queue);
    assert_eq!(batches.iter().map(|b| b.records).sum::<usize>(), 40);
    assert!(
        batches.len() < 40,
        "{} batches for 40 submissions",
        batches.len()
    );
    assert_eq!(h.stats.snapshot().received.otlp_grpc.log_records, 40);
}

#[tokio::test]
async fn logs_and_spans_are_separate_batches_and_close_ends_the_pipeline() {
    let h = start(512);
    h.sender
        .submit(Source::OtlpGrpc, logs(2, None), None)
        .await
        .expect("queued");
    h.sender
        .submit(Source::OtlpGrpc, spans(5), None)
        .await
        .expect("queued");
    drop(h.sender);
    h.task.await.expect("pipeline ends when senders are gone");
    let mut kinds: Vec<(&str, usize)> = queued(&h.queue)
        .iter()
        .map(|b| (b.payload.kind(), b.records))
        .collect();
    kinds.sort();
    assert_eq!(kinds, [("logs", 2), ("spans", 5)]);
    assert!(!h.queue.wait_for_more(Some(u64::MAX)).await, "input closed");
}

#[tokio::test]
async fn empty_telemetry_is_accepted_without_counting() {
    let h = start(512);
    h.sender
        .submit(Source::OtlpHttp, Telemetry::Logs(Vec::new()), None)
        .await
        .expect("accepted");
    assert_eq!(h.stats.snapshot().received.otlp_http.log_records, 0);
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn full_queue_refuses_after_waiting_and_takes_nothing() {
    let h = start_with(512, 256);
    h.sender
        .submit(Source::OtlpHttp, logs(200, None), None)
        .await
        .expect("an empty queue takes anything");
    let before = h.queue.len();
    let refused = h
        .sender
        .submit(
            Source::OtlpHttp,
            logs(1, None),
            Some(Duration::from_millis(50)),
        )
        .await;
    assert_eq!(refused, Err(SubmitError::Full));
    assert_eq!(h.queue.len(), before, "nothing appended");
    let s = h.stats.snapshot();
    assert_eq!(s.refused_requests, 1);
    assert_eq!(s.received.otlp_http.log_records, 200);

    // Unbounded submitters wait until room is freed.
    let waiting = tokio::spawn({
        let sender = h.sender.clone();
        async move { sender.submit(Source::Stdin, logs(1, None), None).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    h.queue.remove(0).expect("removes");
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("admitted after room was freed")
        .expect("joins")
        .expect("queued");
}

#[tokio::test]
async fn closed_pipeline_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = Arc::new(Stats::default());
    let (queue, _) = Queue::open(dir.path(), "i", 1 << 20, stats.clone()).expect("opens");
    let (sender, rx) = channel(1, queue, stats);
    drop(rx);
    let refused = sender.submit(Source::Stdin, logs(1, None), None).await;
    assert_eq!(refused, Err(SubmitError::Closed));
}

#[tokio::test]
async fn data_not_yet_queued_is_bounded_in_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = Arc::new(Stats::default());
    let (queue, _) = Queue::open(dir.path(), "x", 1 << 30, stats.clone()).expect("opens");
    // Nothing appends: whatever is submitted stays in flight.
    let (sender, _rx) = channel_bounded(1024, 1, queue, stats);
    let first = {
        let sender = sender.clone();
        tokio::spawn(async move { sender.submit(Source::Stdin, logs(10, None), None).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while sender.memory.available_permits() > 0 {
        assert!(
            Instant::now() < deadline,
            "first submission never took its room"
        );
        tokio::task::yield_now().await;
    }
    let second = sender
        .submit(
            Source::Stdin,
            logs(1, None),
            Some(Duration::from_millis(50)),
        )
        .await;
    assert_eq!(second, Err(SubmitError::Full));
    first.abort();
}

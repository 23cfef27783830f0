//! A real pipeline for source tests: a durable queue in a temporary directory, the
//! pipeline task in front of it, and a reader that hands what was queued back as
//! [`Telemetry`] (a full receiver leaves batches queued, so a small queue pushes back
//! on the source like the exporter does when the collector is away).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::batch::Payload;
use crate::identity::Identity;
use crate::pipeline::{self, BatchConfig, PipelineSender, Tagger, Telemetry};
use crate::queue::{Queue, Read};
use crate::stats::Stats;

/// Keeps the queue's directory and tasks alive.
pub(crate) struct TestPipeline {
    _dir: tempfile::TempDir,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// (sender, what was queued, guard); `queue_max_bytes` bounds the queue.
pub(crate) fn pipeline(
    queue_max_bytes: u64,
    stats: Arc<Stats>,
) -> (PipelineSender, mpsc::Receiver<Telemetry>, TestPipeline) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _) =
        Queue::open(dir.path(), "test", queue_max_bytes, stats.clone()).expect("queue opens");
    let (sender, rx) = pipeline::channel(16, queue.clone(), stats);
    let identity = Identity {
        service: "svc".into(),
        version: "1".into(),
        environment: "test".into(),
        instance_id: "test".into(),
        commit: None,
        deploy_id: None,
        team: None,
    };
    let batching = tokio::spawn(pipeline::run_pipeline(
        rx,
        Tagger::new(&identity),
        BatchConfig {
            max_records: 512,
            max_bytes: pipeline::DEFAULT_BATCH_MAX_BYTES,
            timeout: Duration::from_millis(5),
        },
        queue.clone(),
    ));
    let (out_tx, out_rx) = mpsc::channel(1);
    let reader = tokio::spawn(async move {
        let mut cursor = None;
        while queue.wait_for_more(cursor).await {
            let Some(seq) = queue.next_after(cursor) else {
                continue;
            };
            cursor = Some(seq);
            let Ok(Read::Batch(queued)) = queue.read(seq) else {
                continue;
            };
            let telemetry = match queued.batch.payload {
                Payload::Logs(request) => Telemetry::Logs(request.resource_logs),
                Payload::Spans(request) => Telemetry::Spans(request.resource_spans),
                Payload::Metrics(request) => Telemetry::Metrics(request.resource_metrics),
                // What the queue reads back is a decoded request.
                Payload::EncodedLogs(_) => continue,
            };
            if out_tx.send(telemetry).await.is_err() {
                break;
            }
            let _ = queue.remove(seq);
        }
    });
    (
        sender,
        out_rx,
        TestPipeline {
            _dir: dir,
            _tasks: vec![batching, reader],
        },
    )
}

impl Drop for TestPipeline {
    fn drop(&mut self) {
        for task in &self._tasks {
            task.abort();
        }
    }
}

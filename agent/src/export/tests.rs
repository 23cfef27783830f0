use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use tokio::time::Instant;

use super::*;

/// Scripted transport: answers from a queue and records when and with which id it was
/// called.
#[derive(Clone, Default)]
struct Scripted {
    replies: Arc<Mutex<VecDeque<Result<Accepted, Status>>>>,
    calls: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Scripted {
    fn new(replies: Vec<Result<Accepted, Status>>) -> Self {
        Self {
            replies: Arc::new(Mutex::new(replies.into())),
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> Vec<(String, Instant)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Transport for Scripted {
    async fn export(&mut self, batch: &Batch) -> Result<Accepted, Status> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((batch.id.clone(), Instant::now()));
        }
        let reply = self.replies.lock().ok().and_then(|mut r| r.pop_front());
        // Once the script runs out the collector stays down.
        reply.unwrap_or_else(|| Err(Status::unavailable("down")))
    }
}

fn batch(id: &str, records: usize) -> Batch {
    Batch {
        id: id.to_owned(),
        records,
        payload: Payload::Logs(ExportLogsServiceRequest::default()),
    }
}

async fn export_all(
    transport: Scripted,
    batches: Vec<Batch>,
) -> (Arc<Stats>, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel(16);
    for b in batches {
        tx.send(b).await.expect("queued");
    }
    drop(tx);
    let (give_up_tx, give_up) = watch::channel(false);
    let task = tokio::spawn(run_exporter(
        rx,
        transport,
        RetryPolicy::default(),
        stats.clone(),
        give_up,
    ));
    (stats, give_up_tx, task)
}

#[tokio::test(start_paused = true)]
async fn retries_with_backoff_and_the_same_batch_id() {
    let transport = Scripted::new(vec![
        Err(Status::unavailable("down")),
        Err(Status::deadline_exceeded("slow")),
        Err(Status::aborted("conflict")),
        Ok(Accepted::default()),
    ]);
    let start = Instant::now();
    let (stats, _give_up, task) = export_all(transport.clone(), vec![batch("a:b:7", 3)]).await;
    task.await.expect("exporter ends");

    let calls = transport.calls();
    assert_eq!(calls.len(), 4);
    assert!(calls.iter().all(|(id, _)| id == "a:b:7"));
    // 100ms, 200ms, 400ms, each plus at most 25% jitter.
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].1 - w[0].1).collect();
    for (gap, base) in gaps.iter().zip([100u64, 200, 400]) {
        let base = Duration::from_millis(base);
        assert!(
            *gap >= base && *gap <= base + base / 4,
            "{gap:?} vs {base:?}"
        );
    }
    assert!(calls[0].1 - start < Duration::from_millis(1));
    let s = stats.snapshot();
    assert_eq!(s.exported.log_records, 3);
    assert_eq!(s.retries, 3);
    assert_eq!(s.batches.exported, 1);
}

#[tokio::test(start_paused = true)]
async fn non_retryable_is_dropped_once_and_counted() {
    let transport = Scripted::new(vec![
        Err(Status::invalid_argument("bad")),
        Ok(Accepted::default()),
    ]);
    let (stats, _give_up, task) =
        export_all(transport.clone(), vec![batch("x:0", 5), batch("x:1", 2)]).await;
    task.await.expect("exporter ends");
    let ids: Vec<String> = transport.calls().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["x:0", "x:1"]);
    let s = stats.snapshot();
    assert_eq!(s.dropped.non_retryable, 5);
    assert_eq!(s.exported.log_records, 2);
    assert_eq!(s.retries, 0);
}

#[tokio::test(start_paused = true)]
async fn throttling_honours_the_hint() {
    let mut throttled = Status::resource_exhausted("slow down");
    throttled.metadata_mut().insert(
        "retry-after",
        tonic::metadata::MetadataValue::from_static("5"),
    );
    let transport = Scripted::new(vec![Err(throttled), Ok(Accepted::default())]);
    let (_stats, _give_up, task) = export_all(transport.clone(), vec![batch("t:0", 1)]).await;
    task.await.expect("exporter ends");
    let calls = transport.calls();
    assert_eq!(calls[1].1 - calls[0].1, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn partial_success_counts_rejected_records() {
    let transport = Scripted::new(vec![Ok(Accepted {
        rejected: 2,
        message: "too old".into(),
    })]);
    let (stats, _give_up, task) = export_all(transport, vec![batch("p:0", 10)]).await;
    task.await.expect("exporter ends");
    let s = stats.snapshot();
    assert_eq!(s.exported.log_records, 8);
    assert_eq!(s.dropped.rejected_by_collector, 2);
}

#[tokio::test(start_paused = true)]
async fn keeps_retrying_until_told_to_give_up() {
    let transport = Scripted::new(Vec::new());
    let (stats, give_up, task) =
        export_all(transport.clone(), vec![batch("g:0", 4), batch("g:1", 6)]).await;
    // Far longer than any single backoff: the batch must still be in flight, not dropped.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(!task.is_finished());
    assert!(transport.calls().len() > 10);
    assert_eq!(stats.snapshot().exported.log_records, 0);
    give_up.send(true).expect("exporter listening");
    task.await.expect("exporter ends after giving up");
    assert!(transport.calls().iter().all(|(id, _)| id == "g:0"));
    assert_eq!(stats.snapshot().batches.dropped, 2);
}

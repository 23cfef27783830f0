use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use tokio::time::Instant;

use super::*;
use crate::batch::Payload;
use crate::queue::Queue;

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
    async fn export(&mut self, batch: &EncodedBatch) -> Result<Accepted, Status> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((batch.id.clone(), Instant::now()));
        }
        let reply = self.replies.lock().ok().and_then(|mut r| r.pop_front());
        // Once the script runs out the collector stays down.
        reply.unwrap_or_else(|| Err(Status::unavailable("down")))
    }
}

fn logs(records: usize) -> (Payload, usize) {
    let payload = Payload::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); records],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    });
    (payload, records)
}

struct Run {
    stats: Arc<Stats>,
    queue: Queue,
    give_up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Queues batches of the given sizes (ids `<instance>:<queue>:0`, `:1`, ...), closes the
/// queue's input and starts the exporter on them, one batch at a time.
async fn export_all(transport: Scripted, sizes: &[usize]) -> Run {
    export_all_with(transport, sizes, 1).await
}

async fn export_all_with<T: Transport>(transport: T, sizes: &[usize], concurrency: usize) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = Arc::new(Stats::default());
    let (queue, _) = Queue::open(dir.path(), "x", 1 << 20, stats.clone()).expect("opens");
    let batches: Vec<(Payload, usize)> = sizes.iter().map(|n| logs(*n)).collect();
    queue.append(&batches).expect("appends");
    queue.close_input();
    let (give_up, give_up_rx) = watch::channel(false);
    let task = tokio::spawn(run_exporter(
        queue.clone(),
        transport,
        RetryPolicy::default(),
        stats.clone(),
        give_up_rx,
        concurrency,
    ));
    Run {
        stats,
        queue,
        give_up,
        task,
        _dir: dir,
    }
}

fn seq_of(id: &str) -> &str {
    id.rsplit(':').next().unwrap_or_default()
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
    let run = export_all(transport.clone(), &[3]).await;
    run.task.await.expect("exporter ends");
    let stats = run.stats;

    let calls = transport.calls();
    assert_eq!(calls.len(), 4);
    assert!(calls.iter().all(|(id, _)| *id == calls[0].0));
    assert!(run.queue.is_empty(), "delivered batch leaves the queue");
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
    let run = export_all(transport.clone(), &[5, 2]).await;
    run.task.await.expect("exporter ends");
    let ids: Vec<String> = transport.calls().into_iter().map(|(id, _)| id).collect();
    let seqs: Vec<&str> = ids.iter().map(|id| seq_of(id)).collect();
    assert_eq!(seqs, ["0", "1"]);
    assert!(
        run.queue.is_empty(),
        "the refused batch is dropped from the queue"
    );
    let s = run.stats.snapshot();
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
    let run = export_all(transport.clone(), &[1]).await;
    run.task.await.expect("exporter ends");
    let calls = transport.calls();
    assert_eq!(calls[1].1 - calls[0].1, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn partial_success_counts_rejected_records() {
    let transport = Scripted::new(vec![Ok(Accepted {
        rejected: 2,
        message: "too old".into(),
    })]);
    let run = export_all(transport, &[10]).await;
    run.task.await.expect("exporter ends");
    let s = run.stats.snapshot();
    assert_eq!(s.exported.log_records, 8);
    assert_eq!(s.dropped.rejected_by_collector, 2);
}

#[tokio::test(start_paused = true)]
async fn keeps_retrying_until_told_to_give_up_and_keeps_the_batches() {
    let transport = Scripted::new(Vec::new());
    let run = export_all(transport.clone(), &[4, 6]).await;
    // Far longer than any single backoff: the batch must still be in flight, not dropped.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(!run.task.is_finished());
    assert!(transport.calls().len() > 10);
    assert_eq!(run.stats.snapshot().exported.log_records, 0);
    run.give_up.send(true).expect("exporter listening");
    run.task.await.expect("exporter ends after giving up");
    assert!(transport.calls().iter().all(|(id, _)| seq_of(id) == "0"));
    let s = run.stats.snapshot();
    assert_eq!(s.batches.dropped, 0);
    assert_eq!(s.dropped.shutdown, 0);
    assert_eq!(run.queue.len().1, 10, "both batches stay queued");
    assert!(s.retries > 10);
    let (_, _, attempts) = run.stats.export_duration.snapshot();
    assert_eq!(attempts, transport.calls().len() as u64);
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_keep_the_batch_queued_until_accepted() {
    let transport = Scripted::new(vec![
        Err(Status::unauthenticated("invalid token")),
        Err(Status::permission_denied("token lacks the ingest scope")),
        Ok(Accepted::default()),
    ]);
    let run = export_all(transport.clone(), &[7]).await;
    run.task.await.expect("exporter ends");
    let calls = transport.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|(id, _)| *id == calls[0].0));
    // Backed off like any retry: 100 ms, then 200 ms, each plus at most 25 %.
    assert!(calls[1].1 - calls[0].1 >= Duration::from_millis(100));
    assert!(calls[2].1 - calls[1].1 >= Duration::from_millis(200));
    let s = run.stats.snapshot();
    assert_eq!(
        s.dropped.non_retryable, 0,
        "refused credentials drop nothing"
    );
    assert_eq!(s.exported.log_records, 7);
    assert_eq!(s.retries, 2);
    assert!(run.queue.is_empty());
}

#[tokio::test(start_paused = true)]
async fn several_batches_are_in_flight_and_each_retries_alone() {
    // Batch 0 fails twice; the others are sent meanwhile and delivered on the first try.
    let transport = Windowed::new(2);
    let run = export_all_with(transport.clone(), &[1, 2, 3, 4, 5], 3).await;
    run.task.await.expect("exporter ends");
    assert!(run.queue.is_empty(), "every batch delivered");
    let s = run.stats.snapshot();
    assert_eq!(s.exported.log_records, 15);
    assert_eq!((s.batches.exported, s.retries), (5, 2));
    assert_eq!(
        transport.most_in_flight(),
        3,
        "the window is used, and not exceeded"
    );
    // Every batch was sent once, except batch 0's retries; later batches did not wait
    // for batch 0.
    let sent = transport.sent();
    assert_eq!(sent.iter().filter(|s| *s == "0").count(), 3, "{sent:?}");
    for seq in ["1", "2", "3", "4"] {
        assert_eq!(sent.iter().filter(|s| *s == seq).count(), 1, "{sent:?}");
    }
    let first_success_of_0 = sent.iter().rposition(|s| s == "0").expect("sent");
    let last = sent.iter().position(|s| s == "4").expect("sent");
    assert!(
        last < first_success_of_0,
        "batch 4 waited for batch 0: {sent:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn giving_up_with_batches_in_flight_keeps_them_all() {
    let transport = Scripted::new(Vec::new());
    let run = export_all_with(transport.clone(), &[4, 6, 1], 2).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    run.give_up.send(true).expect("exporter listening");
    run.task.await.expect("exporter ends after giving up");
    let seqs: std::collections::BTreeSet<String> = transport
        .calls()
        .into_iter()
        .map(|(id, _)| seq_of(&id).to_owned())
        .collect();
    assert_eq!(
        seqs,
        ["0", "1"].map(str::to_owned).into(),
        "two in flight, never more"
    );
    assert_eq!(run.queue.len().1, 11, "every batch stays queued");
    assert_eq!(run.stats.snapshot().batches.dropped, 0);
}

/// Transport that answers after 10 ms, fails batch 0's first `failures` attempts, and
/// tracks how many calls overlap.
#[derive(Clone)]
struct Windowed {
    state: Arc<Mutex<WindowState>>,
}

#[derive(Default)]
struct WindowState {
    failures_left: usize,
    in_flight: usize,
    most: usize,
    sent: Vec<String>,
}

impl Windowed {
    fn new(failures: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(WindowState {
                failures_left: failures,
                ..WindowState::default()
            })),
        }
    }

    fn most_in_flight(&self) -> usize {
        self.state.lock().map(|s| s.most).unwrap_or_default()
    }

    fn sent(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.sent.clone())
            .unwrap_or_default()
    }
}

impl Transport for Windowed {
    async fn export(&mut self, batch: &EncodedBatch) -> Result<Accepted, Status> {
        let seq = seq_of(&batch.id).to_owned();
        if let Ok(mut state) = self.state.lock() {
            state.in_flight += 1;
            state.most = state.most.max(state.in_flight);
            state.sent.push(seq.clone());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut state = self
            .state
            .lock()
            .map_err(|_| Status::internal("poisoned"))?;
        state.in_flight -= 1;
        if seq == "0" && state.failures_left > 0 {
            state.failures_left -= 1;
            return Err(Status::unavailable("busy"));
        }
        Ok(Accepted::default())
    }
}

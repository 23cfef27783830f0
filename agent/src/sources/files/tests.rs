//! Tailing real files in a temporary directory into a real pipeline channel.

use std::io::Write;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::otlp::as_str;
use crate::pipeline::Telemetry;
use crate::sources::testing::{self, TestPipeline};

const QUEUE: u64 = 16 * 1024 * 1024;

/// The stop switch, the task, what reached the queue, and the pipeline's guard.
type Started = (
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), FilesError>>,
    mpsc::Receiver<Telemetry>,
    TestPipeline,
);

struct Harness {
    dir: tempfile::TempDir,
    data: PathBuf,
    stats: Arc<Stats>,
}

fn fast_config(globs: Vec<String>) -> FilesConfig {
    FilesConfig {
        globs,
        rescan_interval: Duration::from_millis(50),
        poll_interval: Duration::from_millis(10),
        rotated_grace: Duration::from_millis(300),
        checkpoint_interval: Duration::from_millis(50),
        multiline: MultilineConfig {
            timeout: Duration::from_millis(100),
            ..MultilineConfig::default()
        },
        ..FilesConfig::default()
    }
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        Self {
            dir,
            data,
            stats: Arc::new(Stats::default()),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn glob(&self, pattern: &str) -> String {
        format!("{}/{pattern}", self.dir.path().display())
    }

    /// Starts tailing; returns the stop switch, the task and the receiving end.
    fn start(&self, config: FilesConfig, queue_max_bytes: u64) -> Started {
        let (sender, rx, guard) = testing::pipeline(queue_max_bytes, self.stats.clone());
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(run(
            config,
            self.data.clone(),
            sender,
            stop,
            self.stats.clone(),
        ));
        (stop_tx, task, rx, guard)
    }
}

fn append(path: &std::path::Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(text.as_bytes()).expect("append");
}

fn bodies(telemetry: Telemetry) -> Vec<String> {
    let Telemetry::Logs(logs) = telemetry else {
        return Vec::new();
    };
    logs.into_iter()
        .flat_map(|rl| rl.scope_logs)
        .flat_map(|sl| sl.log_records)
        .filter_map(|r| as_str(r.body.as_ref()).map(str::to_owned))
        .collect()
}

/// Receives until `n` bodies arrived, or fails after a deadline.
async fn receive(rx: &mut mpsc::Receiver<Telemetry>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(t)) => got.extend(bodies(t)),
            Ok(None) => break,
            Err(_) => panic!("only {} of {n} records arrived: {got:?}", got.len()),
        }
    }
    got
}

/// Nothing more arrives for a while.
async fn quiet(rx: &mut mpsc::Receiver<Telemetry>) -> Vec<String> {
    let mut extra = Vec::new();
    while let Ok(Some(t)) = tokio::time::timeout(Duration::from_millis(600), rx.recv()).await {
        extra.extend(bodies(t));
    }
    extra
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix} {i}\n")).collect()
}

fn expected(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i}")).collect()
}

#[tokio::test]
async fn tails_several_globs_and_files_that_appear_later() {
    let h = Harness::new();
    append(&h.path("a.log"), &numbered("a", 0..3));
    append(&h.path("b.txt"), &numbered("b", 0..2));
    let (stop, task, mut rx, _pipeline) =
        h.start(fast_config(vec![h.glob("*.log"), h.glob("*.txt")]), QUEUE);
    let mut got = receive(&mut rx, 5).await;
    append(&h.path("c.log"), &numbered("c", 0..2));
    got.extend(receive(&mut rx, 2).await);
    got.sort();
    let mut want = [
        expected("a", 0..3),
        expected("b", 0..2),
        expected("c", 0..2),
    ]
    .concat();
    want.sort();
    assert_eq!(got, want);
    stop.send(true).expect("running");
    task.await.expect("joins").expect("runs");
}

#[tokio::test]
async fn resumes_from_the_checkpoint_without_duplicates() {
    let h = Harness::new();
    let log = h.path("app.log");
    append(&log, &numbered("line", 0..5));
    let config = fast_config(vec![h.glob("app.log")]);
    let (stop, task, mut rx, _pipeline) = h.start(config.clone(), QUEUE);
    assert_eq!(receive(&mut rx, 5).await, expected("line", 0..5));
    stop.send(true).expect("running");
    task.await.expect("joins").expect("runs");

    // Written while the agent was down, plus a partial line.
    append(&log, &numbered("line", 5..8));
    append(&log, "partial");
    let (stop, task, mut rx, _pipeline) = h.start(config.clone(), QUEUE);
    assert_eq!(receive(&mut rx, 3).await, expected("line", 5..8));
    assert_eq!(
        quiet(&mut rx).await,
        Vec::<String>::new(),
        "partial line waits"
    );
    append(&log, " now complete\n");
    assert_eq!(receive(&mut rx, 1).await, ["partial now complete"]);
    stop.send(true).expect("running");
    task.await.expect("joins").expect("runs");

    // A saved position past the end (the file was replaced by a shorter one in place).
    std::fs::write(&log, b"").expect("truncate");
    append(&log, "x\n");
    let (stop, task, mut rx, _pipeline) = h.start(config, QUEUE);
    assert_eq!(receive(&mut rx, 1).await, ["x"]);
    stop.send(true).expect("running");
    task.await.expect("joins").expect("runs");
}

#[tokio::test]
async fn start_at_end_skips_existing_content_only() {
    let h = Harness::new();
    append(&h.path("old.log"), &numbered("old", 0..3));
    let mut config = fast_config(vec![h.glob("*.log")]);
    config.start_at = StartAt::End;
    let (stop, task, mut rx, _pipeline) = h.start(config, QUEUE);
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&h.path("old.log"), "old 3\n");
    append(&h.path("new.log"), "new 0\n");
    let mut got = receive(&mut rx, 2).await;
    got.sort();
    assert_eq!(got, ["new 0", "old 3"]);
    stop.send(true).expect("running");
    task.await.expect("joins").expect("runs");
}

#[tokio::test]
async fn rename_rotation_reads_the_old_file_to_its_end() {
    let h = Harness::new();
    let log = h.path("app.log");
    append(&log, &numbered("n", 0..3));
    let (stop, task, mut rx, _pipeline) = h.start(fast_config(vec![h.glob("app.log")]), QUEUE);
    assert_eq!(receive(&mut rx, 3).await, expected("n", 0..3));
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open");
    std::fs::rename(&log, h.path("app.log.1")).expect("rename");
    // The writer still holds the old file for a moment, then reopens the path.
    old.write_all(numbered("n", 3..5).as_bytes())
        .expect("write old");
    append(&log, &numbered("n", 5..8));
    let mut got = receive(&mut rx, 5).await;
    got.sort_by_key(|s| s[2..].parse::<u32>().unwrap_or(0));
    assert_eq!(got, expected("n", 3..8));
    assert_eq!(quiet(&mut rx).await, Vec::<String>::new());
    let label = [("path", log.to_str().expect("utf-8 path"))];
    assert_eq!(
        h.stats.series.get("file_rotations_total", &label),
        Some(1.0)
    );
    stop.send(true).expect("running");
    task.await.expect("joins").expect("runs");
}

#[tokio::test]
async fn copytruncate_starts_over_and_counts_it() {
    let h = Harness::new();
    let log = h.path("app.log");
    append(&log, &numbered("before", 0..4));
    let (stop, task, mut rx, _pipeline) = h.start(fast_config(vec![h.glob("app.log")]), QUEUE);
    assert_eq!(receive(&mut rx, 4).await, expected("before", 0..4));
    std::fs::copy(&log, h.path("app.log.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&log, &numbered("after", 0..2));
    assert_eq!(receive(&mut rx, 2).await, expected("after", 0..2));
    let label = [("path", log.to_str().expect("utf-8 path"))];
    assert_eq!(
        h.stats.series.get("file_truncations_total", &label),
        Some(1.0)
    );
    stop.send(true).expect("running");
    task.await.expect("joins").expect("runs");
}

#[tokio::test]
async fn a_trace_is_one_record_and_counters_move() {
    let h = Harness::new();
    let log = h.path("app.log");
    append(
        &log,
        "2026-11-26 12:00:01.305 ERROR cart check failed\n\
         java.lang.IllegalStateException: cart 5531 is empty\n\
         \tat com.shop.Checkout.main(Checkout.java:33)\n\
         bad \u{fffd}",
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open")
        .write_all(b"\xff\xfe\n")
        .expect("write");
    let (stop, task, mut rx, _pipeline) = h.start(fast_config(vec![h.glob("app.log")]), QUEUE);
    let got = receive(&mut rx, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains("cart check failed\njava.lang.IllegalStateException"));
    let label = [("path", log.to_str().expect("utf-8 path"))];
    assert_eq!(h.stats.series.get("file_lines_total", &label), Some(4.0));
    assert_eq!(
        h.stats.series.get("file_invalid_utf8_lines_total", &label),
        Some(1.0)
    );
    stop.send(true).expect("running");
    task.await.expect("joins").expect("runs");
    let received = h.stats.received(Source::File);
    assert_eq!(
        received
            .log_records
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn a_full_queue_pauses_reading() {
    let h = Harness::new();
    let log = h.path("app.log");
    // Many rounds' worth: each round reads at most READ_BUDGET.
    let total = 8 * READ_BUDGET / 1000;
    let line = format!("{}\n", "x".repeat(999));
    append(&log, &line.repeat(total));
    let (stop, task, mut rx, _pipeline) = h.start(fast_config(vec![h.glob("app.log")]), 64 * 1024);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lag = [("path", log.to_str().expect("utf-8 path"))];
    let lines = h.stats.series.get("file_lines_total", &lag).unwrap_or(0.0);
    assert!(
        lines < total as f64 / 2.0,
        "read on while nothing was taken: {lines}"
    );
    assert_eq!(receive(&mut rx, total).await.len(), total);
    stop.send(true).expect("running");
    task.await.expect("joins").expect("runs");
}

#[test]
fn positions_commit_only_for_the_contents_they_were_taken_of() {
    let h = Harness::new();
    let path = h.path("app.log");
    append(&path, &numbered("a", 0..3));
    let mut tailer = Tailer::new(fast_config(vec![h.glob("*.log")]), &h.data, h.stats.clone());
    tailer.scan(true);
    let mut buf = vec![0u8; 4096];
    let (records, _) = tailer.read_round(&mut buf);
    // The last line stays open until a line follows it (multi-line joining).
    assert_eq!(records.len(), 2);
    let before_truncation = tailer.positions();
    let end = before_truncation[0].offset;
    assert!(end > 0);

    // The file is cut and rewritten while that round is still being queued.
    std::fs::write(&path, "b-0\nb-1\nb-2\n").expect("rewrite");
    let (records, _) = tailer.read_round(&mut buf);
    // The open `a-2`, then `b-0` and `b-1`.
    assert_eq!(records.len(), 3);
    let after_truncation = tailer.positions();
    let new_end = after_truncation[0].offset;
    assert_eq!(new_end, 8, "up to the open b-2");

    // The old round's position belongs to the old contents: not committed.
    tailer
        .submitted((Ok(()), before_truncation))
        .expect("commits");
    let committed = |t: &Tailer| t.files.values().map(|f| f.committed).collect::<Vec<_>>();
    assert_eq!(committed(&tailer), [0]);
    tailer
        .submitted((Ok(()), after_truncation))
        .expect("commits");
    assert_eq!(committed(&tailer), [new_end]);
    // A refused round commits nothing and ends tailing.
    let refused = tailer.submitted((Err(SubmitError::Closed), Vec::new()));
    assert!(matches!(
        refused,
        Err(FilesError::Submit(SubmitError::Closed))
    ));
}

/// The `log.file.path` values of a round's records, in order.
fn paths_of(round: &EncodedLogs) -> Vec<String> {
    use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
    use prost::Message;
    let bytes = crate::batch::encode_request(std::slice::from_ref(round));
    let request = ExportLogsServiceRequest::decode(bytes.as_slice()).expect("decodes");
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .filter_map(|r| r.attributes.iter().find(|a| a.key == PATH_ATTR))
        .map(|a| as_str(a.value.as_ref()).unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn records_read_after_a_rename_carry_the_new_path() {
    let h = Harness::new();
    let log = h.path("app.log");
    append(&log, &numbered("n", 0..3));
    let mut tailer = Tailer::new(
        fast_config(vec![h.glob("app.log*")]),
        &h.data,
        h.stats.clone(),
    );
    tailer.scan(true);
    let mut buf = vec![0u8; 4096];
    let (round, _) = tailer.read_round(&mut buf);
    let at_first = log.to_string_lossy().into_owned();
    assert_eq!(paths_of(&round), [at_first.clone(), at_first]);

    let renamed = h.path("app.log.1");
    std::fs::rename(&log, &renamed).expect("rename");
    append(&renamed, &numbered("n", 3..5));
    tailer.scan(false);
    let (round, _) = tailer.read_round(&mut buf);
    let after = renamed.to_string_lossy().into_owned();
    assert_eq!(paths_of(&round), [after.clone(), after]);
}

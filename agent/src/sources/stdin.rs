//! Standard input: one log record per line (`my-batch-job | bellwether-agent --stdin`).

use bellwether_proto::otlp::common::InstrumentationScope;
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::otlp::now_unix_nanos;
use crate::parse::{LineAssembler, MultilineConfig, MAX_LINE_BYTES};
use crate::pipeline::{PipelineSender, SubmitError, Telemetry};
use crate::stats::Source;

/// Instrumentation scope name of records read from standard input.
pub const SCOPE_NAME: &str = "bellwether.stdin";

/// Records handed to the pipeline at once when input arrives faster than it is read.
const CHUNK_RECORDS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum StdinError {
    #[error("reading standard input: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

/// Reads lines until end of input or until `stop` turns true, handing records to the
/// pipeline; lines already read are always handed over before returning. Multi-line
/// records are joined with the default settings ([`run_with`]).
pub async fn run<R: AsyncRead + Unpin>(
    input: R,
    pipeline: PipelineSender,
    stop: watch::Receiver<bool>,
) -> Result<u64, StdinError> {
    run_with(input, pipeline, stop, MultilineConfig::default()).await
}

/// [`run`] with explicit multi-line settings: a record held open by the joiner is
/// handed over once no line came for `multiline.timeout`.
pub async fn run_with<R: AsyncRead + Unpin>(
    input: R,
    pipeline: PipelineSender,
    mut stop: watch::Receiver<bool>,
    multiline: MultilineConfig,
) -> Result<u64, StdinError> {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut assembler = LineAssembler::new(multiline.joiner);
    let mut line = Vec::new();
    let mut pending = Vec::new();
    let mut lines = 0u64;
    let mut last_line = Instant::now();
    loop {
        let flush_at = assembler
            .has_pending()
            .then(|| last_line + multiline.timeout);
        let read = tokio::select! {
            read = read_line_into(&mut reader, &mut line, MAX_LINE_BYTES + 1) => read,
            () = async {
                match flush_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                assembler.flush(now_unix_nanos(), &mut pending);
                submit(&pipeline, &mut pending).await?;
                continue;
            }
            () = crate::signalled(&mut stop) => break,
        };
        let Some(overflowed) = read? else {
            break;
        };
        lines += 1;
        last_line = Instant::now();
        let overflowed = overflowed || line.len() > MAX_LINE_BYTES;
        assembler.push(&line, overflowed, now_unix_nanos(), &mut pending);
        line.clear();
        // Hand over when the input has nothing more buffered, so a slow trickle of lines
        // is not held back, and in chunks when it streams.
        if pending.len() >= CHUNK_RECORDS || reader.buffer().is_empty() {
            submit(&pipeline, &mut pending).await?;
        }
    }
    assembler.flush(now_unix_nanos(), &mut pending);
    submit(&pipeline, &mut pending).await?;
    Ok(lines)
}

async fn submit(
    pipeline: &PipelineSender,
    pending: &mut Vec<LogRecord>,
) -> Result<(), SubmitError> {
    if pending.is_empty() {
        return Ok(());
    }
    let resource_logs = vec![ResourceLogs {
        resource: None,
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.to_owned(),
                ..InstrumentationScope::default()
            }),
            log_records: std::mem::take(pending),
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }];
    // Standard input waits as long as it takes: slowing the writer is the back-pressure.
    pipeline
        .submit(Source::Stdin, Telemetry::Logs(resource_logs), None)
        .await
}

/// Reads one line into `line` (newline excluded), keeping at most `max` bytes of it and
/// discarding the rest. Returns whether bytes were discarded, or `None` at end of input.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    read_line_into(reader, line, max).await
}

/// Like [`read_line`] but appends to `line`, so a read cancelled half-way (by a timer)
/// loses nothing: the next call goes on with the same line. The caller clears `line`
/// after taking it. A line that reached `max` bytes may have lost bytes beyond.
async fn read_line_into<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    let mut overflowed = false;
    let mut read_any = !line.is_empty();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any.then_some(overflowed));
        }
        read_any = true;
        let (chunk, consumed, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = max.saturating_sub(line.len());
        let keep = room.min(chunk.len());
        line.extend_from_slice(&chunk[..keep]);
        overflowed |= keep < chunk.len();
        reader.consume(consumed);
        if done {
            return Ok(Some(overflowed));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;
    use crate::otlp::as_str;
    use crate::sources::testing;
    use crate::stats::Stats;

    async fn lines_of(input: &[u8], max: usize) -> Vec<(Vec<u8>, bool)> {
        let mut reader = BufReader::with_capacity(8, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        while let Some(overflowed) = read_line(&mut reader, &mut line, max)
            .await
            .expect("in-memory read")
        {
            out.push((line.clone(), overflowed));
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_across_buffer_refills() {
        let lines = lines_of(b"first line\nsecond\n\nlast without newline", 100).await;
        let texts: Vec<&[u8]> = lines.iter().map(|(l, _)| l.as_slice()).collect();
        assert_eq!(
            texts,
            [&b"first line"[..], b"second", b"", b"last without newline"]
        );
        assert!(lines.iter().all(|(_, overflowed)| !overflowed));
    }

    #[tokio::test]
    async fn long_lines_are_capped_and_flagged() {
        let lines = lines_of(b"0123456789abcdef\nok\n", 10).await;
        assert_eq!(lines[0], (b"0123456789".to_vec(), true));
        assert_eq!(lines[1], (b"ok".to_vec(), false));
    }

    /// Records that reach the queue, until `n` arrived (or a deadline passed).
    async fn received(rx: &mut mpsc::Receiver<Telemetry>, n: usize) -> Vec<LogRecord> {
        let mut records = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while records.len() < n {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Telemetry::Logs(batch))) => {
                    for rl in batch {
                        for sl in rl.scope_logs {
                            assert_eq!(sl.scope.map(|s| s.name).as_deref(), Some(SCOPE_NAME));
                            records.extend(sl.log_records);
                        }
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        records
    }

    #[tokio::test]
    async fn hands_parsed_records_to_the_pipeline() {
        let stats = Arc::new(Stats::default());
        let (sender, mut rx, _pipeline) = testing::pipeline(1 << 24, stats.clone());
        let (_stop_tx, stop) = watch::channel(false);
        let input: &[u8] = b"ERROR one\n\n{\"msg\":\"two\",\"level\":\"info\"}\nthree\n\n\
java.lang.IllegalStateException: cart empty\n\tat a.B.c(B.java:1)\n";
        let lines = run(input, sender, stop).await.expect("runs");
        assert_eq!(lines, 7);

        let records = received(&mut rx, 4).await;
        let bodies: Vec<&str> = records
            .iter()
            .filter_map(|r| as_str(r.body.as_ref()))
            .collect();
        assert_eq!(
            bodies,
            [
                "ERROR one",
                "two",
                "three",
                "java.lang.IllegalStateException: cart empty\n\tat a.B.c(B.java:1)"
            ]
        );
        assert_eq!(records[0].severity_number, 17);
        assert_eq!(records[1].severity_number, 9);
        assert_eq!(records[3].severity_number, 17, "a bare trace is an error");
        assert_eq!(
            stats.snapshot().received.stdin.log_records,
            4,
            "blank line not counted, trace lines joined"
        );
    }

    #[tokio::test]
    async fn open_record_is_handed_over_after_the_multiline_timeout() {
        let stats = Arc::new(Stats::default());
        let (sender, mut rx, _pipeline) = testing::pipeline(1 << 24, stats);
        let (stop_tx, stop) = watch::channel(false);
        let (mut writer, reader) = tokio::io::duplex(1024);
        let multiline = MultilineConfig {
            timeout: std::time::Duration::from_millis(50),
            ..MultilineConfig::default()
        };
        let task = tokio::spawn(run_with(reader, sender, stop, multiline));
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"a line\nhalf a ")
            .await
            .expect("write");
        let first = received(&mut rx, 1).await;
        assert_eq!(as_str(first[0].body.as_ref()), Some("a line"));
        // The timer fired while half a line was read: nothing of it is lost.
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"line\n")
            .await
            .expect("write");
        let second = received(&mut rx, 1).await;
        assert_eq!(as_str(second[0].body.as_ref()), Some("half a line"));
        stop_tx.send(true).expect("receiver alive");
        let lines = task.await.expect("joins").expect("runs");
        assert_eq!(lines, 2);
        drop(writer);
    }
}

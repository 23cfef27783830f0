//! Standard input: one log record per line (`my-batch-job | bellwether-agent --stdin`).

use bellwether_proto::otlp::common::InstrumentationScope;
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use crate::otlp::now_unix_nanos;
use crate::parse::{parse_line, MAX_LINE_BYTES};
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
/// pipeline; lines already read are always handed over before returning.
pub async fn run<R: AsyncRead + Unpin>(
    input: R,
    pipeline: PipelineSender,
    mut stop: watch::Receiver<bool>,
) -> Result<u64, StdinError> {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    let mut pending = Vec::new();
    let mut lines = 0u64;
    loop {
        let read = tokio::select! {
            read = read_line(&mut reader, &mut line, MAX_LINE_BYTES + 1) => read,
            () = crate::signalled(&mut stop) => break,
        };
        let Some(overflowed) = read? else {
            break;
        };
        lines += 1;
        if let Some(record) = parse_line(&line, overflowed, now_unix_nanos()) {
            pending.push(record);
        }
        // Hand over when the input has nothing more buffered, so a slow trickle of lines
        // is not held back, and in chunks when it streams.
        if pending.len() >= CHUNK_RECORDS || reader.buffer().is_empty() {
            submit(&pipeline, &mut pending).await?;
        }
    }
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
    let mut overflowed = false;
    let mut read_any = false;
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

    use super::*;
    use crate::otlp::as_str;
    use crate::pipeline;
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

    #[tokio::test]
    async fn hands_parsed_records_to_the_pipeline() {
        let stats = Arc::new(Stats::default());
        let (sender, mut rx) = pipeline::channel(16, stats.clone());
        let (_stop_tx, stop) = watch::channel(false);
        let input: &[u8] = b"ERROR one\n\n{\"msg\":\"two\",\"level\":\"info\"}\nthree\n";
        let lines = run(input, sender, stop).await.expect("runs");
        assert_eq!(lines, 4);

        let mut records = Vec::new();
        while let Ok(Telemetry::Logs(batch)) = rx.try_recv() {
            for rl in batch {
                for sl in rl.scope_logs {
                    assert_eq!(sl.scope.map(|s| s.name).as_deref(), Some(SCOPE_NAME));
                    records.extend(sl.log_records);
                }
            }
        }
        let bodies: Vec<&str> = records
            .iter()
            .filter_map(|r| as_str(r.body.as_ref()))
            .collect();
        assert_eq!(bodies, ["ERROR one", "two", "three"]);
        assert_eq!(records[0].severity_number, 17);
        assert_eq!(records[1].severity_number, 9);
        assert_eq!(
            stats.snapshot().received.stdin.log_records,
            3,
            "blank line not counted"
        );
    }

    #[tokio::test]
    async fn stop_hands_over_what_was_read() {
        let stats = Arc::new(Stats::default());
        let (sender, mut rx) = pipeline::channel(16, stats);
        let (stop_tx, stop) = watch::channel(false);
        let (mut writer, reader) = tokio::io::duplex(1024);
        let task = tokio::spawn(run(reader, sender, stop));
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"a line\n")
            .await
            .expect("write");
        let first = rx.recv().await.expect("record handed over");
        assert!(matches!(first, Telemetry::Logs(ref l) if l.len() == 1));
        stop_tx.send(true).expect("receiver alive");
        let lines = task.await.expect("joins").expect("runs");
        assert_eq!(lines, 1);
        drop(writer);
    }
}

//! `bellwether-agent run -- CMD ARGS…`: runs the service as a child process and ships its
//! standard output and standard error as logs.
//!
//! - Each stream is split into lines and joined into multi-line records on its own
//!   (a stack trace on stderr never mixes with stdout lines); records carry
//!   `log.iostream` = `stdout` / `stderr`.
//! - Passthrough (default on): what the child writes is also written, unchanged, to
//!   the agent's own stdout / stderr, so `kubectl logs` and terminals still show it.
//! - SIGTERM and SIGINT sent to the agent are forwarded to the child. When the agent is
//!   asked to stop any other way, the child gets SIGTERM.
//! - When the child exits and both streams ended, the remaining records are handed over
//!   and the child's exit code is published; the agent then flushes and exits with it
//!   (128 + signal number when the child was killed by a signal).
//! - Back-pressure: while the queue is full the pipes are not read, so a child that
//!   writes faster than the agent can queue is slowed down, never dropped.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bellwether_proto::otlp::common::InstrumentationScope;
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_stacktrace::JoinerConfig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::otlp::{now_unix_nanos, string_kv};
use crate::parse::{LineAssembler, MultilineConfig, MAX_LINE_BYTES};
use crate::pipeline::{PipelineSender, Telemetry};
use crate::sources::lines::LineSplitter;
use crate::stats::Source;

/// Instrumentation scope name of records read from the child's output.
pub const SCOPE_NAME: &str = "bellwether.exec";
/// Record attribute naming the stream a line came from.
pub const IOSTREAM_ATTR: &str = "log.iostream";

/// How long a stop without a signal waits for one to arrive before sending SIGTERM
/// itself (the signal that stopped the agent is usually on its way to this task too).
const SIGNAL_SETTLE: Duration = Duration::from_millis(200);
/// How long the streams are still read after the child exited (a grandchild may hold
/// them open).
const AFTER_EXIT: Duration = Duration::from_secs(2);

/// The command to run and how to treat its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    pub program: String,
    pub args: Vec<String>,
    /// Also write the child's output to the agent's own stdout / stderr.
    pub passthrough: bool,
    pub multiline: MultilineConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

/// The running wrapper: its task, and the child's exit code once it is known and its
/// output was handed over.
pub struct ExecHandle {
    pub task: JoinHandle<()>,
    pub exit_code: watch::Receiver<Option<u8>>,
}

/// Resolves when the child exited and its output was handed over; never when `handle`
/// is `None`.
pub async fn finished(handle: Option<&ExecHandle>) -> u8 {
    let Some(handle) = handle else {
        return std::future::pending().await;
    };
    let mut rx = handle.exit_code.clone();
    let code = rx
        .wait_for(Option::is_some)
        .await
        .map(|code| code.unwrap_or(1));
    match code {
        Ok(code) => code,
        Err(_) => std::future::pending().await,
    }
}

/// Starts the child and the task that reads its output.
pub fn spawn(
    config: ExecConfig,
    pipeline: PipelineSender,
    stop: watch::Receiver<bool>,
) -> Result<ExecHandle, ExecError> {
    let mut child = Command::new(&config.program)
        .args(&config.args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ExecError::Spawn {
            program: config.program.clone(),
            source,
        })?;
    info!(program = %config.program, pid = child.id().unwrap_or(0), "started child process");
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (exit_tx, exit_code) = watch::channel(None);
    let task = tokio::spawn(async move {
        let code = supervise(child, stdout, stderr, config, pipeline, stop).await;
        let _ = exit_tx.send(Some(code));
    });
    Ok(ExecHandle { task, exit_code })
}

/// One of the child's output streams.
struct Stream<R> {
    name: &'static str,
    reader: Option<R>,
    passthrough: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    splitter: LineSplitter,
    assembler: LineAssembler,
    last_line: Instant,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Stream<R> {
    fn new(
        name: &'static str,
        reader: Option<R>,
        passthrough: Option<Box<dyn AsyncWrite + Send + Unpin>>,
        joiner: JoinerConfig,
    ) -> Self {
        Self {
            name,
            reader,
            passthrough,
            splitter: LineSplitter::new(MAX_LINE_BYTES + 1),
            assembler: LineAssembler::new(joiner),
            last_line: Instant::now(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// Reads once; `None` at the end of the stream (or when there is none).
    async fn read(&mut self) -> Option<usize> {
        let reader = self.reader.as_mut()?;
        match reader.read(&mut self.buf).await {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(e) => {
                warn!(stream = self.name, error = %e, "cannot read child output");
                None
            }
        }
    }

    /// Passes `n` freshly read bytes through and turns complete lines into records.
    async fn take(&mut self, n: usize, out: &mut Vec<LogRecord>) {
        if let Some(writer) = self.passthrough.as_mut() {
            let ok = writer.write_all(&self.buf[..n]).await.is_ok() && writer.flush().await.is_ok();
            if !ok {
                // Nobody reads the agent's own output any more: keep shipping logs.
                self.passthrough = None;
            }
        }
        let now = now_unix_nanos();
        let before = out.len();
        let assembler = &mut self.assembler;
        self.splitter.feed(&self.buf[..n], |line, overflowed, _| {
            assembler.push(line, overflowed, now, out);
        });
        self.last_line = Instant::now();
        self.label(out, before);
    }

    /// Ends the open record; at the end of the stream the partial last line too.
    fn flush(&mut self, end: bool, out: &mut Vec<LogRecord>) {
        let now = now_unix_nanos();
        let before = out.len();
        if end {
            if let Some((line, overflowed)) = self.splitter.take_partial() {
                self.assembler.push(&line, overflowed, now, out);
            }
        }
        self.assembler.flush(now, out);
        self.label(out, before);
    }

    fn label(&self, out: &mut [LogRecord], from: usize) {
        for record in &mut out[from..] {
            record.attributes.push(string_kv(IOSTREAM_ATTR, self.name));
        }
    }

    fn flush_due(&self, timeout: Duration) -> Option<Instant> {
        self.assembler
            .has_pending()
            .then(|| self.last_line + timeout)
    }
}

async fn supervise(
    mut child: Child,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    config: ExecConfig,
    pipeline: PipelineSender,
    mut stop: watch::Receiver<bool>,
) -> u8 {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let passthrough = |w: Box<dyn AsyncWrite + Send + Unpin>| config.passthrough.then_some(w);
    let mut out = Stream::new(
        "stdout",
        stdout,
        passthrough(Box::new(tokio::io::stdout())),
        config.multiline.joiner,
    );
    let mut err = Stream::new(
        "stderr",
        stderr,
        passthrough(Box::new(tokio::io::stderr())),
        config.multiline.joiner,
    );
    let mut signals = Signals::new();
    let mut status: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let mut stop_seen = false;
    let mut term_at: Option<Instant> = None;
    let mut forwarded = false;
    let timeout = config.multiline.timeout;
    let mut records = Vec::new();
    let mut submit_ok = true;

    while out.reader.is_some() || err.reader.is_some() {
        let flush_at = [out.flush_due(timeout), err.flush_due(timeout)]
            .into_iter()
            .flatten()
            .min();
        let give_up_at = exited_at.map(|t| t + AFTER_EXIT);
        tokio::select! {
            n = out.read(), if out.reader.is_some() => match n {
                Some(n) => out.take(n, &mut records).await,
                None => {
                    out.reader = None;
                    out.flush(true, &mut records);
                }
            },
            n = err.read(), if err.reader.is_some() => match n {
                Some(n) => err.take(n, &mut records).await,
                None => {
                    err.reader = None;
                    err.flush(true, &mut records);
                }
            },
            () = sleep_until(flush_at) => {
                let now = Instant::now();
                for stream in [&mut out as &mut dyn Flush, &mut err] {
                    stream.flush_if_due(now, timeout, &mut records);
                }
            }
            exit = child.wait(), if status.is_none() => {
                exited_at = Some(Instant::now());
                match exit {
                    Ok(exit) => status = Some(exit),
                    Err(e) => {
                        warn!(error = %e, "cannot wait for the child process");
                        status = Some(ExitStatus::from_raw(1 << 8));
                    }
                }
            }
            () = sleep_until(give_up_at) => {
                warn!("child exited but its output stayed open, no longer reading it");
                for stream in [&mut out as &mut dyn Flush, &mut err] {
                    stream.end(&mut records);
                }
            }
            signal = signals.recv() => {
                if let (Some(pid), None) = (pid, status) {
                    info!(signal = %signal, "forwarding signal to the child process");
                    let _ = kill(pid, signal);
                    forwarded = true;
                }
            }
            () = crate::signalled(&mut stop), if !stop_seen => {
                stop_seen = true;
                term_at = Some(Instant::now() + SIGNAL_SETTLE);
            }
            () = sleep_until(term_at), if !forwarded && status.is_none() => {
                term_at = None;
                if let Some(pid) = pid {
                    info!("stopping the child process");
                    let _ = kill(pid, Signal::SIGTERM);
                }
                forwarded = true;
            }
        }
        if !records.is_empty() && submit_ok {
            submit_ok = submit(&pipeline, std::mem::take(&mut records)).await;
        }
    }
    let status = match status {
        Some(status) => status,
        None => match child.wait().await {
            Ok(status) => status,
            Err(e) => {
                warn!(error = %e, "cannot wait for the child process");
                ExitStatus::from_raw(1 << 8)
            }
        },
    };
    let code = exit_code(status);
    info!(code, status = %status, "child process exited");
    code
}

/// Hands records over, waiting as long as it takes; false once the agent is closing.
async fn submit(pipeline: &PipelineSender, records: Vec<LogRecord>) -> bool {
    let resource_logs = vec![ResourceLogs {
        resource: None,
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.to_owned(),
                ..InstrumentationScope::default()
            }),
            log_records: records,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }];
    match pipeline
        .submit(Source::Exec, Telemetry::Logs(resource_logs), None)
        .await
    {
        Ok(()) => true,
        Err(e) => {
            warn!(error = %e, "cannot hand child output to the pipeline");
            false
        }
    }
}

/// The exit code a shell would report: the code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from((128 + signal).min(255)).unwrap_or(255),
        (None, None) => 1,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The streams' flushing, without their reader type.
trait Flush {
    fn flush_if_due(&mut self, now: Instant, timeout: Duration, out: &mut Vec<LogRecord>);
    fn end(&mut self, out: &mut Vec<LogRecord>);
}

impl<R: AsyncRead + Unpin> Flush for Stream<R> {
    fn flush_if_due(&mut self, now: Instant, timeout: Duration, out: &mut Vec<LogRecord>) {
        if self.flush_due(timeout).is_some_and(|due| due <= now) {
            self.flush(false, out);
        }
    }

    fn end(&mut self, out: &mut Vec<LogRecord>) {
        if self.reader.take().is_some() {
            self.flush(true, out);
        }
    }
}

/// SIGTERM and SIGINT, as they reach the agent.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn recv(&mut self) -> Signal {
        let term = async {
            match self.term.as_mut() {
                Some(s) => match s.recv().await {
                    Some(()) => Signal::SIGTERM,
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let int = async {
            match self.int.as_mut() {
                Some(s) => match s.recv().await {
                    Some(()) => Signal::SIGINT,
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = term => s,
            s = int => s,
        }
    }
}

#[cfg(test)]
mod tests;

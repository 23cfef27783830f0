//! Wires the stages together and owns the shutdown sequence.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{Config, Listeners};
use crate::export::{run_exporter, GrpcTransport, InvalidCollectorUrl};
use crate::pipeline::{self, PipelineSender, Tagger};
use crate::queue::{Queue, QueueError};
use crate::sources;
use crate::stats::{Stats, StatsSnapshot};

/// Standard input (or a stand-in, in tests) to read log lines from.
pub type Input = Box<dyn AsyncRead + Send + Unpin>;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Collector(#[from] InvalidCollectorUrl),
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Exec(#[from] sources::exec::ExecError),
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Records that are unaccounted for: neither delivered, dropped for a counted reason,
    /// nor still queued. Zero unless the queue's storage failed.
    pub lost: u64,
    /// Records left in the durable queue (delivered after the next start).
    pub queued: u64,
    /// Exit code of the child run by `bellwether-agent run` (128 + signal when killed).
    pub exit_code: Option<u8>,
    pub stats: StatsSnapshot,
}

/// Why the agent is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    EndOfInput,
    Signal,
}

/// Runs the agent until `shutdown` resolves or, when `stdin` is given, until it ends;
/// then stops the receivers, drains the pipeline into the queue and delivers what it
/// can within `config.flush_timeout`. What is left stays in the queue in
/// `config.data_dir`, and is delivered first by the next run.
pub async fn run(
    config: Config,
    listeners: Listeners,
    stdin: Option<Input>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunReport, RunError> {
    tokio::fs::create_dir_all(&config.data_dir)
        .await
        .map_err(|source| RunError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    let transport = GrpcTransport::with_credentials(
        &config.collector,
        config.export_timeout,
        &config.credentials,
    )?;
    let stats = Arc::new(Stats::default());
    let (queue, recovered) = {
        let (data_dir, instance_id) =
            (config.data_dir.clone(), config.identity.instance_id.clone());
        let options = crate::queue::Options {
            max_bytes: config.queue_max_bytes,
            cache_bytes: config.queue_cache_bytes,
            compression: config.compression,
            disk_reserve: config.disk_reserve,
            ..crate::queue::Options::default()
        };
        let stats = stats.clone();
        tokio::task::spawn_blocking(move || {
            Queue::open_with(&data_dir, &instance_id, options, stats)
        })
        .await
        .map_err(|e| QueueError::Storage(sled::Error::ReportableBug(e.to_string())))??
    };
    stats
        .queue_max_bytes
        .store(config.queue_max_bytes, Ordering::Relaxed);
    info!(
        service = %config.identity.service,
        version = %config.identity.version,
        environment = %config.identity.environment,
        instance_id = %config.identity.instance_id,
        collector = %config.collector,
        token = config.credentials.token.is_some(),
        queued_batches = recovered.batches,
        queued_records = recovered.records,
        "starting"
    );
    if recovered.corrupt_entries > 0 || recovered.reset {
        error!(
            corrupt_entries = recovered.corrupt_entries,
            reset = recovered.reset,
            "queue was damaged: damaged data was set aside, the rest is delivered"
        );
    }

    let (sender, telemetry_rx) = pipeline::channel_bounded(
        config.queue_capacity,
        config.pipeline_max_bytes,
        queue.clone(),
        stats.clone(),
    );
    let (give_up_tx, give_up_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut pipeline_task = tokio::spawn(pipeline::run_pipeline(
        telemetry_rx,
        Tagger::new(&config.identity),
        config.batch,
        queue.clone(),
    ));
    let mut exporter_task = tokio::spawn(run_exporter(
        queue.clone(),
        transport,
        config.retry,
        stats.clone(),
        give_up_rx,
        config.export_concurrency,
    ));

    let mut receivers = Vec::new();
    if let Some(listener) = listeners.otlp_grpc {
        let (pipeline, stop) = (sender.clone(), stop_rx.clone());
        receivers.push(spawn_server(
            "otlp-grpc",
            listener.local_addr(),
            async move {
                sources::otlp_grpc::serve(listener, pipeline, stopped(stop))
                    .await
                    .map_err(|e| e.to_string())
            },
        ));
    }
    if let Some(listener) = listeners.otlp_http {
        let (pipeline, stop) = (sender.clone(), stop_rx.clone());
        receivers.push(spawn_server(
            "otlp-http",
            listener.local_addr(),
            async move {
                sources::otlp_http::serve(listener, pipeline, stopped(stop))
                    .await
                    .map_err(|e| e.to_string())
            },
        ));
    }
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    let admin = listeners.admin.map(|listener| {
        let stats = stats.clone();
        spawn_server("admin", listener.local_addr(), async move {
            crate::admin::serve(listener, stats, stopped(admin_stop_rx))
                .await
                .map_err(|e| e.to_string())
        })
    });
    let mut stdin_task = stdin.map(|input| {
        info!("reading log lines from standard input");
        tokio::spawn(sources::stdin::run_with(
            input,
            sender.clone(),
            stop_rx.clone(),
            config.multiline,
        ))
    });
    if !config.files.globs.is_empty() {
        receivers.push(sources::files::spawn(
            config.files.clone(),
            config.data_dir.clone(),
            sender.clone(),
            stop_rx.clone(),
            stats.clone(),
        ));
    }
    let exec = match config.exec.clone() {
        Some(exec) => Some(sources::exec::spawn(exec, sender.clone(), stop_rx.clone())?),
        None => None,
    };

    let stop = tokio::select! {
        () = shutdown => Stop::Signal,
        () = async {
            match stdin_task.as_mut() {
                Some(task) => {
                    match task.await {
                        Ok(Ok(lines)) => info!(lines, "end of standard input"),
                        Ok(Err(e)) => error!(error = %e, "standard input failed"),
                        Err(e) => error!(error = %e, "standard input task failed"),
                    }
                }
                None => std::future::pending().await,
            }
        } => Stop::EndOfInput,
        code = sources::exec::finished(exec.as_ref()) => {
            info!(code, "child process exited");
            Stop::EndOfInput
        }
    };
    let exit_code = exec.as_ref().map(|e| e.exit_code.clone());
    receivers.extend(exec.map(|e| e.task));
    if stop == Stop::EndOfInput {
        stdin_task = None;
    }
    info!(reason = ?stop, flush_timeout_ms = config.flush_timeout.as_millis() as u64, "shutting down");

    let drain = drain(
        stop_tx,
        receivers,
        stdin_task,
        sender,
        &mut pipeline_task,
        &mut exporter_task,
    );
    if tokio::time::timeout(config.flush_timeout, drain)
        .await
        .is_err()
    {
        warn!("flush timeout reached, keeping undelivered data queued for the next start");
        let _ = give_up_tx.send(true);
        // The exporter stops at once when told to; a stuck receiver could keep the
        // pipeline open, so bound the wait anyway.
        // A task the drain already awaited to completion must not be polled again.
        for task in [&mut exporter_task, &mut pipeline_task] {
            if !task.is_finished()
                && tokio::time::timeout(Duration::from_secs(2), &mut *task)
                    .await
                    .is_err()
            {
                task.abort();
            }
        }
    }
    let flusher = queue.clone();
    match tokio::task::spawn_blocking(move || flusher.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!(error = %e, "cannot flush the queue"),
        Err(e) => error!(error = %e, "cannot flush the queue"),
    }

    let (queued_batches, queued, _) = queue.len();
    let lost = lost_records(&stats, recovered.records, queued);
    let _ = admin_stop_tx.send(true);
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(Duration::from_secs(2), admin).await;
    }
    let snapshot = stats.snapshot();
    if queued > 0 {
        warn!(
            records = queued,
            batches = queued_batches,
            data_dir = %config.data_dir.display(),
            "records remain queued, they are delivered after the next start"
        );
    }
    if lost > 0 {
        error!(
            lost,
            "records unaccounted for: accepted but neither delivered nor queued"
        );
    }
    info!(
        exported_log_records = snapshot.exported.log_records,
        exported_spans = snapshot.exported.spans,
        dropped_non_retryable = snapshot.dropped.non_retryable,
        dropped_rejected = snapshot.dropped.rejected_by_collector,
        queued,
        "stopped"
    );
    Ok(RunReport {
        lost,
        queued,
        exit_code: exit_code.and_then(|rx| *rx.borrow()),
        stats: snapshot,
    })
}

/// Stops sources, then waits for the pipeline to flush and the exporter to deliver.
async fn drain(
    stop_tx: watch::Sender<bool>,
    receivers: Vec<JoinHandle<()>>,
    stdin_task: Option<JoinHandle<Result<u64, sources::stdin::StdinError>>>,
    sender: PipelineSender,
    pipeline_task: &mut JoinHandle<()>,
    exporter_task: &mut JoinHandle<()>,
) {
    let _ = stop_tx.send(true);
    for receiver in receivers {
        let _ = receiver.await;
    }
    if let Some(task) = stdin_task {
        if let Ok(Err(e)) = task.await {
            error!(error = %e, "standard input failed");
        }
    }
    // With the sources gone, dropping the last sender closes the channel: the pipeline
    // flushes its partial batches and ends, which in turn ends the exporter.
    drop(sender);
    let _ = pipeline_task.await;
    let _ = exporter_task.await;
}

/// Records accepted (this run, or queued by an earlier one) that were neither exported,
/// dropped for a counted reason, nor are still queued.
fn lost_records(stats: &Stats, recovered: u64, queued: u64) -> u64 {
    let s = stats.snapshot();
    let received = stats.received_records();
    let accounted = s.exported.log_records
        + s.exported.spans
        + s.dropped.non_retryable
        + s.dropped.rejected_by_collector
        + s.dropped.corrupt
        + queued;
    (received + recovered).saturating_sub(accounted)
}

fn spawn_server(
    kind: &'static str,
    addr: std::io::Result<std::net::SocketAddr>,
    server: impl Future<Output = Result<(), String>> + Send + 'static,
) -> JoinHandle<()> {
    match addr {
        Ok(addr) => info!(kind = %kind, addr = %addr, "listening"),
        Err(e) => warn!(kind = %kind, error = %e, "listening on an unknown address"),
    }
    tokio::spawn(async move {
        if let Err(e) = server.await {
            error!(kind = %kind, error = %e, "listener failed");
        }
    })
}

/// Resolves when the stop flag turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    crate::signalled(&mut stop).await;
}

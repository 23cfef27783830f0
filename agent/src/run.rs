//! Wires the stages together and owns the shutdown sequence.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{Config, Listeners};
use crate::export::{run_exporter, GrpcTransport, InvalidCollectorUrl};
use crate::identity::random_hex_id;
use crate::pipeline::{self, BatchIds, PipelineSender, Tagger};
use crate::sources;
use crate::stats::{Stats, StatsSnapshot};

/// Batches waiting for the exporter; small, since the pipeline channel before it is the
/// real buffer.
const BATCH_QUEUE: usize = 4;

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
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Records accepted but neither delivered nor dropped for a counted reason by the
    /// time the flush timeout ran out.
    pub lost: u64,
    pub stats: StatsSnapshot,
}

/// Why the agent is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    EndOfInput,
    Signal,
}

/// Runs the agent until `shutdown` resolves or, when `stdin` is given, until it ends;
/// then stops the receivers, drains the pipeline and flushes every batch to the
/// collector within `config.flush_timeout`.
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
    let transport = GrpcTransport::new(&config.collector, config.export_timeout)?;
    let stats = Arc::new(Stats::default());
    let boot_id = random_hex_id();
    info!(
        service = %config.identity.service,
        version = %config.identity.version,
        environment = %config.identity.environment,
        instance_id = %config.identity.instance_id,
        boot_id = %boot_id,
        collector = %config.collector,
        "starting"
    );

    let (sender, telemetry_rx) = pipeline::channel(config.queue_capacity, stats.clone());
    let (batch_tx, batch_rx) = mpsc::channel(BATCH_QUEUE);
    let (give_up_tx, give_up_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut pipeline_task = tokio::spawn(pipeline::run_pipeline(
        telemetry_rx,
        Tagger::new(&config.identity),
        config.batch,
        BatchIds::new(&config.identity.instance_id, &boot_id),
        batch_tx,
    ));
    let mut exporter_task = tokio::spawn(run_exporter(
        batch_rx,
        transport,
        config.retry,
        stats.clone(),
        give_up_rx,
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
        tokio::spawn(sources::stdin::run(input, sender.clone(), stop_rx.clone()))
    });

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
    };
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
        warn!("flush timeout reached, giving up on undelivered data");
        let _ = give_up_tx.send(true);
        // Giving up makes the exporter discard what is left; it cannot take long, but a
        // stuck receiver could keep the pipeline open, so bound the wait anyway.
        if tokio::time::timeout(Duration::from_secs(2), &mut exporter_task)
            .await
            .is_err()
        {
            pipeline_task.abort();
            exporter_task.abort();
        }
    }

    let lost = lost_records(&stats);
    stats.dropped_shutdown.store(lost, Ordering::Relaxed);
    let _ = admin_stop_tx.send(true);
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(Duration::from_secs(2), admin).await;
    }
    let snapshot = stats.snapshot();
    if lost > 0 {
        error!(lost, "records lost: not delivered before the flush timeout");
    }
    info!(
        exported_log_records = snapshot.exported.log_records,
        exported_spans = snapshot.exported.spans,
        dropped_non_retryable = snapshot.dropped.non_retryable,
        dropped_rejected = snapshot.dropped.rejected_by_collector,
        lost,
        "stopped"
    );
    Ok(RunReport {
        lost,
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

/// Accepted records that were neither exported nor dropped for a counted reason.
fn lost_records(stats: &Stats) -> u64 {
    let s = stats.snapshot();
    let received = [s.received.otlp_grpc, s.received.otlp_http, s.received.stdin]
        .iter()
        .map(|r| r.log_records + r.spans)
        .sum::<u64>();
    let accounted = s.exported.log_records
        + s.exported.spans
        + s.dropped.non_retryable
        + s.dropped.rejected_by_collector;
    received.saturating_sub(accounted)
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

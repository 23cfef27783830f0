//! Runs the collector: opens the store, serves the three listeners, stops on `shutdown`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bellwether_proto::v1::release_service_server::ReleaseServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::node::Replica;
use crate::cluster::Node;
use crate::config::Settings;
use crate::evaluate::Evaluator;
use crate::grpc_release::ReleaseGrpc;
use crate::ingest::grpc::{ExportServer, Logs, Metrics, Traces};
use crate::ingest::Ingestor;
use crate::releases::Releases;
use crate::retention::{Pruner, Retention};
use bellwether_alerting::alerts::bridge::AlertBridge;
use bellwether_alerting::alerts::AlertService;
use bellwether_model::time::now_unix_ms;
use bellwether_store::alerts::SledAlertStore;
use bellwether_store::backup::Source;
use bellwether_store::nats::{KvAlertStore, KvVerdicts, Nats};
use bellwether_store::verdicts::SledVerdicts;
use bellwether_store::{ReleaseStore, SledStore, StoreError};

/// Batch ids are remembered this long; a re-sent batch older than that counts again.
pub const BATCH_ID_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The bound sockets the collector serves.
pub struct Listeners {
    pub otlp_grpc: TcpListener,
    pub otlp_http: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    /// Binds the addresses of `settings`.
    pub async fn bind(settings: &Settings) -> Result<Self, ServerError> {
        async fn bind(kind: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { kind, addr, source })
        }
        Ok(Self {
            otlp_grpc: bind("otlp-grpc", settings.otlp_grpc_addr).await?,
            otlp_http: bind("otlp-http", settings.otlp_http_addr).await?,
            http: bind("http", settings.http_addr).await?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {kind} listener on {addr}: {source}")]
    Bind {
        kind: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("opening store in {dir}: {source}")]
    Open { dir: String, source: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{kind} listener failed: {message}")]
    Serve { kind: &'static str, message: String },
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn local_addr(kind: &'static str, listener: &TcpListener) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|e| ServerError::Serve {
        kind,
        message: e.to_string(),
    })
}

/// Serves until `shutdown` completes, then drains connections and flushes the store.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let dir = settings.data_dir.clone();
    // A single collector flushes each batch before it answers; a cluster node's replica
    // relies on the stream, which JetStream acknowledged before the sender was answered.
    let flush_each_write = settings.cluster.is_none();
    let opened = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Sled(e.into()))?;
        let store = SledStore::open_with(&dir, flush_each_write)?;
        let verdicts = SledVerdicts::new(store.open_tree("verdicts")?).gated(store.gate());
        let pruner = Pruner::open(&store, store.open_tree("verdicts")?)?;
        let progress = store.open_tree("cluster")?;
        Ok::<_, StoreError>((store, verdicts, pruner, progress))
    })
    .await?
    .map_err(|source| ServerError::Open {
        dir: settings.data_dir.display().to_string(),
        source,
    })?;
    let (store, verdicts, pruner, progress) = opened;
    let sled_store = store.clone();
    let store: Arc<dyn ReleaseStore> = Arc::new(store);
    tracing::info!(data_dir = %settings.data_dir.display(), "store opened");
    let parts = match &settings.cluster {
        None => Parts::single(&settings, sled_store, Arc::clone(&store), verdicts).await?,
        Some(cluster) => Parts::cluster(&settings, cluster, Arc::clone(&store), progress).await?,
    };
    let Parts {
        evaluator,
        alert_service,
        node,
        replica,
        backups,
    } = parts;

    let mut ingestor = Ingestor::new(Arc::clone(&store))
        .with_limits(settings.limits)
        .checking_disk(&settings.data_dir);
    let mut releases = Releases::new(Arc::clone(&store)).with_alerts(alert_service.engine());
    if let Some(node) = &node {
        ingestor = ingestor.publishing_to(node.log().clone());
        releases = releases.with_cluster(node.clone());
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |rx: &watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    for (kind, listener) in [
        ("otlp-grpc", &listeners.otlp_grpc),
        ("otlp-http", &listeners.otlp_http),
        ("http", &listeners.http),
    ] {
        let addr = local_addr(kind, listener)?;
        tracing::info!(kind = %kind, addr = %addr, "listening");
    }

    let mut grpc = tonic::transport::Server::builder();
    let mut acceptor = None;
    if let Some(tls) = &settings.tls {
        let failed = |message: String| ServerError::Serve {
            kind: "tls",
            message,
        };
        grpc = grpc
            .tls_config(crate::tls::grpc_config(tls))
            .map_err(|e| failed(e.to_string()))?;
        acceptor = Some(crate::tls::acceptor(tls).map_err(failed)?);
    }
    let grpc = grpc
        .layer(crate::auth::grpc::AuthLayer::new(settings.auth.clone()))
        .add_service(ExportServer::<Logs>::new(ingestor.clone()))
        .add_service(ExportServer::<Traces>::new(ingestor.clone()))
        .add_service(ExportServer::<Metrics>::new(ingestor.clone()))
        .add_service(ReleaseServiceServer::new(ReleaseGrpc::new(
            releases.clone(),
            evaluator.clone(),
            stop_rx.clone(),
        )))
        .serve_with_incoming_shutdown(
            // No Nagle: an answer's last small frame must not wait for the client's
            // delayed ACK (40 ms on Linux).
            tonic::transport::server::TcpIncoming::from(listeners.otlp_grpc)
                .with_nodelay(Some(true)),
            stopped(&stop_rx),
        );
    let grpc = async {
        grpc.await.map_err(|e| ServerError::Serve {
            kind: "otlp-grpc",
            message: e.to_string(),
        })
    };
    let otlp_guard = crate::auth::http::Guard {
        tokens: settings.auth.clone(),
        policy: crate::auth::policy::otlp_http,
    };
    let otlp_router = otlp_guard.wrap(crate::ingest::http::router(ingestor));
    let otlp_http = serve_http(
        "otlp-http",
        listeners.otlp_http,
        otlp_router,
        acceptor.clone(),
        stopped(&stop_rx),
    );
    let views = crate::ui::Views {
        store: Arc::clone(&store),
        releases: releases.clone(),
        evaluator: evaluator.clone(),
        alerts: alert_service.engine(),
    };
    let api = crate::api::router(releases, evaluator.clone())
        .merge(crate::api::alerts::routes(alert_service.engine()))
        .merge(crate::metrics::routes(crate::metrics::Sources {
            store: Arc::clone(&store),
            evaluator: evaluator.clone(),
            alerts: alert_service.engine(),
            cluster: node.clone(),
        }))
        .merge(crate::ui::routes(views))
        .merge(crate::api::backup::routes(backups))
        .merge(crate::cluster::api::routes(node.clone()));
    let api_guard = crate::auth::http::Guard {
        tokens: settings.auth.clone(),
        policy: crate::auth::policy::http_api,
    };
    let api = api_guard.wrap(api);
    let http = serve_http("http", listeners.http, api, acceptor, stopped(&stop_rx));
    let maintenance = maintain(
        Maintenance {
            store: Arc::clone(&store),
            pruner,
            alerts: alert_service.engine(),
            retention: settings.retention,
        },
        stopped(&stop_rx),
    );
    let evaluation = async {
        evaluator
            .run(stopped(&stop_rx))
            .await
            .map_err(|e| ServerError::Serve {
                kind: "evaluator",
                message: e.to_string(),
            })
    };

    let alerting = async {
        alert_service
            .run(|| stopped(&stop_rx))
            .await
            .map_err(ServerError::Store)
    };

    let replication = async {
        match replica {
            Some(replica) => replica
                .run(stopped(&stop_rx))
                .await
                .map_err(|e| ServerError::Serve {
                    kind: "cluster replica",
                    message: e.to_string(),
                }),
            None => Ok(()),
        }
    };
    let servers = async {
        tokio::try_join!(
            grpc,
            otlp_http,
            http,
            maintenance,
            evaluation,
            alerting,
            replication
        )
    };
    tokio::pin!(servers);
    let result = tokio::select! {
        result = &mut servers => result.map(drop),
        () = shutdown => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
            servers.await.map(drop)
        }
    };
    let _ = stop_tx.send(true);
    if let Some(node) = &node {
        node.leave().await;
    }

    let flush_store = Arc::clone(&store);
    tokio::task::spawn_blocking(move || flush_store.flush()).await??;
    tracing::info!("stopped");
    result
}

/// What differs between a single collector and a cluster node.
struct Parts {
    evaluator: Evaluator,
    alert_service: AlertService,
    node: Option<Node>,
    replica: Option<Replica>,
    /// A single collector's databases; a cluster node has none to back up.
    backups: Option<crate::api::backup::Backups>,
}

impl Parts {
    /// Verdicts and alerts in this collector's own sled store, all writes passing the
    /// release store's gate so that a backup is one point in time.
    async fn single(
        settings: &Settings,
        sled_store: SledStore,
        store: Arc<dyn ReleaseStore>,
        verdicts: SledVerdicts,
    ) -> Result<Self, ServerError> {
        let evaluator = Evaluator::new(
            Arc::clone(&store),
            Arc::new(verdicts),
            settings.detection.clone(),
        );
        let (alerts_dir, alerting) = (settings.data_dir.join("alerts"), settings.alerting.clone());
        let gate = sled_store.gate();
        let (alert_service, alerts_db) = tokio::task::spawn_blocking(move || {
            let alerts = SledAlertStore::open(&alerts_dir)?.gated(gate);
            let db = alerts.db().clone();
            Ok::<_, bellwether_alerting::alerts::AlertError>((
                AlertService::over_sled(alerts, &alerting)?,
                db,
            ))
        })
        .await?
        .map_err(|e| ServerError::Serve {
            kind: "alerts",
            message: e.to_string(),
        })?;
        let backups = crate::api::backup::Backups {
            source: Source::new(sled_store.gate())
                .database("", sled_store.db().clone())
                .database("alerts", alerts_db),
            spool_dir: settings.data_dir.clone(),
        };
        let mut parts = Self::finish(evaluator, alert_service, store, None, None)?;
        parts.backups = Some(backups);
        Ok(parts)
    }

    /// Verdicts and alerts in the cluster's shared key-value buckets, acted on for this
    /// node's partitions; counts in this node's replica of the ingest stream.
    async fn cluster(
        settings: &Settings,
        cluster: &crate::cluster::ClusterSettings,
        store: Arc<dyn ReleaseStore>,
        progress: sled::Tree,
    ) -> Result<Self, ServerError> {
        let failed = |e: &dyn std::fmt::Display| ServerError::Serve {
            kind: "cluster",
            message: e.to_string(),
        };
        let (node, replica) = Node::start(cluster.clone(), Arc::clone(&store), progress)
            .await
            .map_err(|e| failed(&e))?;
        let nats_settings = crate::cluster::node::nats_settings(cluster);
        let (alerting, scope) = (settings.alerting.clone(), node.scope());
        let (verdicts, alert_service) = tokio::task::spawn_blocking(move || {
            let nats = Nats::connect(&nats_settings).map_err(|e| failed(&e))?;
            // Nodes starting together make the buckets together, and JetStream may still
            // be electing their leaders: keep trying for a while.
            let started = std::time::Instant::now();
            let (verdicts, alerts) = loop {
                let opened = KvVerdicts::open(&nats)
                    .and_then(|verdicts| Ok((verdicts, KvAlertStore::open(&nats)?)));
                match opened {
                    Ok(opened) => break opened,
                    Err(e) if started.elapsed() < Duration::from_secs(60) => {
                        tracing::warn!(error = %e, "shared state not ready; retrying");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Err(e) => return Err(failed(&e)),
                }
            };
            let service = AlertService::with_store(Arc::new(alerts), &alerting, scope)
                .map_err(|e| failed(&e))?;
            Ok::<_, ServerError>((verdicts, service))
        })
        .await??;
        let evaluator = Evaluator::scoped(
            Arc::clone(&store),
            Arc::new(verdicts),
            settings.detection.clone(),
            node.scope(),
        );
        Self::finish(evaluator, alert_service, store, Some(node), Some(replica))
    }

    fn finish(
        evaluator: Evaluator,
        alert_service: AlertService,
        store: Arc<dyn ReleaseStore>,
        node: Option<Node>,
        replica: Option<Replica>,
    ) -> Result<Self, ServerError> {
        let bridge = AlertBridge::new(alert_service.engine(), store);
        // The evaluator was made just above and has no sink yet: this cannot be refused.
        let _ = evaluator.set_sink(Arc::new(bridge));
        Ok(Self {
            evaluator,
            alert_service,
            node,
            replica,
            backups: None,
        })
    }
}

/// Serves an HTTP listener, over TLS when an acceptor is given.
async fn serve_http(
    kind: &'static str,
    listener: TcpListener,
    router: axum::Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let served = match acceptor {
        None => {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
        }
        Some(acceptor) => crate::tls::serve(listener, router, acceptor, stopped).await,
    };
    served.map_err(|e| ServerError::Serve {
        kind,
        message: e.to_string(),
    })
}

/// What the maintenance task prunes.
struct Maintenance {
    store: Arc<dyn ReleaseStore>,
    pruner: Pruner,
    alerts: bellwether_alerting::alerts::AlertEngine,
    retention: Retention,
}

/// Now and then forgets old batch ids and deletes what retention says is too old, so the
/// data directory stays bounded.
async fn maintain(
    maintenance: Maintenance,
    stopped: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    tokio::pin!(stopped);
    let mut ticker = tokio::time::interval(maintenance.retention.interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut stopped => return Ok(()),
        }
        let now = now_unix_ms();
        let before = now - BATCH_ID_RETENTION.as_millis() as i64;
        let store = Arc::clone(&maintenance.store);
        match tokio::task::spawn_blocking(move || store.prune_batches(before)).await? {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned old batch ids"),
            Err(error) => tracing::warn!(error = %error, "pruning batch ids failed"),
        }
        let (pruner, retention) = (maintenance.pruner.clone(), maintenance.retention);
        match tokio::task::spawn_blocking(move || pruner.prune(&retention, now)).await? {
            Ok(pruned) if pruned.total() == 0 => {}
            Ok(pruned) => tracing::info!(
                buckets = pruned.buckets,
                latency = pruned.latency,
                issue_buckets = pruned.issue_buckets,
                samples = pruned.samples,
                timeline_entries = pruned.timeline_entries,
                "deleted data past retention"
            ),
            Err(error) => tracing::warn!(error = %error, "retention failed"),
        }
        let resolved_before = now.saturating_sub(
            i64::try_from(maintenance.retention.resolved_alerts.as_millis()).unwrap_or(i64::MAX),
        );
        match maintenance.alerts.forget_resolved(resolved_before).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "deleted resolved alerts past retention"),
            Err(error) => tracing::warn!(error = %error, "pruning resolved alerts failed"),
        }
    }
}

//! Runs the collector: opens the store, serves the three listeners, stops on `shutdown`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bellwether_proto::v1::release_service_server::ReleaseServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Settings;
use crate::grpc_release::ReleaseGrpc;
use crate::ingest::grpc::{ExportServer, Logs, Traces};
use crate::ingest::Ingestor;
use crate::releases::Releases;
use crate::store::{ReleaseStore, SledStore, StoreError};
use crate::time::now_unix_ms;

/// Batch ids are remembered this long; a re-sent batch older than that counts again.
pub const BATCH_ID_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

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
    let store = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Sled(e.into()))?;
        SledStore::open(&dir)
    })
    .await?
    .map_err(|source| ServerError::Open {
        dir: settings.data_dir.display().to_string(),
        source,
    })?;
    let store: Arc<dyn ReleaseStore> = Arc::new(store);
    tracing::info!(data_dir = %settings.data_dir.display(), "store opened");

    let ingestor = Ingestor::new(Arc::clone(&store));
    let releases = Releases::new(Arc::clone(&store));
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

    let grpc = tonic::transport::Server::builder()
        .add_service(ExportServer::<Logs>::new(ingestor.clone()))
        .add_service(ExportServer::<Traces>::new(ingestor.clone()))
        .add_service(ReleaseServiceServer::new(ReleaseGrpc::new(
            releases.clone(),
            stop_rx.clone(),
        )))
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listeners.otlp_grpc),
            stopped(&stop_rx),
        );
    let grpc = async {
        grpc.await.map_err(|e| ServerError::Serve {
            kind: "otlp-grpc",
            message: e.to_string(),
        })
    };
    let otlp_http = axum::serve(listeners.otlp_http, crate::ingest::http::router(ingestor))
        .with_graceful_shutdown(stopped(&stop_rx));
    let otlp_http = async {
        otlp_http.await.map_err(|e| ServerError::Serve {
            kind: "otlp-http",
            message: e.to_string(),
        })
    };
    let http = axum::serve(listeners.http, crate::api::router(releases))
        .with_graceful_shutdown(stopped(&stop_rx));
    let http = async {
        http.await.map_err(|e| ServerError::Serve {
            kind: "http",
            message: e.to_string(),
        })
    };
    let maintenance = prune_batches(Arc::clone(&store), stopped(&stop_rx));

    let servers = async { tokio::try_join!(grpc, otlp_http, http, maintenance) };
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

    let flush_store = Arc::clone(&store);
    tokio::task::spawn_blocking(move || flush_store.flush()).await??;
    tracing::info!("stopped");
    result
}

/// Forgets old batch ids now and then so the batches tree stays bounded.
async fn prune_batches(
    store: Arc<dyn ReleaseStore>,
    stopped: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    tokio::pin!(stopped);
    let mut ticker = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut stopped => return Ok(()),
        }
        let before = now_unix_ms() - BATCH_ID_RETENTION.as_millis() as i64;
        let store = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || store.prune_batches(before)).await? {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned old batch ids"),
            Err(error) => tracing::warn!(error = %error, "pruning batch ids failed"),
        }
    }
}

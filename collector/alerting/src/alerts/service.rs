//! The running alerting component: its store, the engine's ticker and the outbox
//! deliverer, started and stopped together by the server.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use crate::alerts::engine::{AlertEngine, AlertError};
use crate::notify::outbox::{Deliverer, Outbox};
use crate::notify::transport::HttpTransport;
use crate::routing::config::Alerting;
use bellwether_model::scope::Scope;
use bellwether_store::alerts::{AlertStore, OutboxStore, SledAlertStore};
use bellwether_store::StoreError;

pub struct AlertService {
    engine: AlertEngine,
    deliverer: Deliverer,
    flush: Arc<dyn Fn() -> Result<(), StoreError> + Send + Sync>,
}

impl AlertService {
    /// Opens `<data_dir>/alerts` and loads the alert state (blocking).
    pub fn open(data_dir: &Path, alerting: &Alerting) -> Result<Self, AlertError> {
        Self::over_sled(SledAlertStore::open(&data_dir.join("alerts"))?, alerting)
    }

    /// The alerting of a single collector over its own sled `store`, flushed at the end
    /// (blocking).
    pub fn over_sled(store: SledAlertStore, alerting: &Alerting) -> Result<Self, AlertError> {
        let store = Arc::new(store);
        let flushed = Arc::clone(&store);
        let mut service = Self::with_store(store, alerting, Scope::all())?;
        service.flush = Arc::new(move || flushed.flush());
        Ok(service)
    }

    /// The alerting of a cluster node over the shared `store`: it acts on the alerts
    /// and delivers the notifications of the services in `scope` only (blocking).
    pub fn with_store<S>(
        store: Arc<S>,
        alerting: &Alerting,
        scope: Scope,
    ) -> Result<Self, AlertError>
    where
        S: AlertStore + OutboxStore + 'static,
    {
        let outbox = Outbox::new(store.clone());
        let engine = AlertEngine::open_scoped(
            alerting.config.clone(),
            alerting.receivers.clone(),
            store,
            outbox.clone(),
            scope.clone(),
        )?;
        let deliverer = outbox.deliverer_scoped(
            alerting.receivers.clone(),
            alerting.config.delivery,
            HttpTransport::new(),
            scope,
        );
        Ok(Self {
            engine,
            deliverer,
            flush: Arc::new(|| Ok(())),
        })
    }

    pub fn engine(&self) -> AlertEngine {
        self.engine.clone()
    }

    /// Ticks the engine and delivers the outbox until `stopped`, then flushes.
    pub async fn run<F: Future<Output = ()>>(
        self,
        stopped: impl Fn() -> F,
    ) -> Result<(), StoreError> {
        let ticker = self.engine.clone().run(stopped());
        let delivery = self.deliverer.run(stopped());
        let ((), delivered) = tokio::join!(ticker, delivery);
        let flush = self.flush;
        tokio::task::spawn_blocking(move || flush())
            .await
            .map_err(|e| StoreError::Corrupt(format!("alert store flush: {e}")))??;
        delivered
    }
}

//! The running alerting component: its store, the engine's ticker and the outbox
//! deliverer, started and stopped together by the server.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use crate::alerts::engine::{AlertEngine, AlertError};
use crate::notify::outbox::{Deliverer, Outbox};
use crate::notify::transport::HttpTransport;
use crate::routing::config::Alerting;
use bellwether_store::alerts::SledAlertStore;
use bellwether_store::StoreError;

pub struct AlertService {
    engine: AlertEngine,
    deliverer: Deliverer,
    store: Arc<SledAlertStore>,
}

impl AlertService {
    /// Opens `<data_dir>/alerts` and loads the alert state (blocking).
    pub fn open(data_dir: &Path, alerting: &Alerting) -> Result<Self, AlertError> {
        let store = Arc::new(SledAlertStore::open(&data_dir.join("alerts"))?);
        let outbox = Outbox::new(store.clone());
        let engine = AlertEngine::open(
            alerting.config.clone(),
            alerting.receivers.clone(),
            store.clone(),
            outbox.clone(),
        )?;
        let deliverer = outbox.deliverer(
            alerting.receivers.clone(),
            alerting.config.delivery,
            HttpTransport::new(),
        );
        Ok(Self {
            engine,
            deliverer,
            store,
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
        let store = self.store;
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Corrupt(format!("alert store flush: {e}")))??;
        delivered
    }
}

//! Shared pieces of the alert tests: recording HTTP receivers on loopback
//! ([`bellwether_testkit::receiver`]) behind a routing config for teams payments /
//! billing / platform, and an engine + deliverer over a real sled directory.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bellwether_alerting::alerts::AlertEngine;
use bellwether_alerting::notify::outbox::Outbox;
use bellwether_alerting::notify::transport::HttpTransport;
use bellwether_alerting::routing::config::Alerting;
use bellwether_collector::config::load_alerting;
use bellwether_model::alert::CodeLocation;
use bellwether_model::alert::{EvidenceLine, Health, NewIssue, ReleaseVerdict};
use bellwether_model::notification::{Counter, NewEntry, OutboxCounters, OutboxEntry};
use bellwether_model::release::{Deployment, ReleaseKey, Source};
use bellwether_store::alerts::OutboxStore;
use bellwether_store::alerts::SledAlertStore;
use bellwether_store::StoreError;
use bellwether_testkit::eventually;
use bellwether_testkit::receiver::Receiver;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const SECRET: &str = "payments-hook-s3cret";
pub const PD_KEY: &str = "pd-routing-key";
/// How long a test waits for deliveries to arrive or settle.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Receivers {
    pub hook: Receiver,
    pub slack: Receiver,
    pub pagerduty: Receiver,
    pub billing: Receiver,
    pub platform: Receiver,
}

impl Receivers {
    pub async fn start() -> Result<Self, BoxError> {
        Ok(Self {
            hook: Receiver::start().await?,
            slack: Receiver::start().await?,
            pagerduty: Receiver::start().await?,
            billing: Receiver::start().await?,
            platform: Receiver::start().await?,
        })
    }

    pub fn config_toml(&self) -> String {
        format!(
            r#"
[routing]
default_team = "platform"
dashboard_url = "http://bellwether.example.internal"
retry_initial = "20ms"
retry_max = "100ms"

[[routing.services]]
match = "checkout*"
team = "payments"

[[routing.code]]
path = "src/billing/**"
team = "billing"

[[teams]]
name = "payments"
receivers = ["payments-hook", "payments-slack", "payments-pd"]

[[teams]]
name = "billing"
receivers = ["billing-hook"]

[[teams]]
name = "platform"
receivers = ["platform-hook"]

[[receivers]]
name = "payments-hook"
type = "webhook"
url = "{hook}"
secret_env = "PAYMENTS_HOOK_SECRET"
deploys = true

[[receivers]]
name = "payments-slack"
type = "slack"
url_env = "PAYMENTS_SLACK_URL"

[[receivers]]
name = "payments-pd"
type = "pagerduty"
url = "{pd}"
routing_key_env = "PAYMENTS_PD_KEY"
deploys = true

[[receivers]]
name = "billing-hook"
type = "webhook"
url = "{billing}"

[[receivers]]
name = "platform-hook"
type = "webhook"
url = "{platform}"
"#,
            hook = self.hook.url("/bellwether"),
            pd = self.pagerduty.url(""),
            billing = self.billing.url("/hook"),
            platform = self.platform.url("/hook"),
        )
    }

    pub fn alerting(&self) -> Result<Alerting, BoxError> {
        let text = self.config_toml();
        let file = bellwether_collector::config::parse_file(Path::new("test.toml"), &text)?;
        let slack = self.slack.url("/services/T000/B000/XXXX");
        let env = move |name: &str| match name {
            "PAYMENTS_HOOK_SECRET" => Some(SECRET.to_owned()),
            "PAYMENTS_SLACK_URL" => Some(slack.clone()),
            "PAYMENTS_PD_KEY" => Some(PD_KEY.to_owned()),
            _ => None,
        };
        Ok(load_alerting(&file, Some(&text), None, &env)?)
    }

    pub fn others_silent(&self) -> bool {
        self.billing.requests().is_empty() && self.platform.requests().is_empty()
    }
}

/// Engine + running deliverer over `<dir>`; [`Harness::stop`] releases the store.
pub struct Harness {
    pub engine: AlertEngine,
    pub outbox: Outbox,
    stop: watch::Sender<bool>,
    deliverer: JoinHandle<Result<(), StoreError>>,
}

impl Harness {
    pub fn open(dir: &Path, alerting: &Alerting) -> Result<Self, BoxError> {
        Self::open_with_read_pause(dir, alerting, Arc::new(AtomicU64::new(0)))
    }

    /// As [`Harness::open`], but every read of the outbox's entries takes `pause_ms`
    /// longer, after the entries were read.
    pub fn open_with_read_pause(
        dir: &Path,
        alerting: &Alerting,
        pause_ms: Arc<AtomicU64>,
    ) -> Result<Self, BoxError> {
        let store = Arc::new(SledAlertStore::open(dir)?);
        let outbox = Outbox::new(Arc::new(PausingReads {
            inner: store.clone(),
            pause_ms,
        }));
        let engine = AlertEngine::open(
            alerting.config.clone(),
            alerting.receivers.clone(),
            store,
            outbox.clone(),
        )?;
        let deliverer = outbox.deliverer(
            alerting.receivers.clone(),
            alerting.config.delivery,
            HttpTransport::new(),
        );
        let (stop, mut stopped) = watch::channel(false);
        let deliverer = tokio::spawn(deliverer.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(Self {
            engine,
            outbox,
            stop,
            deliverer,
        })
    }

    /// Stops delivery and drops every handle on the store.
    pub async fn stop(self) -> TestResult {
        let _ = self.stop.send(true);
        self.deliverer.await??;
        drop(self.engine);
        drop(self.outbox);
        Ok(())
    }

    /// Waits until nothing is pending and returns the counters.
    pub async fn settled(&self) -> Result<OutboxCounters, BoxError> {
        let counters = eventually(WAIT, || async {
            let view = self.outbox.view().ok();
            Ok(view.and_then(|view| view.pending.is_empty().then_some(view.counters)))
        })
        .await?;
        Ok(counters)
    }
}

/// An outbox store whose entry reads take longer, as on a loaded machine.
struct PausingReads {
    inner: Arc<SledAlertStore>,
    pause_ms: Arc<AtomicU64>,
}

impl OutboxStore for PausingReads {
    fn enqueue(&self, entries: Vec<NewEntry>, now_unix_ms: i64) -> Result<Vec<u64>, StoreError> {
        self.inner.enqueue(entries, now_unix_ms)
    }

    fn entries(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let entries = self.inner.entries();
        let pause = self.pause_ms.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(pause));
        entries
    }

    fn save(&self, entry: &OutboxEntry, counter: Option<Counter>) -> Result<(), StoreError> {
        self.inner.save(entry, counter)
    }

    fn delivered(&self, id: u64) -> Result<(), StoreError> {
        self.inner.delivered(id)
    }

    fn remove(&self, id: u64) -> Result<(), StoreError> {
        self.inner.remove(id)
    }

    fn counters(&self) -> Result<OutboxCounters, StoreError> {
        self.inner.counters()
    }
}

pub fn deployment(service: &str, version: &str, started_at_unix_ms: i64) -> Deployment {
    Deployment {
        release: ReleaseKey::new(service, "production", version),
        started_at_unix_ms,
        commit: Some("0123abcd".into()),
        deploy_id: Some(format!("deploy-{version}")),
        pipeline_url: None,
        notes: None,
        team: None,
        source: Source::Recorded,
        changes: None,
    }
}

pub fn unhealthy(deployment: Deployment, at_unix_ms: i64) -> ReleaseVerdict {
    ReleaseVerdict {
        deployment,
        health: Health::Unhealthy,
        error_spike: true,
        evidence: vec![EvidenceLine {
            kind: "error_rate".into(),
            summary: "error ratio 4.1% vs 0.3% in the baseline (13×)".into(),
        }],
        new_issues: Vec::new(),
        latency_regression: None,
        at_unix_ms,
    }
}

pub fn healthy(deployment: Deployment, at_unix_ms: i64) -> ReleaseVerdict {
    ReleaseVerdict {
        deployment,
        health: Health::Healthy,
        error_spike: false,
        evidence: Vec::new(),
        new_issues: Vec::new(),
        latency_regression: None,
        at_unix_ms,
    }
}

pub fn new_issue(fingerprint: &str, path: &str) -> NewIssue {
    NewIssue {
        fingerprint: fingerprint.into(),
        title: format!("InvoiceError: total mismatch for <num> ({fingerprint})"),
        code: CodeLocation {
            path: Some(path.into()),
            module: None,
        },
        count: 12,
        sample: Some("InvoiceError: total mismatch for 1234".into()),
    }
}

pub fn map_of<K: Ord, V>(pairs: impl IntoIterator<Item = (K, V)>) -> BTreeMap<K, V> {
    pairs.into_iter().collect()
}

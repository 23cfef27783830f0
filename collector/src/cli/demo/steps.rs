//! The demo's steps: record a deployment, follow a release's verdict, ask the gate, wait
//! for alerts and for the webhooks, and narrate what each shows.

use std::process::ExitCode;

use anyhow::{anyhow, Result};

use super::{
    release, traffic, Demo, CATALOG, CHECKOUT, ENV, NOT_FOUND, STEP_TIMEOUT, TAX_FAILURES, TIMEOUTS,
};
use crate::api::json::HealthResponse;
use crate::cli::demo::traffic::Release;
use crate::cli::demo::traffic::Service;
use crate::cli::demo::webhook::Received;
use crate::cli::encode_component;
use crate::cli::GateArgs;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::watch;

impl Demo {
    pub(super) async fn deploy(
        &self,
        service: &Service,
        release: &Release,
        notes: &str,
    ) -> Result<()> {
        let body = serde_json::json!({
            "service": service.name,
            "environment": service.environment,
            "version": release.version,
            "commit": release.commit,
            "deploy_id": release.deploy_id,
            "notes": notes,
        });
        let _: serde_json::Value = self.client.post("/api/v1/deployments", &body).await?;
        self.narrator.say(&format!(
            "deploy {} {} to {} (commit {}, {}): {notes}",
            service.name, release.version, service.environment, release.commit, release.deploy_id
        ));
        Ok(())
    }

    /// Follows `version`'s verdict, printing every change, until `done` holds.
    pub(super) async fn follow(
        &self,
        version: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<HealthResponse> {
        let base = format!(
            "/api/v1/releases/checkout/{}/health?environment={ENV}",
            encode_component(version)
        );
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut since: Option<u64> = None;
        let mut shown: Option<String> = None;
        loop {
            let mut path = format!("{base}&wait=5s");
            if let Some(revision) = since {
                path.push_str(&format!("&since={revision}"));
            }
            let health: HealthResponse = self.client.get(&path).await?;
            since = Some(health.revision);
            if shown.as_deref() != Some(health.verdict.as_str()) {
                let why = bellwether_model::health::headline(&to_health(&health));
                self.narrator.say(&format!(
                    "verdict of checkout {version}: {} — {why}",
                    health.verdict
                ));
                shown = Some(health.verdict.clone());
            }
            if done(&health.verdict) {
                return Ok(health);
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "checkout {version} still {} after {}s",
                    health.verdict,
                    STEP_TIMEOUT.as_secs()
                ));
            }
        }
    }

    pub(super) async fn gate(&self, version: &str) -> bool {
        self.narrator.say(&format!(
            "$ bellwether gate --service checkout --version {version} --environment {ENV}"
        ));
        let args = GateArgs {
            service: "checkout".into(),
            version: version.into(),
            environment: ENV.into(),
            min_duration: Duration::ZERO,
            timeout: STEP_TIMEOUT,
            allow_degraded: false,
            url: vec![self.url.clone()],
            token: None,
        };
        crate::cli::gate::run(args).await == ExitCode::SUCCESS
    }

    pub(super) async fn alerts(&self, version: &str) -> Result<Vec<serde_json::Value>> {
        let list: serde_json::Value = self.client.get("/api/v1/alerts?service=checkout").await?;
        Ok(list["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["release"]["version"] == version)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Polls the alerts of `version` until `done` holds for them (or the step times out).
    pub(super) async fn wait_alerts(
        &self,
        version: &str,
        timeout: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Result<Vec<serde_json::Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let alerts = self.alerts(version).await?;
            if done(&alerts) || Instant::now() > deadline {
                return Ok(alerts);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub(super) async fn wait_hooks(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self.hooks.lock().map(|h| done(&h)).unwrap_or(false);
            if ok {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(super) async fn tell<F, Fut>(&self, grpc: &str, stopped: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let say = |line: &str| self.narrator.say(line);
        let now = bellwether_model::time::now_unix_ms();

        // History: both services have served prod for a while.
        let old_checkout = release("1.4.0", vec![TIMEOUTS]);
        let old_catalog = release("3.1.0", vec![NOT_FOUND]);
        for (service, rel) in [(&CHECKOUT, &old_checkout), (&CATALOG, &old_catalog)] {
            let body = serde_json::json!({
                "service": service.name, "environment": ENV, "version": rel.version,
                "commit": rel.commit, "deploy_id": rel.deploy_id,
                "started_at_unix_ms": now - 20 * 60_000,
            });
            let _: serde_json::Value = self.client.post("/api/v1/deployments", &body).await?;
        }
        traffic::backfill(
            grpc,
            &CHECKOUT,
            &old_checkout,
            30_000,
            (now - 360_000, now - 5_000),
        )
        .await?;
        traffic::backfill(
            grpc,
            &CATALOG,
            &old_catalog,
            6_000,
            (now - 360_000, now - 5_000),
        )
        .await?;
        say("history loaded: checkout 1.4.0 and catalog 3.1.0 have served prod for 20 minutes (30,000 and 6,000 requests in the last 6; 0.1% and 0.2% errors)");

        let (checkout_tx, checkout_rx) = watch::channel(old_checkout);
        let (_catalog_tx, catalog_rx) = watch::channel(old_catalog);
        tokio::spawn(traffic::live(
            grpc.to_owned(),
            CHECKOUT,
            checkout_rx,
            stopped(),
        ));
        tokio::spawn(traffic::live(
            grpc.to_owned(),
            CATALOG,
            catalog_rx,
            stopped(),
        ));
        say(&format!(
            "traffic: checkout {} requests/s and catalog {} requests/s, each on 2 instances, as OTLP/gRPC traces",
            CHECKOUT.per_second, CATALOG.per_second
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;

        // A good release.
        let good = release("1.5.0", vec![TIMEOUTS]);
        self.deploy(&CHECKOUT, &good, "faster cart totals").await?;
        let good_since = Instant::now();
        let _ = checkout_tx.send(good);
        self.follow("1.5.0", |v| v != "pending").await?;
        if !self.gate("1.5.0").await {
            return Err(anyhow!("the gate did not pass checkout 1.5.0"));
        }
        say("gate passed (exit 0): the pipeline promotes checkout 1.5.0");

        // The next release is judged against this one's record: let it serve a few
        // buckets first, so that the baseline is long enough to decide either way.
        serve_for(&say, "1.5.0", good_since).await;

        // A bad release: a new exception in billing code and 25× the error rate.
        let bad = release("1.6.0", vec![TIMEOUTS, TAX_FAILURES]);
        self.deploy(&CHECKOUT, &bad, "new tax rules").await?;
        let bad_since = Instant::now();
        let _ = checkout_tx.send(bad);
        say("checkout 1.6.0 now fails 2.5% of checkouts with TaxServiceError (raised in src/billing/tax.py)");
        self.follow("1.6.0", |v| v == "unhealthy").await?;
        let alerts = self
            .wait_alerts("1.6.0", Duration::from_secs(20), |a| {
                a.iter().any(|x| x["kind"] == "error_spike")
                    && a.iter().any(|x| x["kind"] == "new_issue")
            })
            .await?;
        if alerts.is_empty() {
            say("no alert was raised for checkout 1.6.0 (is the evaluator connected to the alert engine?)");
        }
        for a in &alerts {
            say(&format!(
                "alert {} ({}) for checkout 1.6.0 → team {}, routed by {}: {}",
                a["kind"].as_str().unwrap_or("?"),
                a["severity"].as_str().unwrap_or("?"),
                a["team"].as_str().unwrap_or("?"),
                a["routed_by"].as_str().unwrap_or("?"),
                a["summary"].as_str().unwrap_or("")
            ));
        }
        if !alerts.is_empty()
            && !self
                .wait_hooks(Duration::from_secs(15), |h| {
                    h.iter()
                        .any(|r| r.version == "1.6.0" && r.status == "firing")
                })
                .await
        {
            say("no webhook notification arrived for checkout 1.6.0 within 15s");
        }
        if self.gate("1.6.0").await {
            return Err(anyhow!("the gate passed checkout 1.6.0"));
        }
        say("gate failed (exit 1): the pipeline stops promoting checkout 1.6.0");

        serve_for(&say, "1.6.0", bad_since).await;

        // Roll forward with the fix.
        let fixed = release("1.6.1", vec![TIMEOUTS]);
        self.deploy(&CHECKOUT, &fixed, "fix tax rate lookup")
            .await?;
        let _ = checkout_tx.send(fixed);
        self.follow("1.6.1", |v| v != "pending").await?;
        if !alerts.is_empty() {
            let resolved = self
                .wait_alerts("1.6.0", Duration::from_secs(20), |a| {
                    a.iter().all(|x| x["state"] == "resolved")
                })
                .await?;
            for a in &resolved {
                say(&format!(
                    "alert {} for checkout 1.6.0 is {}: {}",
                    a["kind"].as_str().unwrap_or("?"),
                    a["state"].as_str().unwrap_or("?"),
                    a["resolution"].as_str().unwrap_or("not yet")
                ));
            }
            self.wait_hooks(Duration::from_secs(15), |h| {
                h.iter()
                    .any(|r| r.version == "1.6.0" && r.status == "resolved")
            })
            .await;
        }
        Ok(())
    }
}

/// The evaluator's headline for an API answer (the first evidence that explains it).
pub(super) fn to_health(h: &HealthResponse) -> bellwether_model::health::ReleaseHealth {
    bellwether_model::health::ReleaseHealth {
        release: h.release.clone(),
        verdict: bellwether_model::health::Verdict::parse(&h.verdict)
            .unwrap_or(bellwether_model::health::Verdict::Pending),
        evidence: h.evidence.clone(),
        totals: h.totals,
        evaluated_at_unix_ms: h.evaluated_at_unix_ms,
        started_at_unix_ms: h.started_at_unix_ms,
        revision: h.revision,
        figures: h.analysis.clone(),
    }
}

/// How long a release serves before the next one replaces it: three buckets, so that the
/// next release's baseline holds enough of this one's traffic to decide either way.
const SERVE_BEFORE_NEXT: Duration = Duration::from_secs(30);

/// Waits until the release deployed at `since` has served [`SERVE_BEFORE_NEXT`].
async fn serve_for(say: &impl Fn(&str), version: &str, since: Instant) {
    let served = since.elapsed();
    if served < SERVE_BEFORE_NEXT {
        let rest = SERVE_BEFORE_NEXT - served;
        say(&format!(
            "checkout {version} keeps serving for {}s more, so that the next release has a baseline",
            rest.as_secs()
        ));
        tokio::time::sleep(rest).await;
    }
}

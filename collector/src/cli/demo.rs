//! `bellwether demo`: the whole story on one machine in about a minute.
//!
//! It starts a collector in-process (temporary data directory, free loopback ports), a
//! webhook receiver standing in for each team's pager, and two simulated services that
//! export real OTLP/gRPC traces ([`traffic`]). Then: a good release of `checkout` passes
//! the gate, a bad one turns unhealthy, alerts are routed to the owning teams and
//! delivered ([`webhook`]), the gate fails, a fix is rolled forward and the alerts
//! resolve. Every step is narrated; afterwards the UI keeps serving until Ctrl-C (or the
//! command exits, with `--exit-when-done`).

mod steps;
mod traffic;
mod webhook;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use tokio::sync::watch;

use super::ApiClient;
use crate::config::{self, Overrides, Settings};
use crate::server::{self, Listeners};
use traffic::{Failure, Release, Service};
use webhook::Received;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Exit once the story is told instead of serving the UI until Ctrl-C.
    #[arg(long)]
    pub exit_when_done: bool,
    /// Address of the UI and HTTP API [default: a free port on 127.0.0.1].
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub http_addr: SocketAddr,
}

const ENV: &str = "prod";
/// Longest wait for any one step of the story.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

const CHECKOUT: Service = Service {
    name: "checkout",
    environment: ENV,
    route: "POST /checkout",
    instances: ["checkout-7d9f-a", "checkout-7d9f-b"],
    per_second: 1_000,
};

const CATALOG: Service = Service {
    name: "catalog",
    environment: ENV,
    route: "GET /products/{id}",
    instances: ["catalog-5c2e-a", "catalog-5c2e-b"],
    per_second: 200,
};

const TIMEOUTS: Failure = Failure {
    every: 1_000,
    exception_type: "TimeoutError",
    message: "upstream inventory timed out after 2000 ms",
    stack: "Traceback (most recent call last):\n  File \"/app/src/checkout/inventory.py\", line 88, in reserve\n    raise TimeoutError(\"upstream inventory timed out after 2000 ms\")\nTimeoutError: upstream inventory timed out after 2000 ms",
};

const TAX_FAILURES: Failure = Failure {
    every: 40,
    exception_type: "TaxServiceError",
    message: "tax rate lookup failed for region 17",
    stack: "Traceback (most recent call last):\n  File \"/app/src/checkout/handler.py\", line 41, in place_order\n    total = billing.tax.apply(cart)\n  File \"/app/src/billing/tax.py\", line 112, in apply\n    raise TaxServiceError(f\"tax rate lookup failed for region {region}\")\nbilling.tax.TaxServiceError: tax rate lookup failed for region 17",
};

const NOT_FOUND: Failure = Failure {
    every: 500,
    exception_type: "ProductNotFound",
    message: "product 4711 not found",
    stack: "",
};

fn release(version: &str, failures: Vec<Failure>) -> Release {
    let commit: String = format!("{:x}", sha_like(version));
    Release {
        version: version.to_owned(),
        commit: commit.chars().take(12).collect(),
        deploy_id: format!("deploy-{}", version.replace('.', "-")),
        failures,
        latency_ms: 45.0,
    }
}

/// A stable fake commit id per version.
fn sha_like(version: &str) -> u64 {
    version.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The generated collector config: fast detection, routing to three teams' webhooks.
fn demo_config(hooks: SocketAddr, ui: &str) -> String {
    let receiver = |team: &str| {
        format!(
            "[[receivers]]\nname = \"{team}-webhook\"\ntype = \"webhook\"\nurl = \"http://{hooks}/hooks/{team}\"\ndeploys = true\n\n[[teams]]\nname = \"{team}\"\nreceivers = [\"{team}-webhook\"]\n\n"
        )
    };
    format!(
        r#"[detection]
evaluation_interval = "1s"
min_duration = "10s"
baseline_window = "10m"
# A regression needs the error rate up by half a point: at 0.1 % errors, proving a good
# release healthy within seconds (rather than minutes) needs a floor well above its rate.
min_abs_rise = 0.005

[routing]
default_team = "platform"
group_window = "2s"
repeat_interval = "1h"
dashboard_url = "{ui}"
retry_initial = "200ms"
retry_max = "2s"

[[routing.services]]
match = "checkout*"
team = "payments"

[[routing.services]]
match = "catalog*"
team = "discovery"

[[routing.code]]
path = "src/billing/**"
team = "billing"

{}{}{}{}"#,
        receiver("payments"),
        receiver("billing"),
        receiver("discovery"),
        receiver("platform"),
    )
}

/// Prints story lines with the time since the start.
#[derive(Clone)]
struct Narrator {
    start: Instant,
}

impl Narrator {
    fn say(&self, line: &str) {
        println!("[{:>5.1}s] {line}", self.start.elapsed().as_secs_f64());
    }
}

pub async fn run(args: DemoArgs) -> ExitCode {
    match story(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

struct Demo {
    narrator: Narrator,
    client: ApiClient,
    url: String,
    hooks: Arc<Mutex<Vec<Received>>>,
}

async fn story(args: DemoArgs) -> Result<()> {
    let narrator = Narrator {
        start: Instant::now(),
    };
    let dir = tempfile::Builder::new()
        .prefix("bellwether-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let (hook_addr, mut hook_rx) = webhook::start(stopped()).await?;
    let mut settings = Settings::ephemeral(dir.path().join("data"));
    settings.http_addr = args.http_addr;
    let listeners = Listeners::bind(&settings).await?;
    let http = listeners.http.local_addr()?;
    let grpc = format!("http://{}", listeners.otlp_grpc.local_addr()?);
    let url = format!("http://{http}");
    let text = demo_config(hook_addr, &url);
    let path = dir.path().join("bellwether-demo.toml");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    let file = config::parse_file(&path, &text)?;
    let no_env = |_: &str| None;
    settings.alerting = crate::config::load_alerting(&file, Some(&text), Some(&path), &no_env)
        .map_err(|e| anyhow!("demo config: {e}"))?;
    settings.detection = config::resolve(Overrides::default(), file)?.detection;
    let server = tokio::spawn(server::run(settings, listeners, stopped()));

    narrator.say(&format!(
        "collector started (data in {}, config {}): OTLP/gRPC on {grpc}, UI and API on {url}",
        dir.path().join("data").display(),
        path.display()
    ));
    narrator.say(&format!(
        "teams payments, billing, discovery and platform get their alerts on webhooks at http://{hook_addr}/hooks/<team>"
    ));

    let hooks = Arc::new(Mutex::new(Vec::new()));
    let printer = {
        let (narrator, hooks) = (narrator.clone(), Arc::clone(&hooks));
        tokio::spawn(async move {
            while let Some(r) = hook_rx.recv().await {
                let line = match r.kind.as_str() {
                    "deploy" => format!(
                        "webhook → team {}: deploy of {} {}",
                        r.team, r.service, r.version
                    ),
                    _ => format!("webhook → team {}: {}", r.team, r.summary),
                };
                narrator.say(&line);
                if let Ok(mut list) = hooks.lock() {
                    list.push(r);
                }
            }
        })
    };

    let demo = Demo {
        narrator: narrator.clone(),
        client: ApiClient::new(&url)?,
        url: url.clone(),
        hooks,
    };
    let result = demo.tell(&grpc, stopped).await;
    let told = narrator.start.elapsed();
    match &result {
        Ok(()) => {
            narrator.say(&format!(
                "story told in {:.0}s: checkout 1.6.0 was detected unhealthy in {ENV}, its alerts went to the owning teams, and rolling forward to 1.6.1 resolved them",
                told.as_secs_f64()
            ));
            narrator.say(&format!(
                "see it: {url}/  ·  the bad release: {url}/releases/checkout/1.6.0?environment={ENV}  ·  alerts: {url}/alerts  ·  metrics: {url}/metrics"
            ));
        }
        Err(e) => narrator.say(&format!("the story stopped: {e:#}")),
    }
    if result.is_ok() && !args.exit_when_done {
        narrator.say("serving the UI with live traffic; press Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop_tx.send(true);
    server.await??;
    printer.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_config_is_valid() -> Result<()> {
        let hooks: SocketAddr = "127.0.0.1:9".parse()?;
        let text = demo_config(hooks, "http://127.0.0.1:8480");
        let path = std::path::Path::new("demo.toml");
        let file = config::parse_file(path, &text)?;
        let alerting = crate::config::load_alerting(&file, Some(&text), Some(path), &|_| None)
            .map_err(|e| anyhow!("{e}"))?;
        assert_eq!(alerting.config.teams.len(), 4);
        let owner = alerting
            .config
            .ownership
            .service_owner("checkout", ENV, None);
        assert_eq!(owner.team, "payments");
        let settings = config::resolve(Overrides::default(), file)?;
        assert_eq!(
            settings.detection.evaluation_interval,
            Duration::from_secs(1)
        );
        Ok(())
    }
}

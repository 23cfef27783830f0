//! Three `bellwether serve --cluster` nodes over a real 3-server NATS JetStream cluster,
//! all on loopback: every node counts exactly what any node acknowledged, the owner of
//! `checkout` is killed (`kill -9`) while traffic flows and another node takes over
//! its partition, a fourth node joins, and the stream's leader is killed during ingest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bellwether_e2e::detection::{
    baseline_then_deploy, record_deployment, start_collector_with_config_env,
};
use bellwether_e2e::security::export_batch;
use bellwether_e2e::{clean_command, Collector};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_testkit::clock::now_ms;
use bellwether_testkit::eventually;
use bellwether_testkit::nats::{nats_server_or_skip, NatsCluster};
use bellwether_testkit::otlp::{export_logs, log_record, release_resource, SEVERITY_INFO};
use bellwether_testkit::receiver::Receiver;
use bellwether_testkit::traffic::{declined, Mix};
use serde_json::Value;

const SERVICE: &str = "checkout";
const ENV: &str = "prod";
const VERSION: &str = "2.0.0";
/// Starting, electing leaders and placing streams on a loaded 2-core machine.
const SLOW: Duration = Duration::from_secs(60);

fn config(servers: &[String], node: &str, hook: &str) -> String {
    let servers: Vec<String> = servers.iter().map(|u| format!("{u:?}")).collect();
    format!(
        r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"

[routing]
default_team = "payments"
group_window = "1s"
retry_initial = "200ms"
retry_max = "1s"

[[teams]]
name = "payments"
receivers = ["payments-hook"]

[[receivers]]
name = "payments-hook"
type = "webhook"
url = "{hook}"

[cluster]
servers = [{servers}]
node_id = "{node}"
lease_ttl = "2s"
"#,
        servers = servers.join(", "),
    )
}

fn start_node(dir: &Path, nats: &NatsCluster, node: &str, hook: &Receiver) -> Result<Collector> {
    start_node_on(dir, &nats.urls(), node, hook)
}

/// A node that knows only `servers` of the NATS cluster.
fn start_node_on(dir: &Path, servers: &[String], node: &str, hook: &Receiver) -> Result<Collector> {
    let config = config(servers, node, &hook.url("/hooks/payments"));
    start_collector_with_config_env(&dir.join(node), &config, &[])
        .with_context(|| format!("starting {node}"))
}

/// `GET /api/v1/cluster?service=checkout` on `node`.
async fn view(node: &Collector) -> Result<Value> {
    node.get(&format!("/api/v1/cluster?service={SERVICE}"))
        .await
}

/// Waits until every node is ready, sees every partition held, and holds some itself.
async fn settled(nodes: &[&Collector]) -> Result<()> {
    eventually(SLOW, || async {
        for node in nodes {
            let view = view(node).await?;
            let held = view["holders"]
                .as_array()
                .is_some_and(|h| h.iter().all(|p| p["node"].is_string()));
            let owns = view["owned"].as_array().is_some_and(|o| !o.is_empty());
            if !(view["ready"] == true && held && owns) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
    .context("the nodes never shared out the partitions")
}

/// The node id holding `checkout`'s partition, as `node` sees it.
async fn owner(node: &Collector) -> Result<Option<String>> {
    Ok(view(node).await?["service"]["node"]
        .as_str()
        .map(str::to_owned))
}

async fn log_records(node: &Collector, service: &str, version: &str) -> Result<u64> {
    let stats = node
        .get(&format!(
            "/api/v1/releases/{service}/{version}/stats?environment={ENV}"
        ))
        .await?;
    stats["release"]["totals"]["log_records"]
        .as_u64()
        .context("totals.log_records")
}

/// Waits until `node` counts exactly `expected` records of the release, and fails if it
/// counts more.
async fn counts_exactly(node: &Collector, version: &str, expected: u64) -> Result<()> {
    let counted = eventually(SLOW, || async {
        let n = log_records(node, SERVICE, version).await.unwrap_or(0);
        Ok((n >= expected).then_some(n))
    })
    .await
    .with_context(|| {
        let log = node.process.stderr_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        format!(
            "{} never counted {expected} of {version}; its log ends:\n{}",
            node.url(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })?;
    ensure!(
        counted == expected,
        "{} counted {counted} of {version}, expected {expected}",
        node.url()
    );
    Ok(())
}

async fn verdict(node: &Collector) -> Result<String> {
    let health = node
        .get(&format!(
            "/api/v1/releases/{SERVICE}/{VERSION}/health?environment={ENV}"
        ))
        .await?;
    Ok(health["verdict"].as_str().unwrap_or("-").to_owned())
}

/// Sends batches `0..total` of 50 info records of 2.0.0, one at a time, each with its
/// batch id, to the nodes in turn; a batch a node failed to acknowledge goes to the next
/// one until one does. `sent` counts the acknowledged batches.
fn steady_sender(
    urls: Vec<String>,
    total: usize,
    sent: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Result<()>> {
    tokio::spawn(async move {
        let resource = release_resource(SERVICE, VERSION, ENV, "checkout-2-steady");
        let mut target = 0usize;
        for i in 0..total {
            let started = Instant::now();
            loop {
                ensure!(started.elapsed() < SLOW, "batch {i} never acknowledged");
                let url = &urls[target % urls.len()];
                let records = (0..50)
                    .map(|n| log_record(&format!("steady {i}/{n}"), SEVERITY_INFO, None, now_ms()))
                    .collect();
                let sent_ok = async {
                    let mut client = LogsServiceClient::connect(url.clone()).await?;
                    export_batch(&mut client, &resource, records, &format!("steady-{i}")).await
                };
                match tokio::time::timeout(Duration::from_secs(10), sent_ok).await {
                    Ok(Ok(())) => break,
                    _ => target += 1,
                }
            }
            sent.store(i + 1, Ordering::SeqCst);
            target += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        Ok(())
    })
}

/// Checks that the receiver got no notification id twice and each alert fired once.
fn each_notification_once(hook: &Receiver) -> Result<usize> {
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut firing: BTreeMap<String, usize> = BTreeMap::new();
    for request in hook.requests() {
        let body = request.json();
        *ids.entry(body["id"].as_str().unwrap_or("-").to_owned())
            .or_default() += 1;
        if body["status"] == "firing" && body["repeat"] != true {
            for alert in body["alerts"].as_array().into_iter().flatten() {
                let key = alert["dedup_key"].as_str().unwrap_or("-").to_owned();
                *firing.entry(key).or_default() += 1;
            }
        }
    }
    let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(
        twice.is_empty(),
        "notification ids delivered twice: {twice:?}"
    );
    let refired: Vec<_> = firing.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(refired.is_empty(), "alerts fired twice: {refired:?}");
    Ok(ids.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_count_exactly_and_survive_the_owner_killed() -> Result<()> {
    let Some(binary) = nats_server_or_skip().map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    let nats = NatsCluster::start(&binary, 3).map_err(anyhow::Error::msg)?;
    let hook = Receiver::start().await?;
    let dir = tempfile::tempdir()?;
    let mut nodes = BTreeMap::new();
    for id in ["n1", "n2", "n3"] {
        nodes.insert(id.to_owned(), start_node(dir.path(), &nats, id, &hook)?);
    }
    settled(&nodes.values().collect::<Vec<_>>()).await?;

    // The baseline and both deployments through n1, the new release's traffic from two
    // instances through n2 and n3: every node must count all of it.
    let deploy_ms = now_ms();
    baseline_then_deploy(&nodes["n1"], SERVICE, ENV, VERSION, deploy_ms).await?;
    // Ten times the baseline's timeouts (a regression of its steady errors) and a new
    // exception: unhealthy from the first bucket on.
    let mix = Mix {
        total: 2_000,
        timeouts: 20,
        new_errors: 200,
        new_error: &declined,
    };
    for (instance, node) in [("a", "n2"), ("b", "n3")] {
        let resource = release_resource(SERVICE, VERSION, ENV, &format!("checkout-2-{instance}"));
        export_logs(&nodes[node].grpc_url(), &resource, mix.records(now_ms())).await?;
    }
    for node in nodes.values() {
        counts_exactly(node, "1", 20_000).await?;
        counts_exactly(node, VERSION, 4_000).await?;
    }
    for node in nodes.values() {
        let seen = eventually(SLOW, || async {
            let v = verdict(node).await?;
            Ok((v == "unhealthy").then_some(v))
        })
        .await;
        ensure!(
            seen.is_ok(),
            "{} never called {VERSION} unhealthy",
            node.url()
        );
    }
    hook.wait_accepted(1, SLOW).await?;

    // kill -9 of checkout's owner while batches flow to every node.
    let owner_id = owner(&nodes["n1"])
        .await?
        .context("checkout has no owner")?;
    let urls: Vec<String> = nodes.values().map(Collector::grpc_url).collect();
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = steady_sender(urls, 60, Arc::clone(&sent));
    eventually(SLOW, || async {
        Ok((sent.load(Ordering::SeqCst) >= 20).then_some(()))
    })
    .await?;
    let killed_at = Instant::now();
    drop(nodes.remove(&owner_id)); // SIGKILL
    let survivor = nodes.values().next().context("no survivor")?;
    let new_owner = eventually(SLOW, || async {
        Ok(owner(survivor).await?.filter(|o| *o != owner_id))
    })
    .await?;
    let takeover = killed_at.elapsed();
    eprintln!("{new_owner} took checkout over {takeover:?} after {owner_id} was killed");
    ensure!(
        takeover <= Duration::from_secs(10),
        "{new_owner} took checkout over {takeover:?} after {owner_id} died"
    );
    tokio::time::timeout(Duration::from_secs(120), sender).await???;

    // A fourth node joins: it replays the stream and takes a share of the partitions;
    // the killed node comes back on its data directory and reads on from where its
    // replica stopped.
    let n4 = start_node(dir.path(), &nats, "n4", &hook)?;
    nodes.insert("n4".to_owned(), n4);
    let back = start_node(dir.path(), &nats, &owner_id, &hook)?;
    nodes.insert(owner_id.clone(), back);
    settled(&nodes.values().collect::<Vec<_>>()).await?;

    let expected = 4_000 + 60 * 50;
    for node in nodes.values() {
        counts_exactly(node, VERSION, expected).await?;
        counts_exactly(node, "1", 20_000).await?;
        ensure!(
            verdict(node).await? == "unhealthy",
            "{} forgot the verdict",
            node.url()
        );
        let deployments = node.get("/api/v1/releases?service=checkout").await?;
        let n = deployments["releases"].as_array().map_or(0, Vec::len);
        ensure!(
            n == 2,
            "{} lists {n} checkout releases: {deployments}",
            node.url()
        );
    }

    // Each node's /metrics says what it holds; once the shares settle, together they
    // hold every partition once (scrapes at different moments may see a move half-done,
    // so this is retried; the lease tests sample double ownership properly).
    eventually(SLOW, || async {
        let mut held = 0.0;
        for node in nodes.values() {
            let url = format!("{}/metrics", node.url());
            let (status, text) = bellwether_e2e::agent_ops::http_get_text(&url).await?;
            ensure!(status == 200, "{url} answered {status}");
            let (_, samples) = bellwether_e2e::prometheus::parse(&text)?;
            let value = |name: &str| bellwether_e2e::prometheus::value(&samples, name, &[]);
            held += value("bellwether_cluster_partitions_owned").context("partitions_owned")?;
            ensure!(
                value("bellwether_cluster_ready") == Some(1.0),
                "{url}: not ready"
            );
            ensure!(
                value("bellwether_cluster_replica_pending_messages") == Some(0.0),
                "{url}: replica behind"
            );
        }
        ensure!(held <= 64.0, "the nodes hold {held} of 64 partitions");
        Ok((held == 64.0).then_some(()))
    })
    .await
    .context("the nodes' /metrics never added up to 64 partitions")?;

    // The gate asked of a survivor fails the release.
    let survivor = nodes.values().next().context("no survivor")?;
    let gate = clean_command("bellwether")?
        .args(["gate", "--service", SERVICE, "--version", VERSION])
        .args(["--environment", ENV, "--timeout", "60s", "--url"])
        .arg(survivor.url())
        .output()?;
    ensure!(
        gate.status.code() == Some(1),
        "gate exited {:?}: {}",
        gate.status.code(),
        String::from_utf8_lossy(&gate.stdout)
    );

    // Nothing more arrives, and nothing arrived twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let notified = each_notification_once(&hook)?;
    eprintln!("the payments webhook got {notified} notifications, each once");
    ensure!(notified >= 1, "no notification");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_stream_leader_loses_no_acknowledged_batch() -> Result<()> {
    let Some(binary) = nats_server_or_skip().map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    let mut nats = NatsCluster::start(&binary, 3).map_err(anyhow::Error::msg)?;
    let hook = Receiver::start().await?;
    let dir = tempfile::tempdir()?;
    let nodes: Vec<Collector> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| start_node(dir.path(), &nats, id, &hook))
        .collect::<Result<_>>()?;
    settled(&nodes.iter().collect::<Vec<_>>()).await?;
    record_deployment(&nodes[0], SERVICE, ENV, VERSION, now_ms()).await?;

    let urls: Vec<String> = nodes.iter().map(Collector::grpc_url).collect();
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = steady_sender(urls, 80, Arc::clone(&sent));
    eventually(SLOW, || async {
        Ok((sent.load(Ordering::SeqCst) >= 25).then_some(()))
    })
    .await?;
    let leader = view(&nodes[0]).await?["ingest_leader"]
        .as_str()
        .map(str::to_owned)
        .context("no stream leader")?;
    let Some(index) = leader
        .strip_prefix('n')
        .and_then(|i| i.parse::<usize>().ok())
    else {
        bail!("unexpected server name {leader}");
    };
    nats.kill(index);
    eprintln!(
        "killed {leader}, the ingest stream's leader, after {} batches",
        sent.load(Ordering::SeqCst)
    );
    tokio::time::timeout(Duration::from_secs(180), sender).await???;
    for node in &nodes {
        counts_exactly(node, VERSION, 80 * 50).await?;
    }
    Ok(())
}

/// `kill -<signal> pid`.
fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

/// How the owner loses its lease in [`fenced`].
#[derive(Clone, Copy, Debug)]
enum CutOff {
    /// `kill -STOP` (a long GC pause, a frozen VM), `kill -CONT` once the next
    /// notification is on its way.
    Paused,
    /// Its only NATS server is killed.
    NatsGone,
}

/// n1 holds a service whose release turned bad and was notified; n1 loses its lease by
/// `cut_off`; the receiver answers slowly, so what the new owner sends for the next bad
/// release is still pending while n1 is back (or still running, cut off). Nothing may
/// be sent twice, and every alert fires once.
async fn fenced(cut_off: CutOff) -> Result<()> {
    let Some(binary) = nats_server_or_skip().map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    // The servers do not tell clients of each other: a node given one server is cut off
    // when that one is gone.
    let mut nats =
        NatsCluster::start_with(&binary, 3, &["--no_advertise"]).map_err(anyhow::Error::msg)?;
    let hook = Receiver::start().await?;
    let dir = tempfile::tempdir()?;
    let urls = nats.urls();
    let n1_servers = match cut_off {
        CutOff::Paused => urls.clone(),
        CutOff::NatsGone => urls[..1].to_vec(),
    };
    let nodes = [
        start_node_on(dir.path(), &n1_servers, "n1", &hook)?,
        start_node_on(dir.path(), &urls[1..], "n2", &hook)?,
        start_node_on(dir.path(), &urls[1..], "n3", &hook)?,
    ];
    settled(&nodes.iter().collect::<Vec<_>>()).await?;
    // A service whose partition n1 holds.
    let mut service = None;
    for i in 0..200 {
        let name = format!("checkout-{i}");
        let view = nodes[1]
            .get(&format!("/api/v1/cluster?service={name}"))
            .await?;
        if view["service"]["node"] == "n1" {
            service = Some(name);
            break;
        }
    }
    let service = service.context("n1 holds no partition of 200 names")?;
    // Ten times the baseline's timeouts (a regression of its steady errors) and a new
    // exception: unhealthy from the first bucket on.
    let mix = Mix {
        total: 2_000,
        timeouts: 20,
        new_errors: 200,
        new_error: &declined,
    };
    let bad_release = |version: &'static str| {
        let (node, service) = (&nodes[1], service.clone());
        async move {
            record_deployment(node, &service, ENV, version, now_ms()).await?;
            let resource = release_resource(&service, version, ENV, "bad");
            export_logs(&node.grpc_url(), &resource, mix.records(now_ms())).await
        }
    };
    let deploy_ms = now_ms();
    baseline_then_deploy(&nodes[1], &service, ENV, "2.0.0", deploy_ms).await?;
    let resource = release_resource(&service, "2.0.0", ENV, "bad");
    export_logs(&nodes[1].grpc_url(), &resource, mix.records(now_ms())).await?;
    hook.wait_accepted(1, SLOW)
        .await
        .context("n1 never notified the first bad release")?;
    // Both of 2.0.0's alerts (its spike and its new issue) delivered and recorded as
    // such before n1 is cut off: a send whose outcome n1 could no longer record would be
    // sent again by the new owner (delivery is at least once; the notification id tells
    // a receiver that it is a repeat), which is not what this test is about.
    eventually(SLOW, || async {
        let kinds: BTreeSet<String> = hook
            .requests()
            .iter()
            .flat_map(|r| {
                let body = r.json();
                let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
                alerts
                    .iter()
                    .filter_map(|a| a["kind"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect();
        let outbox = nodes[1].get("/api/v1/outbox").await?;
        let drained = outbox["pending"].as_array().is_some_and(Vec::is_empty);
        Ok((drained && kinds.contains("error_spike") && kinds.contains("new_issue")).then_some(()))
    })
    .await
    .context("2.0.0's notifications were not all delivered and recorded")?;

    hook.delay_answers(Duration::from_secs(4));
    match cut_off {
        CutOff::Paused => signal(nodes[0].process.id(), "STOP")?,
        CutOff::NatsGone => nats.kill(0),
    }
    let moved = eventually(SLOW, || async {
        let view = nodes[1]
            .get(&format!("/api/v1/cluster?service={service}"))
            .await?;
        Ok(view["service"]["node"]
            .as_str()
            .filter(|n| *n != "n1")
            .map(str::to_owned))
    })
    .await;
    let before = hook.requests().len();
    let fired = async {
        moved.context("the service's lease never moved off n1")?;
        bad_release("3.0.0").await?;
        eventually(SLOW, || async {
            Ok((hook.requests().len() > before).then_some(()))
        })
        .await
        .with_context(|| {
            let logs: Vec<String> = nodes
                .iter()
                .map(|n| {
                    let text = n.process.stderr_text();
                    let lines: Vec<&str> = text.lines().filter(|l| !l.contains(" INFO ")).collect();
                    lines[lines.len().saturating_sub(15)..].join("\n")
                })
                .collect();
            format!(
                "the new owner never notified; the nodes' warnings:\n{}",
                logs.join("\n--\n")
            )
        })
    }
    .await;
    if let CutOff::Paused = cut_off {
        signal(nodes[0].process.id(), "CONT")?;
    }
    fired?;
    if let CutOff::NatsGone = cut_off {
        // Cut off, n1 holds nothing (its API still answers).
        let owned = eventually(SLOW, || async {
            let view = nodes[0].get("/api/v1/cluster").await?;
            Ok(view["owned"]
                .as_array()
                .filter(|o| o.is_empty())
                .map(|_| ()))
        })
        .await;
        ensure!(
            owned.is_ok(),
            "n1, cut off from NATS, still holds partitions"
        );
    }
    // The new owner's delivery is in flight while n1 runs again, and for a while after:
    // this window is where n1 would send, were it not fenced.
    tokio::time::sleep(Duration::from_secs(6)).await;
    hook.delay_answers(Duration::ZERO);
    let notified = each_notification_once(&hook)?;
    ensure!(
        notified >= 2,
        "expected the 2.0.0 and 3.0.0 alerts, got {notified}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_neither_delivers_nor_fires_once_its_lease_moved() -> Result<()> {
    fenced(CutOff::Paused).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_cut_off_from_nats_stops_acting_for_its_partitions() -> Result<()> {
    fenced(CutOff::NatsGone).await
}

//! Partition leases between real nodes over a real 3-server `nats-server` cluster: every
//! partition held by exactly one node, evenly; a crashed node's partitions move; a
//! joining node gets its share; a node cut off from NATS stops before anyone takes over.
//! Every test samples all nodes' owned sets every 20 ms and fails if two ever overlap.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bellwether_cluster::leases::{LeaseSettings, Leases};
use bellwether_testkit::nats::{nats_server_or_skip, NatsCluster};

type Result<T> = std::result::Result<T, String>;

const PARTITIONS: u32 = 12;
const TTL: Duration = Duration::from_secs(2);

async fn node(urls: &[String], name: &str, prefix: &str) -> Result<Leases> {
    let addresses: Vec<async_nats::ServerAddr> = urls
        .iter()
        .map(|u| u.parse().map_err(|e| format!("{u}: {e}")))
        .collect::<Result<_>>()?;
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .ignore_discovered_servers()
        .connect(addresses)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let mut settings = LeaseSettings::new(name, format!("http://{name}"));
    settings.partitions = PARTITIONS;
    settings.ttl = TTL;
    settings.prefix = prefix.to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Leases::start(client.clone(), settings.clone()).await {
            Ok(leases) => return Ok(leases),
            // JetStream may still be electing its leader.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn owned(nodes: &[&Leases]) -> Vec<BTreeSet<u32>> {
    nodes.iter().map(|n| n.owned().borrow().clone()).collect()
}

/// Waits until `done` holds of the owned sets, checking every 20 ms that no partition
/// is owned twice. Returns how long it took.
async fn until(
    nodes: &[&Leases],
    limit: Duration,
    what: &str,
    done: impl Fn(&[BTreeSet<u32>]) -> bool,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let sets = owned(nodes);
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<u32> = sets.iter().flatten().copied().collect();
        if total != union.len() {
            return Err(format!("a partition owned twice: {sets:?}"));
        }
        if done(&sets) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            return Err(format!("{what}: not within {limit:?}: {sets:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_evenly(sets: &[BTreeSet<u32>], each: usize) -> bool {
    let union: BTreeSet<u32> = sets.iter().flatten().copied().collect();
    union.len() == PARTITIONS as usize && sets.iter().all(|s| s.len() == each)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_held_once_evenly_and_move_when_a_node_dies_or_joins() -> Result<()> {
    let Some(binary) = nats_server_or_skip()? else {
        return Ok(());
    };
    let cluster = NatsCluster::start(&binary, 3)?;
    let urls = cluster.urls();
    let a = node(&urls, "a", "moves").await?;
    let b = node(&urls, "b", "moves").await?;
    let c = node(&urls, "c", "moves").await?;
    until(
        &[&a, &b, &c],
        Duration::from_secs(30),
        "three nodes, 4 each",
        |s| all_evenly(s, 4),
    )
    .await?;

    // c dies without a word (its tasks stop, nothing released): a and b take its share.
    drop(c);
    let took = until(
        &[&a, &b],
        Duration::from_secs(30),
        "two nodes, 6 each",
        |s| all_evenly(s, 6),
    )
    .await?;
    eprintln!("takeover after a node died: {took:?} (TTL {TTL:?})");

    // d joins: back to an even share over three.
    let d = node(&urls, "d", "moves").await?;
    until(
        &[&a, &b, &d],
        Duration::from_secs(30),
        "three nodes again, 4 each",
        |s| all_evenly(s, 4),
    )
    .await?;

    // b leaves in order: it releases, and the others take over at once.
    b.stop().await;
    until(
        &[&a, &d],
        Duration::from_secs(30),
        "two nodes, 6 each",
        |s| all_evenly(s, 6),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_stops_before_another_takes_over() -> Result<()> {
    let Some(binary) = nats_server_or_skip()? else {
        return Ok(());
    };
    let mut cluster = NatsCluster::start(&binary, 3)?;
    let urls = cluster.urls();
    // a and b know only servers 0 and 1; c knows only server 2.
    let a = node(&urls[..2], "a", "fence").await?;
    let b = node(&urls[..2], "b", "fence").await?;
    let c = node(&urls[2..], "c", "fence").await?;
    until(
        &[&a, &b, &c],
        Duration::from_secs(30),
        "three nodes, 4 each",
        |s| all_evenly(s, 4),
    )
    .await?;

    // Server 2 dies: c is cut off. Its owned set must empty while the others' never
    // overlap it (checked on every sample), and a and b then hold everything.
    cluster.kill(2);
    let stopped = until(
        &[&a, &b, &c],
        Duration::from_secs(30),
        "c holds nothing",
        |s| s[2].is_empty(),
    )
    .await?;
    assert!(
        stopped <= TTL,
        "c stopped after {stopped:?}, later than the TTL"
    );
    let outcome = until(
        &[&a, &b, &c],
        Duration::from_secs(30),
        "a and b hold all, 6 each",
        |s| s[2].is_empty() && s[0].len() == 6 && s[1].len() == 6,
    )
    .await;
    if let Err(e) = outcome {
        return Err(format!("{e}\na's view: {:#?}", a.view()));
    }
    Ok(())
}

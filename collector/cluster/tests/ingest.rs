//! Ingest through the partitioned JetStream stream, over a real 3-server `nats-server`
//! cluster into a real sled store: re-sent batches count once, and every acknowledged
//! batch counts exactly once when the stream's leader is killed in the middle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bellwether_cluster::ingest::{IngestLog, IngestSettings};
use bellwether_cluster::partition_of;
use bellwether_model::release::{Counts, ReleaseKey};
use bellwether_store::{IngestBatch, ReleaseDelta, ReleaseStore, SledStore};
use bellwether_testkit::nats::{nats_server_or_skip, NatsCluster};

type Result<T> = std::result::Result<T, String>;

const PARTITIONS: u32 = 8;
const SERVICES: [&str; 3] = ["checkout", "catalog", "search"];

fn batch(n: usize) -> IngestBatch {
    let mut releases = BTreeMap::new();
    for service in SERVICES {
        let mut delta = ReleaseDelta::default();
        delta.buckets.insert(
            1_700_000_000_000,
            Counts {
                log_records: 10,
                error_logs: 1,
                errors: 1,
                ..Counts::default()
            },
        );
        releases.insert(ReleaseKey::new(service, "prod", "2.0.0"), delta);
    }
    IngestBatch {
        batch_id: Some(format!("agent-1-{n}")),
        received_at_unix_ms: 1_700_000_000_000,
        releases,
    }
}

async fn open(cluster: &NatsCluster, prefix: &str) -> Result<IngestLog> {
    let addresses: Vec<async_nats::ServerAddr> = cluster
        .urls()
        .iter()
        .map(|u| u.parse().map_err(|e| format!("{u}: {e}")))
        .collect::<Result<_>>()?;
    let client = async_nats::connect(addresses)
        .await
        .map_err(|e| e.to_string())?;
    let settings = IngestSettings {
        prefix: prefix.to_owned(),
        partitions: PARTITIONS,
        ..IngestSettings::default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match IngestLog::open(client.clone(), settings.clone()).await {
            Ok(log) => return Ok(log),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Publishes batch `n` until the stream acknowledges it, as an agent re-sends.
async fn publish_until_acknowledged(log: &IngestLog, n: usize) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match log.publish(&batch(n)).await {
            Ok(_) => return Ok(attempts),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(format!("batch {n}: {e}")),
        }
    }
}

fn totals(store: &SledStore) -> Result<Vec<u64>> {
    SERVICES
        .iter()
        .map(|s| {
            store
                .totals(&ReleaseKey::new(*s, "prod", "2.0.0"))
                .map(|c| c.log_records)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Follows every partition into `store` for up to `limit` or until each service counts
/// `want` records.
async fn follow_all(
    log: &IngestLog,
    store: &Arc<SledStore>,
    want: u64,
    limit: Duration,
) -> Result<()> {
    let partitions: std::collections::BTreeSet<u32> = SERVICES
        .iter()
        .map(|s| partition_of(s, PARTITIONS))
        .collect();
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut followers = Vec::new();
    for partition in partitions {
        let log = log.clone();
        let store: Arc<dyn ReleaseStore> = store.clone();
        let mut stop = stop_tx.subscribe();
        followers.push(tokio::spawn(async move {
            log.follow(partition, 1, store, async move {
                let _ = stop.recv().await;
            })
            .await
        }));
    }
    let deadline = Instant::now() + limit;
    while !totals(store)?.iter().all(|c| *c >= want) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    for follower in followers {
        follower
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Applies every partition's parts into `store` until each service counts `want`
/// records. A follower made while the stream elects a leader can sit on the server that
/// is gone; then the partitions are followed again from the start, as a new owner would
/// (the store's batch ids keep a replayed part from counting twice).
async fn apply_all(log: &IngestLog, store: Arc<SledStore>, want: u64) -> Result<()> {
    for _ in 0..4 {
        follow_all(log, &store, want, Duration::from_secs(15)).await?;
        if totals(&store)?.iter().all(|c| *c >= want) {
            break;
        }
    }
    assert_eq!(
        totals(&store)?,
        vec![want; SERVICES.len()],
        "records per service"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_sent_batch_counts_once() -> Result<()> {
    let Some(binary) = nats_server_or_skip()? else {
        return Ok(());
    };
    let cluster = NatsCluster::start(&binary, 3)?;
    let log = open(&cluster, "dedup").await?;
    for n in 0..50 {
        let published = log.publish(&batch(n)).await.map_err(|e| e.to_string())?;
        assert_eq!((published.parts, published.duplicates), (3, 0));
    }
    for n in 0..10 {
        let again = log.publish(&batch(n)).await.map_err(|e| e.to_string())?;
        assert_eq!((again.parts, again.duplicates), (3, 3), "batch {n} re-sent");
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = Arc::new(SledStore::open(dir.path()).map_err(|e| e.to_string())?);
    // 50 batches of 10 records per service; the 10 re-sent ones add nothing.
    apply_all(&log, Arc::clone(&store), 500).await?;
    // Applied a second time from the start (a new owner replaying): still 500.
    apply_all(&log, store, 500).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_loses_and_doubles_nothing() -> Result<()> {
    let Some(binary) = nats_server_or_skip()? else {
        return Ok(());
    };
    let mut cluster = NatsCluster::start(&binary, 3)?;
    let log = open(&cluster, "leader").await?;
    let mut resent = 0;
    for n in 0..100 {
        if n == 40 {
            // kill -9 of the server that leads the stream (servers are named n0..n2).
            let leader = log.leader().await.map_err(|e| e.to_string())?;
            let index: usize = leader
                .trim_start_matches('n')
                .parse()
                .map_err(|_| format!("leader {leader:?}"))?;
            cluster.kill(index);
        }
        resent += publish_until_acknowledged(&log, n).await? - 1;
    }
    eprintln!("re-sent after errors: {resent} publishes");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = Arc::new(SledStore::open(dir.path()).map_err(|e| e.to_string())?);
    apply_all(&log, store, 1_000).await
}

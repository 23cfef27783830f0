//! One suite of the shared-state store contracts (verdicts, alerts, silences, ids, the
//! outbox), run against sled and against NATS JetStream key-value buckets on a real
//! 3-node `nats-server` cluster, so that the collector above cannot tell them apart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bellwether_model::alert::{Alert, AlertKind, AlertState, Severity};
use bellwether_model::health::{Evidence, Figures, ReleaseHealth, Verdict};
use bellwether_model::notification::{
    Counter, EntryState, Event, NewEntry, Notification, ReleaseInfo,
};
use bellwether_model::release::{Counts, ReleaseKey};
use bellwether_model::silence::{Matchers, Silence};
use bellwether_store::alerts::{AlertStore, OutboxStore, SledAlertStore};
use bellwether_store::nats::{KvAlertStore, KvVerdicts, Nats, NatsSettings};
use bellwether_store::verdicts::{SledVerdicts, VerdictStore, MAX_TIMELINE};
use bellwether_store::StoreError;
use bellwether_testkit::nats::{nats_server_or_skip, NatsCluster};

type Result<T> = std::result::Result<T, String>;

fn text(e: StoreError) -> String {
    e.to_string()
}

fn health(release: &ReleaseKey, verdict: Verdict, at: i64) -> ReleaseHealth {
    ReleaseHealth {
        release: release.clone(),
        verdict,
        evidence: vec![Evidence::new("needed", format!("at {at}"))],
        totals: Counts::default(),
        evaluated_at_unix_ms: at,
        started_at_unix_ms: 0,
        revision: at as u64,
        figures: Figures::default(),
    }
}

fn alert(release: &ReleaseKey, id: &str) -> Alert {
    Alert {
        id: id.to_owned(),
        dedup_key: format!("{}/{id}", release.service),
        kind: AlertKind::ErrorSpike,
        release: release.clone(),
        commit: None,
        deploy_id: None,
        release_started_at_unix_ms: 0,
        fingerprint: None,
        team: "payments".into(),
        routed_by: "default".into(),
        severity: Severity::Error,
        summary: "error rate up".into(),
        evidence: Vec::new(),
        state: AlertState::Firing,
        started_at_unix_ms: 1,
        updated_at_unix_ms: 1,
        acknowledged_at_unix_ms: None,
        acknowledged_by: None,
        resolved_at_unix_ms: None,
        resolution: None,
        superseded_by: None,
        notify_due_at_unix_ms: None,
        sent: BTreeMap::new(),
        notified: BTreeSet::new(),
        silenced_by: None,
    }
}

fn new_entry(receiver: &str, n: usize) -> NewEntry {
    NewEntry {
        receiver: receiver.to_owned(),
        order_key: format!("order/{n}"),
        notification: Notification {
            id: format!("n-{n}"),
            team: "payments".into(),
            release: ReleaseInfo::default(),
            event: Event::Deploy,
            dashboard_url: None,
            created_at_unix_ms: n as i64,
        },
    }
}

/// Releases whose names stress key encodings: dots, spaces, slashes, unicode, empty.
fn releases() -> Vec<ReleaseKey> {
    vec![
        ReleaseKey::new("checkout", "prod", "2.0.0"),
        ReleaseKey::new("checkout", "prod", "2.0.1"),
        ReleaseKey::new("a.b c/ü*>", "", "1"),
    ]
}

fn verdict_contract(store: &dyn VerdictStore) -> Result<()> {
    let [one, two, odd] = <[ReleaseKey; 3]>::try_from(releases()).map_err(|_| "releases")?;
    assert_eq!(store.latest(&one).map_err(text)?, None);
    assert!(store.timeline(&one).map_err(text)?.is_empty());
    store
        .record(&health(&one, Verdict::Pending, 1))
        .map_err(text)?;
    store
        .record(&health(&one, Verdict::Pending, 2))
        .map_err(text)?;
    store
        .record(&health(&one, Verdict::Unhealthy, 3))
        .map_err(text)?;
    store
        .record(&health(&odd, Verdict::Healthy, 4))
        .map_err(text)?;
    let timeline: Vec<(i64, Verdict)> = store
        .timeline(&one)
        .map_err(text)?
        .iter()
        .map(|e| (e.at_unix_ms, e.verdict))
        .collect();
    assert_eq!(
        timeline,
        vec![(1, Verdict::Pending), (3, Verdict::Unhealthy)]
    );
    assert_eq!(
        store
            .latest(&one)
            .map_err(text)?
            .map(|h| h.evaluated_at_unix_ms),
        Some(3)
    );
    assert_eq!(store.latest(&two).map_err(text)?, None, "a neighbour's key");
    assert_eq!(
        store.latest(&odd).map_err(text)?.map(|h| h.verdict),
        Some(Verdict::Healthy)
    );
    // The timeline keeps the newest MAX_TIMELINE changes.
    for at in 0..(MAX_TIMELINE as i64 + 5) {
        let verdict = if at % 2 == 0 {
            Verdict::Healthy
        } else {
            Verdict::Degraded
        };
        store
            .record(&health(&two, verdict, 100 + at))
            .map_err(text)?;
    }
    let kept = store.timeline(&two).map_err(text)?;
    assert_eq!(kept.len(), MAX_TIMELINE);
    assert_eq!(kept.first().map(|e| e.at_unix_ms), Some(105));
    Ok(())
}

fn alert_contract(store: &dyn AlertStore) -> Result<()> {
    let [one, two, odd] = <[ReleaseKey; 3]>::try_from(releases()).map_err(|_| "releases")?;
    assert!(store.alerts().map_err(text)?.is_empty());
    let mut first = alert(&one, "bw-1");
    store.put_alert(&first).map_err(text)?;
    store.put_alert(&alert(&two, "bw-2")).map_err(text)?;
    store.put_alert(&alert(&odd, "bw-3")).map_err(text)?;
    first.state = AlertState::Acknowledged;
    store.put_alert(&first).map_err(text)?;
    let mut alerts = store.alerts().map_err(text)?;
    alerts.sort_by(|a, b| a.id.cmp(&b.id));
    let states: Vec<(&str, AlertState)> = alerts.iter().map(|a| (a.id.as_str(), a.state)).collect();
    assert_eq!(
        states,
        vec![
            ("bw-1", AlertState::Acknowledged),
            ("bw-2", AlertState::Firing),
            ("bw-3", AlertState::Firing)
        ]
    );
    store.remove_alert(&first).map_err(text)?;
    assert_eq!(store.alerts().map_err(text)?.len(), 2);

    let silence = Silence {
        id: "s-1".into(),
        matchers: Matchers {
            service: Some("checkout".into()),
            ..Matchers::default()
        },
        starts_at_unix_ms: 0,
        ends_at_unix_ms: 10,
        comment: "maintenance".into(),
        created_by: None,
        created_at_unix_ms: 0,
    };
    store.put_silence(&silence).map_err(text)?;
    assert_eq!(store.silences().map_err(text)?, vec![silence]);
    assert!(store.remove_silence("s-1").map_err(text)?);
    assert!(!store.remove_silence("s-1").map_err(text)?);
    assert!(store.silences().map_err(text)?.is_empty());

    let ids: Vec<u64> = (0..5)
        .map(|_| store.next_id())
        .collect::<std::result::Result<_, _>>()
        .map_err(text)?;
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    Ok(())
}

fn outbox_contract(store: &dyn OutboxStore) -> Result<()> {
    let ids = store
        .enqueue((0..3).map(|n| new_entry("hook", n)).collect(), 7)
        .map_err(text)?;
    assert_eq!(ids.len(), 3);
    let entries = store.entries().map_err(text)?;
    assert_eq!(
        entries.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids,
        "oldest first"
    );
    assert!(entries
        .iter()
        .all(|e| e.state == EntryState::Pending && e.created_at_unix_ms == 7));

    let mut retried = entries[1].clone();
    retried.attempts = 1;
    store.save(&retried, Some(Counter::Retries)).map_err(text)?;
    store.delivered(ids[0]).map_err(text)?;
    let mut failed = entries[2].clone();
    failed.state = EntryState::Failed;
    store.save(&failed, Some(Counter::GivenUp)).map_err(text)?;

    let left = store.entries().map_err(text)?;
    assert_eq!(
        left.iter()
            .map(|e| (e.id, e.attempts, e.state))
            .collect::<Vec<_>>(),
        vec![
            (ids[1], 1, EntryState::Pending),
            (ids[2], 0, EntryState::Failed)
        ]
    );
    let counters = store.counters().map_err(text)?;
    assert_eq!(
        (
            counters.enqueued,
            counters.delivered,
            counters.retries,
            counters.given_up,
            counters.rejected
        ),
        (3, 1, 1, 1, 0)
    );
    store.remove(ids[2]).map_err(text)?;
    assert_eq!(store.entries().map_err(text)?.len(), 1);
    Ok(())
}

#[test]
fn sled_keeps_the_contracts() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = sled::open(dir.path().join("verdicts")).map_err(|e| e.to_string())?;
    let verdicts = SledVerdicts::new(db.open_tree("verdicts").map_err(|e| e.to_string())?);
    verdict_contract(&verdicts)?;
    let alerts = SledAlertStore::open(&dir.path().join("alerts")).map_err(text)?;
    alert_contract(&alerts)?;
    outbox_contract(&alerts)
}

/// Connects to `cluster` with its own bucket prefix, once JetStream is ready.
fn connect(cluster: &NatsCluster, prefix: &str) -> Result<Nats> {
    let mut settings = NatsSettings::new(cluster.urls());
    settings.prefix = prefix.to_owned();
    settings.timeout = Duration::from_secs(5);
    connect_with(settings)
}

#[test]
fn jetstream_keeps_the_contracts() -> Result<()> {
    let Some(binary) = nats_server_or_skip()? else {
        return Ok(());
    };
    let cluster = NatsCluster::start(&binary, 3)?;
    let nats = connect(&cluster, "contracts")?;
    verdict_contract(&KvVerdicts::open(&nats).map_err(text)?)?;
    let alerts = KvAlertStore::open(&nats).map_err(text)?;
    alert_contract(&alerts)?;
    outbox_contract(&alerts)
}

#[test]
fn nodes_sharing_jetstream_see_one_state_and_never_share_an_id() -> Result<()> {
    let Some(binary) = nats_server_or_skip()? else {
        return Ok(());
    };
    let cluster = NatsCluster::start(&binary, 3)?;
    // Three nodes, each with its own connection (to a different first server).
    let mut nodes = Vec::new();
    for i in 0..3 {
        let mut urls = cluster.urls();
        urls.rotate_left(i);
        let mut settings = NatsSettings::new(urls);
        settings.prefix = "shared".into();
        settings.name = format!("node-{i}");
        let nats = connect_with(settings)?;
        nodes.push(Arc::new(KvAlertStore::open(&nats).map_err(text)?));
    }
    // A fresh cluster makes the id stream on the first call, which waits on JetStream's
    // meta leader and may outlast one call's timeout on a loaded machine: the first id
    // is asked until it comes (within a minute), then the three nodes race.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        match nodes[0].next_id() {
            Ok(id) => break id,
            Err(e) if Instant::now() < deadline => {
                eprintln!("first id not yet: {e}");
            }
            Err(e) => return Err(text(e)),
        }
    };
    let handles: Vec<_> = nodes
        .iter()
        .map(|node| {
            let node = Arc::clone(node);
            std::thread::spawn(move || -> Result<Vec<u64>> {
                (0..40).map(|_| node.next_id().map_err(text)).collect()
            })
        })
        .collect();
    let mut all = vec![first];
    for handle in handles {
        all.extend(handle.join().map_err(|_| "a node's thread panicked")??);
    }
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        121,
        "the first id and 120 taken at once by 3 nodes, all distinct"
    );

    let release = ReleaseKey::new("checkout", "prod", "2.0.0");
    nodes[0].put_alert(&alert(&release, "bw-9")).map_err(text)?;
    let seen = nodes[2].alerts().map_err(text)?;
    assert_eq!(
        seen.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec!["bw-9"]
    );
    Ok(())
}

/// Connects with `settings` once its JetStream has a leader (a bucket can be opened).
fn connect_with(settings: NatsSettings) -> Result<Nats> {
    let nats = Nats::connect(&settings).map_err(text)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match KvAlertStore::open(&nats) {
            Ok(_) => return Ok(nats),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("JetStream never became ready: {e}")),
        }
    }
}

#[test]
fn the_store_survives_one_server_of_three_and_fails_clearly_without_quorum() -> Result<()> {
    let Some(binary) = nats_server_or_skip()? else {
        return Ok(());
    };
    let mut cluster = NatsCluster::start_with(&binary, 3, &["--no_advertise"])?;
    let mut settings = NatsSettings::new(cluster.urls()[1..].to_vec());
    settings.prefix = "quorum".into();
    settings.timeout = Duration::from_secs(3);
    let nats = connect_with(settings)?;
    let verdicts = KvVerdicts::open(&nats).map_err(text)?;
    let release = ReleaseKey::new("checkout", "prod", "2.0.0");
    verdicts
        .record(&health(&release, Verdict::Pending, 1))
        .map_err(text)?;
    let alerts = KvAlertStore::open(&nats).map_err(text)?;
    alerts.put_alert(&alert(&release, "a-1")).map_err(text)?;

    // Listers on other connections, as every node's alert engine lists once a second:
    // each notes when its latest successful listing started.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listed_at = Arc::new(std::sync::Mutex::new(vec![None::<Instant>; 3]));
    let mut listers = Vec::new();
    for i in 0..3 {
        let mut settings = NatsSettings::new(cluster.urls()[1..].to_vec());
        settings.prefix = "quorum".into();
        settings.name = format!("lister-{i}");
        settings.timeout = Duration::from_secs(3);
        let store = KvAlertStore::open(&connect_with(settings)?).map_err(text)?;
        let (stop, listed_at) = (Arc::clone(&stop), Arc::clone(&listed_at));
        listers.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                if store.alerts().is_ok_and(|a| a.len() == 1) {
                    if let Ok(mut at) = listed_at.lock() {
                        at[i] = Some(started);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    while listed_at
        .lock()
        .map_or(true, |at| at.iter().any(Option::is_none))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // One server gone (kill -9): two of three replicas remain, writes go on.
    cluster.kill(0);
    let killed_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut written = verdicts.record(&health(&release, Verdict::Unhealthy, 2));
    while written.is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        written = verdicts.record(&health(&release, Verdict::Unhealthy, 2));
    }
    written.map_err(|e| format!("no write with 2 of 3 servers: {e}"))?;
    let timeline: Vec<Verdict> = verdicts
        .timeline(&release)
        .map_err(text)?
        .iter()
        .map(|e| e.verdict)
        .collect();
    assert_eq!(timeline, vec![Verdict::Pending, Verdict::Unhealthy]);
    // Listing (alerts, the outbox) goes on too.
    let mut listed = alerts.alerts();
    while listed.is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        listed = alerts.alerts();
    }
    let listed = listed.map_err(|e| format!("no listing with 2 of 3 servers: {e}"))?;
    assert_eq!(listed.len(), 1);
    // Connections that were listing when the server died list again.
    let lists_again =
        |at: &Vec<Option<Instant>>| at.iter().all(|t| t.is_some_and(|t| t > killed_at));
    while !listed_at.lock().is_ok_and(|at| lists_again(&at)) {
        assert!(
            Instant::now() < deadline,
            "a connection listing at the kill never listed again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for lister in listers {
        lister.join().map_err(|_| "lister panicked")?;
    }

    // Two gone: no quorum. A call fails within its timeout with a clear error, never hangs.
    cluster.kill(1);
    let started = Instant::now();
    let outcome = verdicts.record(&health(&release, Verdict::Healthy, 3));
    assert!(outcome.is_err(), "a write without quorum must fail");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it took {:?}",
        started.elapsed()
    );
    let message = outcome.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.starts_with("replicated store:"), "{message}");
    Ok(())
}

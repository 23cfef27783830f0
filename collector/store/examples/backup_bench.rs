//! Backup and restore throughput on this machine: fills a release store through the
//! ingest write path (per-release buckets, latency reservoirs, issues with samples and
//! stack traces, batch ids) and an alert database, then times the snapshot (how long
//! writes are held back), writing the archive, checking it, and restoring it.
//!
//!   cargo run --release -p bellwether-store --example backup_bench -- [MB] [DIR]
//!
//! MB is the approximate archive body to build (default 300); DIR the scratch directory
//! (default: a temporary directory under $TMPDIR).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bellwether_model::issue::{IssueDelta, IssueSample};
use bellwether_model::release::{Counts, ReleaseKey};
use bellwether_model::silence::{Matchers, Silence};
use bellwether_store::alerts::{AlertStore, SledAlertStore};
use bellwether_store::backup::{self, Source};
use bellwether_store::{IngestBatch, ReleaseDelta, ReleaseStore, Reservoir, SledStore};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const STACK: &str = "java.lang.IllegalStateException: order total mismatch\n\
    \tat com.example.checkout.Orders.total(Orders.java:118)\n\
    \tat com.example.checkout.Orders.place(Orders.java:74)\n\
    \tat com.example.checkout.api.OrderController.create(OrderController.java:41)\n\
    \tat jdk.internal.reflect.GeneratedMethodAccessor12.invoke(Unknown Source)\n\
    \tat org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod.java:205)\n";

/// Batch `i`: one of 500 releases, 10 s buckets marching forward, a latency reservoir per
/// bucket, and every 4th batch a new issue with samples.
fn batch(i: u64, start_ms: i64) -> IngestBatch {
    let release = ReleaseKey::new(
        format!("svc-{}", i % 50),
        "prod",
        format!("1.{}", (i / 50) % 10),
    );
    let bucket = start_ms + (i / 500) as i64 * 10_000;
    let mut delta = ReleaseDelta::default();
    delta.buckets.insert(
        bucket,
        Counts {
            log_records: 200,
            error_logs: 3,
            spans: 150,
            error_spans: 2,
            ..Counts::default()
        },
    );
    let mut reservoir = Reservoir::default();
    for n in 0..256u64 {
        reservoir.offer(((i * 7919 + n * 104_729) % 2_000_000) as u32);
    }
    delta.latency.insert(bucket, reservoir);
    if i.is_multiple_of(4) {
        let samples = (0..3)
            .map(|n| IssueSample {
                message: format!("order total mismatch in batch {i}"),
                stack: STACK.repeat(3),
                trace_id: format!("{:032x}", i * 3 + n),
                span_id: format!("{:016x}", i * 3 + n),
                instance: format!("pod-{}", n),
                unix_ms: bucket,
            })
            .collect();
        delta.issues.insert(
            format!("{:016x}", i / 4),
            IssueDelta {
                title: "IllegalStateException: order total mismatch".into(),
                exception_type: "IllegalStateException".into(),
                count: 3,
                first_seen_unix_ms: bucket,
                last_seen_unix_ms: bucket,
                instances: ["pod-0".to_owned()].into_iter().collect(),
                samples,
                buckets: BTreeMap::from([(bucket, 3)]),
            },
        );
    }
    IngestBatch {
        batch_id: Some(format!("agent-{}:boot-1:{i}", i % 40)),
        received_at_unix_ms: bucket,
        releases: [(release, delta)].into_iter().collect(),
    }
}

fn du(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn per_gb(took: Duration, bytes: u64) -> f64 {
    took.as_secs_f64() * 1e9 / bytes as f64
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let target_mb: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(300);
    let scratch = match args.next() {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let data = scratch.path().join("data");
    let store = SledStore::open_with(&data, false)?;
    let alerts = SledAlertStore::open(&data.join("alerts"))?.gated(store.gate());
    for n in 0..200 {
        alerts.put_silence(&Silence {
            id: format!("s-{n}"),
            matchers: Matchers {
                service: Some(format!("svc-{n}")),
                ..Matchers::default()
            },
            starts_at_unix_ms: 0,
            ends_at_unix_ms: i64::MAX,
            comment: "bench".into(),
            created_by: None,
            created_at_unix_ms: 0,
        })?;
    }

    let filling = Instant::now();
    let start_ms = 1_700_000_000_000;
    let mut i = 0u64;
    // Sizes are checked now and then from a trial archive's manifest, which counts
    // exactly the bytes an archive would hold.
    loop {
        for _ in 0..20_000 {
            store.apply(&batch(i, start_ms))?;
            i += 1;
        }
        store.flush()?;
        let bytes: u64 = du(&data);
        if bytes / 1_000_000 >= target_mb * 2 || bytes / 1_000_000 > 50_000 {
            break;
        }
        let source = Source::new(store.gate()).database("", store.db().clone());
        let trial = source.snapshot(tempfile::tempfile_in(scratch.path())?)?;
        if trial.manifest.body_bytes / 1_000_000 >= target_mb {
            break;
        }
    }
    store.flush()?;
    alerts.flush()?;
    println!(
        "filled: {i} batches in {:.1}s, data directory {:.0} MB",
        filling.elapsed().as_secs_f64(),
        mb(du(&data))
    );

    let source = Source::new(store.gate())
        .database("", store.db().clone())
        .database("alerts", alerts.db().clone());
    let started = Instant::now();
    let snapshot = source.snapshot(tempfile::tempfile_in(scratch.path())?)?;
    let snapshot_took = started.elapsed();
    let paused = snapshot.paused;
    let body = snapshot.manifest.body_bytes;
    let entries = snapshot.manifest.entries();
    let archive = scratch.path().join("bench.backup");
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&archive)?);
    snapshot.write_to(&mut out)?;
    out.into_inner()?.sync_all()?;
    let write_took = started.elapsed();
    let archive_bytes = std::fs::metadata(&archive)?.len();
    drop(store);
    drop(alerts);

    let started = Instant::now();
    backup::verify(std::fs::File::open(&archive)?)?;
    let verify_took = started.elapsed();

    let restored = scratch.path().join("restored");
    let started = Instant::now();
    backup::restore(std::fs::File::open(&archive)?, &restored, false)?;
    let restore_took = started.elapsed();

    println!("archive: {:.0} MB, {entries} entries", mb(archive_bytes));
    println!(
        "snapshot (writes held back): {:.2}s = {:.1} s/GB; spooling and sealing {:.2}s",
        paused.as_secs_f64(),
        per_gb(paused, body),
        snapshot_took.as_secs_f64()
    );
    println!(
        "archive written to a file: {:.2}s; checked (verify): {:.2}s = {:.1} s/GB",
        write_took.as_secs_f64(),
        verify_took.as_secs_f64(),
        per_gb(verify_took, archive_bytes)
    );
    println!(
        "restore: {:.2}s = {:.1} s/GB of archive, restored directory {:.0} MB",
        restore_took.as_secs_f64(),
        per_gb(restore_took, archive_bytes),
        mb(du(&restored))
    );
    Ok(())
}

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::*;
use crate::alerts::{AlertStore, SledAlertStore};
use crate::{ApplyOutcome, IngestBatch, ReleaseDelta, ReleaseStore, SledStore};
use bellwether_model::release::{Counts, ReleaseKey};
use bellwether_model::silence::{Matchers, Silence};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn release() -> ReleaseKey {
    ReleaseKey::new("api", "prod", "1.0")
}

/// Batch `i` adds `i % 7 + 1` log records to one bucket.
fn batch(i: u64) -> IngestBatch {
    let mut delta = ReleaseDelta::default();
    delta.buckets.insert(
        1_700_000_000_000 + (i as i64 % 5) * 10_000,
        Counts {
            log_records: i % 7 + 1,
            ..Counts::default()
        },
    );
    IngestBatch {
        batch_id: Some(format!("b:{i}")),
        received_at_unix_ms: 1_700_000_000_000,
        releases: [(release(), delta)].into_iter().collect(),
    }
}

fn silence(id: &str) -> Silence {
    Silence {
        id: id.to_owned(),
        matchers: Matchers {
            service: Some("api".into()),
            ..Matchers::default()
        },
        starts_at_unix_ms: 0,
        ends_at_unix_ms: i64::MAX,
        comment: "maintenance".into(),
        created_by: None,
        created_at_unix_ms: 0,
    }
}

/// A data directory like the collector's: the release store in `dir`, alerts in
/// `dir/alerts`, both behind one gate.
struct DataDir {
    store: SledStore,
    alerts: SledAlertStore,
}

impl DataDir {
    fn open(dir: &Path) -> Result<Self, StoreError> {
        let store = SledStore::open(dir)?;
        let alerts = SledAlertStore::open(&dir.join("alerts"))?.gated(store.gate());
        Ok(Self { store, alerts })
    }

    fn source(&self) -> Source {
        Source::new(self.store.gate())
            .database("", self.store.db().clone())
            .database("alerts", self.alerts.db().clone())
    }

    fn archive(&self) -> Result<Vec<u8>, BackupError> {
        let mut out = Vec::new();
        self.source()
            .snapshot(tempfile::tempfile().map_err(io("spool"))?)?
            .write_to(&mut out)?;
        Ok(out)
    }
}

/// An archive of a store with batches 0..20, one silence and one used id.
fn sample(dir: &Path) -> Result<(Vec<u8>, u64), Box<dyn std::error::Error>> {
    let data = DataDir::open(dir)?;
    for i in 0..20 {
        data.store.apply(&batch(i))?;
    }
    data.alerts.put_silence(&silence("s-1"))?;
    let used = data.alerts.next_id()?;
    Ok((data.archive()?, used))
}

#[test]
fn a_restored_directory_holds_what_was_archived() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (archive, used_id) = sample(&dir.path().join("source"))?;
    let target = dir.path().join("restored");
    let manifest = restore(&archive[..], &target, false)?;
    assert_eq!(manifest.tree_entries("", "batches"), Some(20));
    assert_eq!(manifest.tree_entries("alerts", "silences"), Some(1));
    assert_eq!(verify(&archive[..])?, manifest);

    let data = DataDir::open(&target)?;
    let expected: u64 = (0..20).map(|i| i % 7 + 1).sum();
    assert_eq!(data.store.totals(&release())?.log_records, expected);
    // The batch ids came along: a batch sent again is not counted twice.
    assert_eq!(data.store.apply(&batch(3))?, ApplyOutcome::Duplicate);
    assert_eq!(data.alerts.silences()?, vec![silence("s-1")]);
    // Ids go on from the archived counter, never handing out one in use.
    assert!(data.alerts.next_id()? > used_id);
    Ok(())
}

#[test]
fn every_truncation_is_refused_and_restores_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (archive, _) = sample(&dir.path().join("source"))?;
    let head = 16 + u32::from_be_bytes(archive[12..16].try_into()?) as usize;
    let cuts = [0, 4, 8, 11, 15, head - 1, head, head + 3, archive.len() / 2];
    for cut in cuts.into_iter().chain(archive.len() - 3..archive.len()) {
        let target = dir.path().join(format!("cut-{cut}"));
        let error = restore(&archive[..cut], &target, false)
            .err()
            .ok_or(format!("a cut at {cut} restored"))?;
        let text = error.to_string();
        let expected = if cut < 8 {
            matches!(error, BackupError::NotAnArchive)
        } else {
            matches!(error, BackupError::Truncated(_)) && text.contains("nothing restored")
        };
        assert!(expected, "cut at {cut}: {text}");
        assert!(!target.exists(), "cut at {cut} left {}", target.display());
        assert!(verify(&archive[..cut]).is_err());
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".restore-"))
        .collect();
    assert!(left.is_empty(), "staging directories left: {left:?}");
    Ok(())
}

#[test]
fn damage_is_refused_naming_what_is_wrong() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (archive, _) = sample(&dir.path().join("source"))?;
    let head = 16 + u32::from_be_bytes(archive[12..16].try_into()?) as usize;
    let flip = |at: usize| {
        let mut damaged = archive.clone();
        damaged[at] ^= 0x40;
        damaged
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("magic", flip(1), "not a Bellwether backup"),
        ("manifest", flip(20), "manifest"),
        ("last body byte", flip(archive.len() - 1), "SHA-256"),
        ("a length prefix", flip(head + 1), "damaged archive"),
        (
            "trailing bytes",
            [&archive[..], b"x"].concat(),
            "follow the end",
        ),
    ];
    for (what, damaged, says) in cases {
        let target = dir.path().join("target");
        let error = restore(&damaged[..], &target, false)
            .err()
            .ok_or(format!("{what}: restored"))?;
        assert!(error.to_string().contains(says), "{what}: {error}");
        assert!(!target.exists(), "{what}: left the target");
    }
    let mut newer = archive.clone();
    newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_be_bytes());
    let error = verify(&newer[..]).err().ok_or("a newer format verified")?;
    assert!(matches!(
        error,
        BackupError::NewerFormat {
            found: 2,
            supported: 1
        }
    ));
    Ok(())
}

#[test]
fn a_non_empty_target_needs_force_and_never_a_running_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (archive, _) = sample(&dir.path().join("source"))?;
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target)?;
    // An empty directory (a fresh volume) is fine.
    restore(&archive[..], &target, false)?;
    let error = restore(&archive[..], &target, false)
        .err()
        .ok_or("restored over a full directory")?;
    assert!(matches!(error, BackupError::NotEmpty(_)), "{error}");
    assert!(error.to_string().contains("--force"));

    let held = sled::Config::new().path(&target).open()?;
    let error = restore(&archive[..], &target, true)
        .err()
        .ok_or("restored under a running database")?;
    assert!(matches!(error, BackupError::InUse(_)), "{error}");
    drop(held);
    // sled lets go of the lock when its flusher does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match restore(&archive[..], &target, true) {
            Ok(_) => break,
            Err(BackupError::InUse(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let data = DataDir::open(&target)?;
    assert_eq!(data.alerts.silences()?.len(), 1);
    Ok(())
}

#[test]
fn a_snapshot_under_concurrent_writes_is_one_point_in_time() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = Arc::new(DataDir::open(&dir.path().join("source"))?);
    let stop = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(AtomicU64::new(0));
    let writer = {
        let (data, stop, applied) = (data.clone(), stop.clone(), applied.clone());
        std::thread::spawn(move || -> Result<(), StoreError> {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                data.store.apply(&batch(i))?;
                i += 1;
                applied.store(i, Ordering::SeqCst);
            }
            Ok(())
        })
    };
    let mut archives = Vec::new();
    while archives.len() < 3 {
        if applied.load(Ordering::SeqCst) > 50 * (archives.len() as u64 + 1) {
            archives.push(data.archive()?);
        }
        std::thread::yield_now();
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().map_err(|_| "writer panicked")??;
    for (n, archive) in archives.iter().enumerate() {
        let target = dir.path().join(format!("restored-{n}"));
        let manifest = restore(&archive[..], &target, false)?;
        let store = SledStore::open(&target)?;
        // Batches apply in order: the archive holds batches 0..k and exactly their counts.
        let k = manifest
            .tree_entries("", "batches")
            .ok_or("no batches tree")?;
        let expected: u64 = (0..k).map(|i| i % 7 + 1).sum();
        assert_eq!(
            store.totals(&release())?.log_records,
            expected,
            "archive {n}"
        );
        assert_eq!(store.apply(&batch(k - 1))?, ApplyOutcome::Duplicate);
        assert_eq!(store.apply(&batch(k))?, ApplyOutcome::Applied);
    }
    Ok(())
}

//! Upgrades: a data directory written before schema versions were stamped opens, reads
//! back and is stamped; one stamped by a newer Bellwether is refused, naming both versions.

use std::path::Path;

use bellwether_model::release::{Counts, DeploymentRecord, ReleaseKey};
use bellwether_model::silence::{Matchers, Silence};
use bellwether_store::alerts::{AlertStore, SledAlertStore};
use bellwether_store::schema::{self, SCHEMA_VERSION};
use bellwether_store::{ApplyOutcome, IngestBatch, ReleaseDelta, ReleaseStore, SledStore};
use bellwether_store::{StoreError, WriteGate};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn release() -> ReleaseKey {
    ReleaseKey::new("api", "prod", "1.0")
}

fn batch(id: &str, logs: u64) -> IngestBatch {
    let mut delta = ReleaseDelta::default();
    delta.buckets.insert(
        1_700_000_000_000,
        Counts {
            log_records: logs,
            ..Counts::default()
        },
    );
    IngestBatch {
        batch_id: Some(id.to_owned()),
        received_at_unix_ms: 1_700_000_000_000,
        releases: [(release(), delta)].into_iter().collect(),
    }
}

fn silence() -> Silence {
    Silence {
        id: "s-1".into(),
        matchers: Matchers::default(),
        starts_at_unix_ms: 0,
        ends_at_unix_ms: i64::MAX,
        comment: "freeze".into(),
        created_by: None,
        created_at_unix_ms: 0,
    }
}

/// Writes a data directory the way Bellwether did before schema versions: the same trees,
/// no `meta` tree in either database.
fn write_previous_format(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    {
        let store = SledStore::open(dir)?;
        store.record_deployment(
            &DeploymentRecord {
                release: release(),
                started_at_unix_ms: Some(1_700_000_000_000),
                commit: Some("abc123".into()),
                deploy_id: None,
                pipeline_url: None,
                notes: None,
                team: None,
                changes: None,
            },
            1_700_000_000_000,
        )?;
        store.apply(&batch("b:1", 5))?;
        let alerts = SledAlertStore::open(&dir.join("alerts"))?;
        alerts.put_silence(&silence())?;
        store.flush()?;
        alerts.flush()?;
    }
    for db_dir in [dir.to_path_buf(), dir.join("alerts")] {
        let db = open_raw(&db_dir)?;
        db.drop_tree(schema::META_TREE)?;
        db.flush()?;
        assert!(!db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == schema::META_TREE.as_bytes()));
    }
    Ok(())
}

/// The database in `dir` without Bellwether's checks, once the previous handle let go.
fn open_raw(dir: &Path) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new().path(dir).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[test]
fn a_directory_of_the_previous_format_reads_back_and_is_stamped() -> TestResult {
    let dir = tempfile::tempdir()?;
    write_previous_format(dir.path())?;
    {
        let store = SledStore::open(dir.path())?;
        let deployment = store.deployment(&release())?.ok_or("no deployment")?;
        assert_eq!(deployment.commit.as_deref(), Some("abc123"));
        assert_eq!(store.totals(&release())?.log_records, 5);
        assert_eq!(store.apply(&batch("b:1", 5))?, ApplyOutcome::Duplicate);
        let alerts = SledAlertStore::open(&dir.path().join("alerts"))?.gated(WriteGate::new());
        assert_eq!(alerts.silences()?, vec![silence()]);
        assert_eq!(schema::stamped_version(store.db())?, Some(SCHEMA_VERSION));
        assert_eq!(schema::stamped_version(alerts.db())?, Some(SCHEMA_VERSION));
    }
    // The stamp is durable.
    let db = open_raw(dir.path())?;
    assert_eq!(schema::stamped_version(&db)?, Some(SCHEMA_VERSION));
    Ok(())
}

#[test]
fn a_directory_of_a_newer_schema_is_refused_naming_both_versions() -> TestResult {
    let dir = tempfile::tempdir()?;
    write_previous_format(dir.path())?;
    let newer = SCHEMA_VERSION + 1;
    {
        let db = open_raw(dir.path())?;
        schema::stamp(&db, newer)?;
        db.flush()?;
    }
    // Opening waits for the lock the raw handle above held.
    let error = SledStore::open(dir.path())
        .err()
        .ok_or("a newer schema was opened")?;
    assert!(
        matches!(error, StoreError::NewerSchema { found, supported, .. }
            if found == newer && supported == SCHEMA_VERSION),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&format!("schema version {newer}"))
            && text.contains(&format!("newer than {SCHEMA_VERSION}")),
        "{text}"
    );
    // Refused, not rewritten: the stamp is still the newer one.
    let db = open_raw(dir.path())?;
    assert_eq!(schema::stamped_version(&db)?, Some(newer));
    Ok(())
}

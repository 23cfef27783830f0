use super::*;
use crate::ReleaseDelta;
use bellwether_model::release::{ResourceIdentity, Source};

fn batch(id: Option<&str>, release: &ReleaseKey, start: i64, logs: u64) -> IngestBatch {
    let mut delta = ReleaseDelta {
        identity: ResourceIdentity {
            commit: Some("abc123".into()),
            deploy_id: None,
            team: Some("payments".into()),
        },
        ..ReleaseDelta::default()
    };
    delta.buckets.insert(
        start,
        Counts {
            log_records: logs,
            error_logs: 1,
            ..Counts::default()
        },
    );
    IngestBatch {
        batch_id: id.map(str::to_owned),
        received_at_unix_ms: 1_700_000_000_123,
        releases: [(release.clone(), delta)].into_iter().collect(),
    }
}

#[test]
fn batches_apply_once_and_detect_deployments() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let store = SledStore::open(dir.path())?;
    let release = ReleaseKey::new("api", "prod", "1.0");
    let b = batch(Some("i:1"), &release, 1_700_000_000_000, 5);
    assert_eq!(store.apply(&b)?, ApplyOutcome::Applied);
    assert_eq!(store.apply(&b)?, ApplyOutcome::Duplicate);
    assert_eq!(
        store.apply(&batch(None, &release, 1_700_000_010_000, 2))?,
        ApplyOutcome::Applied
    );

    let totals = store.totals(&release)?;
    assert_eq!((totals.log_records, totals.error_logs), (7, 2));
    let buckets = store.buckets(&release, 0..i64::MAX)?;
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[0].0, 1_700_000_000_000);
    assert_eq!(
        store.buckets(&release, 1_700_000_010_000..i64::MAX)?.len(),
        1
    );

    let deployment = store
        .deployment(&release)?
        .ok_or(StoreError::Corrupt("none".into()))?;
    assert_eq!(deployment.source, Source::Detected);
    assert_eq!(deployment.started_at_unix_ms, 1_700_000_000_123);
    assert_eq!(deployment.commit.as_deref(), Some("abc123"));
    assert_eq!(deployment.team.as_deref(), Some("payments"));
    Ok(())
}

#[test]
fn recording_keeps_source_recorded_and_fills_from_telemetry() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let store = SledStore::open(dir.path())?;
    let release = ReleaseKey::new("api", "prod", "2.0");
    let record = DeploymentRecord {
        release: release.clone(),
        notes: Some("first".into()),
        ..DeploymentRecord::default()
    };
    let first = store.record_deployment(&record, 42)?;
    assert_eq!(
        (first.started_at_unix_ms, first.source),
        (42, Source::Recorded)
    );

    store.apply(&batch(Some("b"), &release, 0, 1))?;
    let filled = store
        .deployment(&release)?
        .ok_or(StoreError::Corrupt("none".into()))?;
    assert_eq!(filled.commit.as_deref(), Some("abc123"));
    assert_eq!(filled.source, Source::Recorded);
    assert_eq!(filled.started_at_unix_ms, 42);

    let again = DeploymentRecord {
        release: release.clone(),
        commit: Some("def456".into()),
        ..DeploymentRecord::default()
    };
    let updated = store.record_deployment(&again, 99)?;
    assert_eq!(updated.commit.as_deref(), Some("def456"));
    assert_eq!(updated.notes.as_deref(), Some("first"));
    assert_eq!(updated.started_at_unix_ms, 42);

    let other = ReleaseKey::new("api2", "prod", "1");
    store.record_deployment(
        &DeploymentRecord {
            release: other,
            ..DeploymentRecord::default()
        },
        1,
    )?;
    let filter = DeploymentFilter {
        service: Some("api".into()),
        ..DeploymentFilter::default()
    };
    assert_eq!(store.deployments(&filter)?.len(), 1);
    assert_eq!(store.deployments(&DeploymentFilter::default())?.len(), 2);
    Ok(())
}

#[test]
fn prune_forgets_old_batch_ids() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let store = SledStore::open(dir.path())?;
    let release = ReleaseKey::new("api", "prod", "1");
    store.apply(&batch(Some("old"), &release, 0, 1))?;
    assert_eq!(store.prune_batches(1_700_000_000_000)?, 0);
    assert_eq!(store.prune_batches(i64::MAX)?, 1);
    assert_eq!(
        store.apply(&batch(Some("old"), &release, 0, 1))?,
        ApplyOutcome::Applied
    );
    Ok(())
}

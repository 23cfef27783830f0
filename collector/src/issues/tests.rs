use std::collections::BTreeMap;

use super::classify::DEPLOY_CLOCK_SLACK_MS;
use super::*;
use bellwether_model::issue::{
    IssueDelta, Occurrence, MAX_FINGERPRINTS_PER_RELEASE, OTHER_FINGERPRINT,
};
use bellwether_model::issue::{IssueSample, ReleaseIssue};
use bellwether_model::release::{Deployment, DeploymentRecord, ReleaseKey, Source};
use bellwether_store::{IngestBatch, ReleaseDelta, ReleaseStore, SledStore, StoreError};

const DAY: i64 = 24 * 3600 * 1000;
const T0: i64 = 1_700_000_000_000;

fn deployment(environment: &str, version: &str, started: i64) -> Deployment {
    Deployment {
        release: ReleaseKey::new("api", environment, version),
        started_at_unix_ms: started,
        commit: None,
        deploy_id: None,
        pipeline_url: None,
        notes: None,
        team: None,
        source: Source::Recorded,
        changes: None,
    }
}

fn issue(fingerprint: &str, first: i64, last: i64) -> ReleaseIssue {
    ReleaseIssue {
        fingerprint: fingerprint.into(),
        count: 1,
        first_seen_unix_ms: first,
        last_seen_unix_ms: last,
        ..ReleaseIssue::default()
    }
}

fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn lookback_is_five_releases_or_fourteen_days_newest_first() {
    let now = T0 + 100 * DAY;
    let mut all: Vec<Deployment> = (0..10)
        .map(|i| deployment("prod", &format!("v{i}"), now - (10 - i) * 2 * DAY))
        .collect();
    // v0..v9 started 20, 18, …, 2 days before; plus noise that never counts.
    all.push(deployment("staging", "s1", now - DAY));
    all.push(deployment("prod", "later", now + DAY));
    let current = deployment("prod", "v10", now);
    all.push(current.clone());
    let versions: Vec<&str> = lookback(&current, &all)
        .iter()
        .map(|d| d.release.version.as_str())
        .collect();
    // Within 14 days: v3 (14 days) … v9 (2 days), newest first; more than five.
    assert_eq!(versions, ["v9", "v8", "v7", "v6", "v5", "v4", "v3"]);

    // Sparse deploys: the last five count however old they are.
    let sparse: Vec<Deployment> = (0..8)
        .map(|i| deployment("prod", &format!("v{i}"), now - (8 - i) * 30 * DAY))
        .collect();
    let versions: Vec<String> = lookback(&current, &sparse)
        .iter()
        .map(|d| d.release.version.clone())
        .collect();
    assert_eq!(versions, ["v7", "v6", "v5", "v4", "v3"]);

    // Busy deploys: bounded.
    let busy: Vec<Deployment> = (0..200)
        .map(|i| deployment("prod", &format!("b{i}"), now - 1 - i * 60_000))
        .collect();
    assert_eq!(lookback(&current, &busy).len(), MAX_LOOKBACK_RELEASES);
}

#[test]
fn new_regressed_existing() {
    let deployed = T0;
    let history = History {
        previous: set(&["a"]),
        recent: set(&["a", "b"]),
    };
    let after = |fp: &str| issue(fp, deployed + 1_000, deployed + 2_000);
    assert_eq!(
        classify_one(&after("a"), deployed, &history),
        IssueStatus::Existing
    );
    assert_eq!(
        classify_one(&after("b"), deployed, &history),
        IssueStatus::Regressed
    );
    assert_eq!(
        classify_one(&after("c"), deployed, &history),
        IssueStatus::New
    );

    // Re-deployed release: its own occurrences from before the deploy are history.
    let old = deployed - 3 * DAY;
    let back = issue("d", old, deployed + 5_000);
    assert_eq!(
        classify_one(&back, deployed, &history),
        IssueStatus::Regressed
    );
    let not_back = issue("d", old, old + 1_000);
    assert_eq!(
        classify_one(&not_back, deployed, &history),
        IssueStatus::Existing
    );

    // Record clocks a little behind the deployment's start do not make an issue old.
    let skewed = issue("e", deployed - DEPLOY_CLOCK_SLACK_MS / 2, deployed + 1);
    assert_eq!(classify_one(&skewed, deployed, &history), IssueStatus::New);
}

fn store() -> Result<(tempfile::TempDir, SledStore), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let store = SledStore::open(dir.path())?;
    Ok((dir, store))
}

fn record(store: &SledStore, version: &str, started: i64) -> Result<Deployment, StoreError> {
    let record = DeploymentRecord {
        release: ReleaseKey::new("api", "prod", version),
        started_at_unix_ms: Some(started),
        ..DeploymentRecord::default()
    };
    store.record_deployment(&record, started)
}

/// Stores `count` errors of each fingerprint in `version` at `at`, from instance `i-<n>`.
fn errors(
    store: &SledStore,
    version: &str,
    at: i64,
    fingerprints: &[(&str, u64)],
) -> Result<(), StoreError> {
    let mut delta = ReleaseDelta::default();
    for (fingerprint, count) in fingerprints {
        let mut issue = IssueDelta::new(&format!("Error {fingerprint}"), "E");
        for n in 0..*count {
            let instance = format!("i-{}", n % 3);
            let occurrence = Occurrence {
                bucket_start_unix_ms: bellwether_model::release::bucket_start(at),
                unix_ms: at,
                instance: &instance,
            };
            issue.record(&occurrence, || IssueSample {
                message: format!("boom {n}"),
                trace_id: format!("{n:032x}"),
                ..IssueSample::default()
            });
        }
        delta.issues.insert((*fingerprint).to_owned(), issue);
    }
    let batch = IngestBatch {
        batch_id: None,
        received_at_unix_ms: at,
        releases: BTreeMap::from([(ReleaseKey::new("api", "prod", version), delta)]),
    };
    store.apply(&batch).map(drop)
}

fn statuses(summaries: &[IssueSummary]) -> Vec<(String, &'static str, u64)> {
    summaries
        .iter()
        .map(|s| (s.fingerprint.clone(), s.status.as_str(), s.count))
        .collect()
}

#[test]
fn classify_reads_history_from_the_store() -> Result<(), StoreError> {
    let (_dir, store) = store()?;
    record(&store, "1", T0)?;
    errors(&store, "1", T0 + 1_000, &[("a", 2), ("old", 1)])?;
    record(&store, "2", T0 + DAY)?;
    errors(&store, "2", T0 + DAY + 1_000, &[("a", 1)])?;
    let three = record(&store, "3", T0 + 2 * DAY)?;
    errors(
        &store,
        "3",
        T0 + 2 * DAY + 1_000,
        &[("a", 3), ("old", 1), ("fresh", 2), ("fresh2", 5)],
    )?;
    let summaries = classify(&store, &three)?;
    assert_eq!(
        statuses(&summaries),
        [
            ("fresh2".to_owned(), "new", 5),
            ("fresh".to_owned(), "new", 2),
            ("old".to_owned(), "regressed", 1),
            ("a".to_owned(), "existing", 3),
        ]
    );
    let fresh = &summaries[1];
    assert_eq!(fresh.title, "Error fresh");
    assert_eq!(fresh.exception_type, "E");
    assert_eq!(fresh.first_seen.version, "3");
    assert_eq!(fresh.instances, set(&["i-0", "i-1"]));
    let old = &summaries[2];
    assert_eq!(old.first_seen.version, "1", "first seen in the service");
    assert_eq!(old.first_seen.unix_ms, T0 + 1_000);

    // An explicit baseline older than the lookback still counts as history.
    let mut later = Vec::new();
    for i in 4..20 {
        later.push(record(&store, &i.to_string(), T0 + 20 * DAY + i * DAY)?);
    }
    let last = later
        .last()
        .cloned()
        .ok_or(StoreError::Corrupt("none".into()))?;
    errors(&store, "19", last.started_at_unix_ms + 1_000, &[("a", 1)])?;
    let alone = classify(&store, &last)?;
    assert_eq!(
        statuses(&alone),
        [("a".to_owned(), "new", 1)],
        "v1–v3 out of reach"
    );
    let with_baseline = classify_against(&store, &last, Some(&three.release))?;
    assert_eq!(statuses(&with_baseline), [("a".to_owned(), "regressed", 1)]);
    Ok(())
}

#[test]
fn store_caps_fingerprints_per_release_under_other() -> Result<(), StoreError> {
    let (_dir, store) = store()?;
    let release = ReleaseKey::new("api", "prod", "1");
    let cap = MAX_FINGERPRINTS_PER_RELEASE as usize;
    let names: Vec<String> = (0..cap + 10).map(|i| format!("{i:016x}")).collect();
    // Two batches: the cap holds across batches, and known fingerprints keep counting.
    let first: Vec<(&str, u64)> = names[..cap - 5].iter().map(|n| (n.as_str(), 1)).collect();
    errors(&store, "1", T0, &first)?;
    let second: Vec<(&str, u64)> = names[cap - 10..].iter().map(|n| (n.as_str(), 1)).collect();
    errors(&store, "1", T0 + 10_000, &second)?;

    let counts = store.release_issue_counts(&release)?;
    assert_eq!(counts.len(), cap + 1, "the cap plus `other`");
    let other = counts.iter().find(|c| c.fingerprint == OTHER_FINGERPRINT);
    assert_eq!(other.map(|c| c.count), Some(10));
    let known_twice = counts.iter().find(|c| c.fingerprint == names[cap - 8]);
    assert_eq!(known_twice.map(|c| c.count), Some(2));
    let record = store.issue("api", OTHER_FINGERPRINT)?;
    assert_eq!(record.map(|r| r.count), Some(10));
    assert_eq!(
        store.fingerprint_bucket_counts(&release, OTHER_FINGERPRINT, 0..i64::MAX)?,
        [(T0 + 10_000, 10)]
    );
    Ok(())
}

#[test]
fn store_keeps_bounded_samples_instances_and_buckets() -> Result<(), StoreError> {
    let (_dir, store) = store()?;
    let release = ReleaseKey::new("api", "prod", "1");
    errors(&store, "1", T0, &[("f", 3)])?;
    errors(&store, "1", T0 + 20_000, &[("f", 4)])?;
    let samples = store.issue_samples(&release, "f")?;
    let messages: Vec<&str> = samples.iter().map(|s| s.message.as_str()).collect();
    assert_eq!(messages, ["boom 0", "boom 1", "boom 2", "boom 0", "boom 1"]);
    let issues = store.release_issues(&release)?;
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].count, 7);
    assert_eq!(issues[0].instances, set(&["i-0", "i-1", "i-2"]));
    assert_eq!(
        (issues[0].first_seen_unix_ms, issues[0].last_seen_unix_ms),
        (T0, T0 + 20_000)
    );
    assert_eq!(
        store.fingerprint_bucket_counts(&release, "f", 0..i64::MAX)?,
        [(T0, 3), (T0 + 20_000, 4)]
    );
    assert_eq!(
        store.fingerprint_bucket_counts(&release, "f", T0 + 10_000..i64::MAX)?,
        [(T0 + 20_000, 4)]
    );
    assert_eq!(store.release_fingerprints(&release)?, ["f"]);
    assert!(store
        .release_issues(&ReleaseKey::new("api", "prod", "10"))?
        .is_empty());
    Ok(())
}

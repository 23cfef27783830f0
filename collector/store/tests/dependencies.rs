//! Dependency calls in the sled store: summed per release, bucket and dependency, read
//! back by bucket range, at most `MAX_DEPENDENCIES` names per release (the rest count as
//! `other`), and kept across a reopen.

use std::collections::BTreeMap;

use bellwether_model::dependency::{DependencyCounts, MAX_DEPENDENCIES, OTHER};
use bellwether_model::release::ReleaseKey;
use bellwether_store::{IngestBatch, ReleaseDelta, ReleaseStore, SledStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BUCKET: i64 = 1_700_000_000_000;

fn counts(calls: u64, errors: u64) -> DependencyCounts {
    DependencyCounts {
        calls,
        errors,
        ..DependencyCounts::default()
    }
}

fn batch(release: &ReleaseKey, calls: &[(i64, &str, u64, u64)]) -> IngestBatch {
    let mut delta = ReleaseDelta::default();
    for &(start, name, calls, errors) in calls {
        delta
            .dependencies
            .entry(start)
            .or_default()
            .insert(name.to_owned(), counts(calls, errors));
    }
    IngestBatch {
        batch_id: None,
        received_at_unix_ms: BUCKET,
        releases: [(release.clone(), delta)].into_iter().collect(),
    }
}

fn totals(
    store: &SledStore,
    release: &ReleaseKey,
) -> Result<BTreeMap<String, (u64, u64)>, Box<dyn std::error::Error>> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for bucket in store.dependency_buckets(release, 0..i64::MAX)? {
        let entry = out.entry(bucket.dependency).or_default();
        entry.0 += bucket.counts.calls;
        entry.1 += bucket.counts.errors;
    }
    Ok(out)
}

#[test]
fn calls_add_up_per_bucket_and_read_back_by_range() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let api = ReleaseKey::new("checkout", "prod", "2.0");
    let other_release = ReleaseKey::new("checkout", "prod", "2.0.1");
    store.apply(&batch(
        &api,
        &[
            (BUCKET, "payments-api", 10, 1),
            (BUCKET + 10_000, "payments-api", 5, 0),
        ],
    ))?;
    store.apply(&batch(
        &api,
        &[(BUCKET, "payments-api", 3, 2), (BUCKET, "redis", 7, 0)],
    ))?;
    store.apply(&batch(
        &other_release,
        &[(BUCKET, "payments-api", 100, 100)],
    ))?;

    let first = store.dependency_buckets(&api, BUCKET..BUCKET + 10_000)?;
    let seen: Vec<_> = first
        .iter()
        .map(|b| {
            (
                b.bucket_start_unix_ms,
                b.dependency.as_str(),
                b.counts.calls,
                b.counts.errors,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(BUCKET, "payments-api", 13, 3), (BUCKET, "redis", 7, 0)]
    );
    assert_eq!(
        store
            .dependency_buckets(&api, BUCKET + 10_000..i64::MAX)?
            .len(),
        1
    );
    assert!(store.dependency_buckets(&api, BUCKET..BUCKET)?.is_empty());
    drop(store);

    let store = SledStore::open(dir.path())?;
    let expected: BTreeMap<String, (u64, u64)> = [
        ("payments-api".to_owned(), (18, 3)),
        ("redis".to_owned(), (7, 0)),
    ]
    .into_iter()
    .collect();
    assert_eq!(totals(&store, &api)?, expected);
    assert_eq!(
        totals(&store, &other_release)?.get("payments-api"),
        Some(&(100, 100))
    );
    Ok(())
}

#[test]
fn names_beyond_the_bound_count_as_other() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let api = ReleaseKey::new("checkout", "prod", "2.0");
    let names: Vec<String> = (0..MAX_DEPENDENCIES + 10)
        .map(|i| format!("host-{i:03}"))
        .collect();
    let calls: Vec<(i64, &str, u64, u64)> =
        names.iter().map(|n| (BUCKET, n.as_str(), 1, 0)).collect();
    store.apply(&batch(&api, &calls[..MAX_DEPENDENCIES - 5]))?;
    store.apply(&batch(&api, &calls[MAX_DEPENDENCIES - 5..]))?;
    // A name kept before still counts under its own name.
    store.apply(&batch(&api, &[(BUCKET, "host-000", 4, 1)]))?;

    let seen = totals(&store, &api)?;
    assert_eq!(seen.len(), MAX_DEPENDENCIES + 1, "{seen:?}");
    assert_eq!(seen.get(OTHER), Some(&(10, 0)));
    assert_eq!(seen.get("host-000"), Some(&(5, 1)));
    assert!(!seen.contains_key(&format!("host-{:03}", MAX_DEPENDENCIES)));
    let counted: u64 = seen.values().map(|(calls, _)| calls).sum();
    assert_eq!(counted, (MAX_DEPENDENCIES + 10) as u64 + 4, "no call lost");
    Ok(())
}

#[test]
fn flag_variants_are_kept_apart_and_bounded() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let api = ReleaseKey::new("checkout", "prod", "2.0");
    let mut delta = ReleaseDelta::default();
    let bucket = delta.flags.entry(BUCKET).or_default();
    for i in 0..bellwether_model::dependency::MAX_FLAG_VARIANTS + 3 {
        bucket.insert(format!("flag-{i:03}\0on"), counts(2, 1));
    }
    store.apply(&IngestBatch {
        batch_id: None,
        received_at_unix_ms: BUCKET,
        releases: [(api.clone(), delta)].into_iter().collect(),
    })?;
    let flags = store.flag_buckets(&api, 0..i64::MAX)?;
    assert_eq!(flags.len(), bellwether_model::dependency::MAX_FLAG_VARIANTS);
    assert_eq!(flags[0].dependency, "flag-000\0on");
    assert_eq!((flags[0].counts.calls, flags[0].counts.errors), (2, 1));
    // Dependencies and flags do not mix.
    assert!(store.dependency_buckets(&api, 0..i64::MAX)?.is_empty());
    Ok(())
}

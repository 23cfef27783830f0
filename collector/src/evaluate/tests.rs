//! The evaluator over a real sled store in a temporary directory.

use std::sync::Arc;
use std::time::Duration;

use crate::evaluate::settings::DetectionSettings;
use crate::evaluate::Evaluator;
use crate::lookup::ReleaseRef;
use bellwether_model::health::Verdict;
use bellwether_model::release::{bucket_start, Counts, DeploymentRecord, ReleaseKey, BUCKET_MS};
use bellwether_model::time::now_unix_ms;
use bellwether_store::verdicts::{SledVerdicts, VerdictStore};
use bellwether_store::{IngestBatch, ReleaseDelta, ReleaseStore, SledStore};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    verdicts: Arc<SledVerdicts>,
}

fn fixture() -> Result<Fixture, Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let verdicts = SledVerdicts::new(store.open_tree("verdicts")?);
    Ok(Fixture {
        _dir: dir,
        store: Arc::new(store),
        verdicts: Arc::new(verdicts),
    })
}

fn settings() -> DetectionSettings {
    let mut s = DetectionSettings::default();
    s.defaults.thresholds.min_duration = Duration::from_secs(30);
    s
}

impl Fixture {
    fn evaluator(&self) -> Evaluator {
        let store: Arc<dyn ReleaseStore> = self.store.clone();
        let verdicts: Arc<dyn VerdictStore> = self.verdicts.clone();
        Evaluator::new(store, verdicts, settings())
    }

    fn deploy(&self, version: &str, started: i64) -> TestResult {
        let record = DeploymentRecord {
            release: ReleaseKey::new("api", "prod", version),
            started_at_unix_ms: Some(started),
            ..DeploymentRecord::default()
        };
        self.store.record_deployment(&record, started)?;
        Ok(())
    }

    /// Log traffic of `version` in every bucket of [from, to): `logs` records, `errors`
    /// of them errors.
    fn traffic(&self, version: &str, from: i64, to: i64, logs: u64, errors: u64) -> TestResult {
        let mut delta = ReleaseDelta::default();
        let mut t = bucket_start(from);
        while t < to {
            delta.buckets.insert(
                t,
                Counts {
                    log_records: logs,
                    error_logs: errors,
                    errors,
                    ..Counts::default()
                },
            );
            t += BUCKET_MS;
        }
        let batch = IngestBatch {
            batch_id: None,
            received_at_unix_ms: to,
            releases: [(ReleaseKey::new("api", "prod", version), delta)]
                .into_iter()
                .collect(),
        };
        self.store.apply(&batch)?;
        Ok(())
    }
}

fn release(version: &str) -> ReleaseRef {
    ReleaseRef {
        service: "api".into(),
        environment: Some("prod".into()),
        version: version.into(),
    }
}

#[tokio::test]
async fn bad_cutover_is_unhealthy_and_the_next_release_skips_it_as_baseline() -> TestResult {
    let f = fixture()?;
    let now = now_unix_ms();
    let hour = 3_600_000;
    let deploy2 = now - 10 * 60_000;
    f.deploy("1", now - 3 * hour)?;
    f.traffic("1", deploy2 - hour, deploy2, 100, 1)?; // 1 %
    f.deploy("2", deploy2)?;
    f.traffic("2", deploy2, now, 100, 10)?; // 10 %
    let evaluator = f.evaluator();
    assert_eq!(
        evaluator.round().await?,
        1,
        "only the newest release is active"
    );
    let two = evaluator.health(release("2")).await?;
    assert_eq!(two.verdict, Verdict::Unhealthy, "{:#?}", two.evidence);
    assert_eq!(two.figures.method, "cutover");
    assert_eq!(two.figures.baseline_version.as_deref(), Some("1"));
    assert!(two.evidence.iter().any(|e| e.kind == "regression"));

    // v3 replaces v2 right away: its baseline is v1, not the unhealthy v2.
    let deploy3 = now - 60_000;
    f.deploy("3", deploy3)?;
    f.traffic("3", deploy3, now, 100, 1)?;
    let three = evaluator.health(release("3")).await?;
    assert_eq!(three.figures.baseline_version.as_deref(), Some("1"));
    assert!(three
        .evidence
        .iter()
        .any(|e| e.kind == "baseline_choice" && e.summary.contains("(2)")));
    Ok(())
}

#[tokio::test]
async fn canary_is_judged_concurrently_and_history_survives_a_restart() -> TestResult {
    let f = fixture()?;
    let now = now_unix_ms();
    let deploy2 = now - 5 * 60_000;
    f.deploy("1", now - 7_200_000)?;
    f.traffic("1", deploy2 - 3_600_000, now, 9_000, 90)?; // still serving
    f.deploy("2", deploy2)?;
    f.traffic("2", deploy2, now, 1_000, 10)?;
    let evaluator = f.evaluator();
    let two = evaluator.health(release("2")).await?;
    assert_eq!(two.figures.method, "concurrent");
    assert_eq!(two.verdict, Verdict::Healthy, "{:#?}", two.evidence);
    let revision = two.revision;
    assert!(revision >= 1);
    // The old release still serves traffic, so it is evaluated in rounds too.
    assert_eq!(evaluator.round().await?, 2);

    // Same evidence again: no new revision, and a long-poll times out with the same one.
    let again = evaluator
        .wait(release("2"), None, Duration::from_millis(200))
        .await?;
    assert_eq!(again.revision, revision);
    // A stale `since` returns at once.
    let at_once = evaluator
        .wait(release("2"), Some(revision + 100), Duration::from_secs(60))
        .await?;
    assert_eq!(at_once.revision, revision);

    let restarted = f.evaluator();
    let timeline = restarted.timeline(release("2")).await?.1;
    assert_eq!(
        timeline.iter().map(|e| e.verdict).collect::<Vec<_>>(),
        vec![Verdict::Healthy]
    );
    let after = restarted.health(release("2")).await?;
    assert_eq!(
        after.revision, revision,
        "revision continues after a restart"
    );
    Ok(())
}

#[tokio::test]
async fn a_long_poll_wakes_when_the_verdict_changes() -> TestResult {
    let f = fixture()?;
    let now = now_unix_ms();
    let deploy2 = now - 20_000;
    f.deploy("1", now - 7_200_000)?;
    f.traffic("1", deploy2 - 3_600_000, deploy2, 1_000, 10)?;
    f.deploy("2", deploy2)?;
    f.traffic("2", deploy2, now, 10, 0)?;
    let evaluator = f.evaluator();
    let first = evaluator.health(release("2")).await?;
    assert_eq!(first.verdict, Verdict::Pending);
    let seen = first.revision;
    let waiter = {
        let evaluator = evaluator.clone();
        tokio::spawn(async move {
            evaluator
                .wait(release("2"), Some(seen), Duration::from_secs(30))
                .await
        })
    };
    f.traffic("2", now - 10_000, now, 1_000, 300)?;
    evaluator.round().await?;
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter).await???;
    assert_eq!(woken.verdict, Verdict::Unhealthy);
    assert!(woken.revision > first.revision);
    Ok(())
}

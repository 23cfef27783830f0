//! Which release a deployment is compared with, and how.
//!
//! The baseline is the release that served the environment before the deployment — or,
//! if that one was itself judged unhealthy, the most recent earlier one that was not.
//! While the baseline still serves traffic next to the new release (canary, rolling,
//! blue-green) the comparison is concurrent (case B); once it has stopped, a cut-over
//! (case A) against its window before the deploy.

use std::time::Duration;

use bellwether_detect::Sample;
use bellwether_model::health::Verdict;
use bellwether_model::release::{bucket_start, Deployment, ReleaseKey, BUCKET_MS};

use crate::evaluate::analysis::Method;

/// The baseline counts as still serving while it had traffic this recently.
pub const CONCURRENT_RECENCY: Duration = Duration::from_secs(60);
/// A superseded release stays under evaluation while it had traffic this recently.
pub const TRAFFIC_RECENCY: Duration = Duration::from_secs(5 * 60);

/// The chosen baseline and, when it is not the immediate predecessor, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaselineChoice {
    pub deployment: Deployment,
    pub note: Option<String>,
}

/// Earlier deployments of the same service and environment, newest first.
pub fn predecessors<'a>(
    deployment: &Deployment,
    same_env: &'a [Deployment],
) -> Vec<&'a Deployment> {
    let mut earlier: Vec<&Deployment> = same_env
        .iter()
        .filter(|d| {
            d.release != deployment.release
                && d.release.service == deployment.release.service
                && d.release.environment == deployment.release.environment
                && d.started_at_unix_ms < deployment.started_at_unix_ms
        })
        .collect();
    earlier.sort_by(|a, b| {
        b.started_at_unix_ms
            .cmp(&a.started_at_unix_ms)
            .then_with(|| a.release.cmp(&b.release))
    });
    earlier
}

/// Picks the baseline of `deployment` among `same_env`; `latest_verdict` tells how each
/// earlier release was last judged.
pub fn choose_baseline(
    deployment: &Deployment,
    same_env: &[Deployment],
    latest_verdict: impl Fn(&ReleaseKey) -> Option<Verdict>,
) -> Option<BaselineChoice> {
    let earlier = predecessors(deployment, same_env);
    let first = *earlier.first()?;
    let mut skipped = Vec::new();
    for candidate in &earlier {
        if latest_verdict(&candidate.release) == Some(Verdict::Unhealthy) {
            skipped.push(candidate.release.version.as_str());
            continue;
        }
        let note = (!skipped.is_empty()).then(|| {
            format!(
                "baseline is {}: the releases after it ({}) were judged unhealthy",
                candidate.release.version,
                skipped.join(", ")
            )
        });
        return Some(BaselineChoice {
            deployment: (*candidate).clone(),
            note,
        });
    }
    Some(BaselineChoice {
        deployment: first.clone(),
        note: Some(format!(
            "every earlier release was judged unhealthy; comparing with the previous one, {}",
            first.release.version
        )),
    })
}

/// Concurrent while the baseline had exposure in a bucket after the deploy's own bucket
/// and within [`CONCURRENT_RECENCY`] of `now`; otherwise a cut-over.
pub fn choose_method(
    baseline_since: &[(i64, Sample)],
    deploy_unix_ms: i64,
    now_unix_ms: i64,
) -> Method {
    let after_deploy = bucket_start(deploy_unix_ms) + BUCKET_MS;
    let recent = now_unix_ms - CONCURRENT_RECENCY.as_millis() as i64 - BUCKET_MS;
    let serving = baseline_since
        .iter()
        .any(|(start, s)| *start >= after_deploy && *start >= recent && s.exposure > 0);
    if serving {
        Method::Concurrent
    } else {
        Method::Cutover
    }
}

/// Whether a deployment is evaluated in the background: started within `active_window`,
/// and either the newest of its environment or still serving traffic.
pub fn is_active(
    deployment: &Deployment,
    newest_in_env: bool,
    recent_traffic: bool,
    now_unix_ms: i64,
    active_window: Duration,
) -> bool {
    let age = now_unix_ms.saturating_sub(deployment.started_at_unix_ms);
    age <= active_window.as_millis() as i64 && (newest_in_env || recent_traffic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_model::release::Source;
    use std::collections::HashMap;

    fn deployment(version: &str, started: i64) -> Deployment {
        Deployment {
            release: ReleaseKey::new("api", "prod", version),
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

    #[test]
    fn baseline_is_the_previous_release_skipping_unhealthy_ones() {
        let all = vec![
            deployment("1", 1_000),
            deployment("2", 2_000),
            deployment("3", 3_000),
            deployment("4", 4_000),
        ];
        let mut other_env = deployment("9", 3_500);
        other_env.release.environment = "staging".into();
        let mut with_other = all.clone();
        with_other.push(other_env);
        let verdicts: HashMap<String, Verdict> = HashMap::new();
        let lookup = |v: &HashMap<String, Verdict>| {
            let v = v.clone();
            move |k: &ReleaseKey| v.get(&k.version).copied()
        };
        let choice = choose_baseline(&all[3], &with_other, lookup(&verdicts));
        assert_eq!(
            choice.map(|c| c.deployment.release.version),
            Some("3".into())
        );

        let verdicts: HashMap<String, Verdict> = [
            ("3".to_string(), Verdict::Unhealthy),
            ("2".to_string(), Verdict::Degraded),
        ]
        .into_iter()
        .collect();
        let choice = choose_baseline(&all[3], &all, lookup(&verdicts));
        let choice = choice.as_ref();
        assert_eq!(
            choice.map(|c| c.deployment.release.version.as_str()),
            Some("2"),
            "degraded is not skipped"
        );
        assert!(choice
            .and_then(|c| c.note.as_deref())
            .is_some_and(|n| n.contains("(3)")));

        let all_bad: HashMap<String, Verdict> = ["1", "2", "3"]
            .iter()
            .map(|v| (v.to_string(), Verdict::Unhealthy))
            .collect();
        let choice = choose_baseline(&all[3], &all, lookup(&all_bad));
        assert_eq!(
            choice
                .as_ref()
                .map(|c| c.deployment.release.version.as_str()),
            Some("3")
        );
        assert!(choice.and_then(|c| c.note).is_some());

        assert_eq!(
            choose_baseline(&all[0], &all, lookup(&verdicts)),
            None,
            "first release"
        );
    }

    #[test]
    fn canary_while_the_baseline_serves_cutover_after() {
        let deploy = 1_000_000; // bucket 1_000_000
        let now = deploy + 300_000;
        let s = |e| Sample {
            exposure: e,
            errors: 0,
        };
        // Traffic only in the deploy's own bucket: the cut-over was immediate.
        assert_eq!(
            choose_method(&[(1_000_000, s(50))], deploy, now),
            Method::Cutover
        );
        // Traffic a minute after the deploy, but long ago: the cut-over finished.
        assert_eq!(
            choose_method(&[(1_060_000, s(50))], deploy, now),
            Method::Cutover
        );
        // Traffic in the last minute: still serving.
        assert_eq!(
            choose_method(&[(now - 20_000, s(50))], deploy, now),
            Method::Concurrent
        );
        assert_eq!(
            choose_method(&[(now - 20_000, s(0))], deploy, now),
            Method::Cutover
        );
        assert_eq!(choose_method(&[], deploy, now), Method::Cutover);
    }

    #[test]
    fn active_means_recent_and_newest_or_serving() {
        let d = deployment("1", 0);
        let day = Duration::from_secs(86_400);
        assert!(is_active(&d, true, false, 1_000, day));
        assert!(is_active(&d, false, true, 1_000, day));
        assert!(!is_active(&d, false, false, 1_000, day));
        assert!(!is_active(&d, true, true, 86_400_001, day));
    }
}

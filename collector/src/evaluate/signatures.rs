//! New and regressed issues (DETECTION.md case C): each fingerprint the release shows
//! that its baseline did not is tested alone against the baseline's exposure, at a
//! Bonferroni-split α′, and flagged once chance is ruled out and it was seen on ≥ 2
//! instances or crossed in ≥ 2 consecutive evaluations. The streak per fingerprint is
//! kept by the caller ([`Streaks`]) and advanced only by scheduled evaluation rounds, so
//! a client asking often cannot shorten it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use bellwether_detect::two_sample::log_e_under_floor;
use bellwether_detect::{assess_new_signature, Thresholds};
use bellwether_model::health::Evidence;

/// How an issue relates to earlier releases (from ingest's classification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueClass {
    /// Never seen in the baseline nor in recent releases.
    New,
    /// Seen before, absent from the baseline, back in this release.
    Regressed,
    /// Also seen in the baseline.
    Existing,
}

impl IssueClass {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueClass::New => "new",
            IssueClass::Regressed => "regressed",
            IssueClass::Existing => "existing",
        }
    }
}

/// One fingerprint of the new release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueObservation {
    pub fingerprint: String,
    pub title: String,
    pub class: IssueClass,
    /// Errors since the deploy (after de-duplication per trace).
    pub count: u64,
    /// Distinct instances that reported it.
    pub instances: u32,
    /// One example message, if kept.
    pub sample: Option<String>,
}

/// Consecutive scheduled evaluations each fingerprint has crossed its threshold in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Streaks(HashMap<String, u32>);

impl Streaks {
    pub fn get(&self) -> &HashMap<String, u32> {
        &self.0
    }

    /// After a scheduled evaluation: crossed fingerprints extend their streak, all others
    /// drop back to zero (and are forgotten).
    pub fn advance(&mut self, crossed: &[String]) {
        let mut next = HashMap::with_capacity(crossed.len());
        for fingerprint in crossed {
            let streak = self.0.get(fingerprint).copied().unwrap_or(0);
            next.insert(fingerprint.clone(), streak.saturating_add(1));
        }
        self.0 = next;
    }
}

/// Result of the issue check.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IssueFindings {
    pub flagged: Vec<String>,
    pub crossed: Vec<String>,
    pub evidence: Vec<Evidence>,
}

/// A new or regressed fingerprint seen this often holds healthy back ([`log_rare_e`]).
pub const HOLD_COUNT: u64 = 2;

/// The least evidence that a new or regressed fingerprint is rarer than `min_rate`: ln of
/// the smallest e-value of "its rate is at least `min_rate`" (the under-the-floor
/// test, a test martingale for that null) among the candidates not flagged yet that
/// were seen at least [`HOLD_COUNT`] times, with how many there are; None without
/// such candidates.
///
/// Healthy waits until each is shown rarer (e-value ≥ 1/β): a new signature at or above
/// `min_rate` seen twice then passes the gate with probability at most β before its
/// own test (which needs `min_errors` of them) flags it. A single stray error does not
/// hold a release back.
pub fn log_rare_e(
    issues: &[IssueObservation],
    flagged: &[String],
    new_exposure: u64,
    min_rate: f64,
) -> Option<(f64, usize)> {
    let logs: Vec<f64> = issues
        .iter()
        .filter(|i| i.class != IssueClass::Existing && i.count >= HOLD_COUNT)
        .filter(|i| !flagged.contains(&i.fingerprint))
        .map(|i| log_e_under_floor(i.count as f64, new_exposure as f64, min_rate, 1.0))
        .collect();
    let least = logs.iter().copied().fold(f64::INFINITY, f64::min);
    (!logs.is_empty()).then_some((least, logs.len()))
}

/// Most flagged issues listed one by one in the evidence.
const MAX_LISTED: usize = 10;

/// Tests every new or regressed fingerprint of the release.
pub fn judge_issues(
    issues: &[IssueObservation],
    new_exposure: u64,
    baseline_exposure: u64,
    streaks: &HashMap<String, u32>,
    t: &Thresholds,
    min_rate: f64,
) -> IssueFindings {
    let candidates: Vec<&IssueObservation> = issues
        .iter()
        .filter(|i| i.class != IssueClass::Existing && i.count > 0)
        .collect();
    let mut out = IssueFindings::default();
    let mut waiting = 0usize;
    let mut overflow = 0;
    for issue in &candidates {
        let prior = streaks.get(&issue.fingerprint).copied().unwrap_or(0);
        let s = assess_new_signature(
            issue.count,
            new_exposure,
            baseline_exposure,
            candidates.len() as u64,
            u64::from(issue.instances),
            prior,
            t.rho,
            t.min_errors,
            min_rate,
        );
        overflow = s.overflow;
        if s.crossed {
            out.crossed.push(issue.fingerprint.clone());
        }
        if !s.flagged {
            waiting += 1;
            continue;
        }
        out.flagged.push(issue.fingerprint.clone());
        if out.flagged.len() > MAX_LISTED {
            continue;
        }
        let rate = issue.count as f64 / new_exposure.max(1) as f64;
        out.evidence.push(
            Evidence::new(
                format!("{}_issue", issue.class.as_str()),
                format!(
                    "{} issue {}: {} errors ({:.3}% of exposure) on {} instance(s), never seen \
                     in {} baseline exposure [{}]",
                    issue.class.as_str(),
                    issue.title,
                    issue.count,
                    rate * 100.0,
                    issue.instances,
                    baseline_exposure,
                    issue.fingerprint
                ),
            )
            .with("fingerprint", &issue.fingerprint)
            .with("title", &issue.title)
            .with("class", issue.class)
            .with("count", issue.count)
            .with("instances", issue.instances)
            .with("rate", rate)
            .with("sample", &issue.sample)
            .with("log_e_value", s.log_m)
            .with("log_threshold", s.log_threshold)
            .with("alpha", s.alpha)
            .with("consecutive_evaluations", prior.saturating_add(1)),
        );
    }
    if out.flagged.len() > MAX_LISTED {
        out.evidence.push(
            Evidence::new(
                "more_issues",
                format!("{} more flagged issues", out.flagged.len() - MAX_LISTED),
            )
            .with("count", out.flagged.len() - MAX_LISTED),
        );
    }
    if waiting > 0 {
        out.evidence.push(
            Evidence::new(
                "candidate_issues",
                format!(
                    "{waiting} new or regressed fingerprint(s) not (yet) significant or not yet \
                     confirmed on 2 instances or 2 evaluations{}",
                    if overflow > 0 {
                        format!("; {overflow} beyond the Bonferroni cap of 50")
                    } else {
                        String::new()
                    }
                ),
            )
            .with("count", waiting),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(fingerprint: &str, class: IssueClass, count: u64, instances: u32) -> IssueObservation {
        IssueObservation {
            fingerprint: fingerprint.into(),
            title: format!("Error {fingerprint}"),
            class,
            count,
            instances,
            sample: Some("boom".into()),
        }
    }

    #[test]
    fn one_instance_needs_two_consecutive_rounds() {
        let t = Thresholds::default();
        let issues = vec![issue("aa", IssueClass::New, 30, 1)];
        let mut streaks = Streaks::default();
        let first = judge_issues(&issues, 2_000, 100_000, streaks.get(), &t, 0.0001);
        assert_eq!(first.crossed, vec!["aa".to_string()]);
        assert!(first.flagged.is_empty());
        assert!(first.evidence.iter().any(|e| e.kind == "candidate_issues"));
        streaks.advance(&first.crossed);
        let second = judge_issues(&issues, 2_000, 100_000, streaks.get(), &t, 0.0001);
        assert_eq!(second.flagged, vec!["aa".to_string()]);
        let item = &second.evidence[0];
        assert_eq!(item.kind, "new_issue");
        assert_eq!(item.details["fingerprint"], "aa");
        assert_eq!(item.details["count"], 30);
        // A round where it did not cross resets the streak.
        streaks.advance(&[]);
        assert!(streaks.get().is_empty());
        let again = judge_issues(&issues, 2_000, 100_000, streaks.get(), &t, 0.0001);
        assert!(again.flagged.is_empty());
    }

    #[test]
    fn two_instances_flag_at_once_and_existing_issues_never() {
        let t = Thresholds::default();
        let issues = vec![
            issue("aa", IssueClass::Regressed, 30, 2),
            issue("bb", IssueClass::Existing, 500, 3),
        ];
        let f = judge_issues(&issues, 2_000, 100_000, &HashMap::new(), &t, 0.0001);
        assert_eq!(f.flagged, vec!["aa".to_string()]);
        assert_eq!(f.evidence[0].kind, "regressed_issue");
        // Without baseline exposure nothing can be claimed.
        let f = judge_issues(&issues, 2_000, 0, &HashMap::new(), &t, 0.0001);
        assert!(f.flagged.is_empty() && f.crossed.is_empty());
        // Too few errors: below min_errors.
        let few = vec![issue("cc", IssueClass::New, 3, 2)];
        assert!(
            judge_issues(&few, 2_000, 1_000_000, &HashMap::new(), &t, 0.0)
                .flagged
                .is_empty()
        );
    }

    #[test]
    fn a_new_signature_at_the_count_floor_holds_healthy_back_until_shown_rare() {
        let new = issue("n", IssueClass::New, 10, 1);
        let stray = issue("s", IssueClass::New, 1, 1);
        let old = issue("o", IssueClass::Existing, 500, 4);
        // 10 in 10 000 (0.1 %) is no evidence of being rarer than 0.01 %.
        let (log_e, n) = log_rare_e(
            &[new.clone(), stray.clone(), old.clone()],
            &[],
            10_000,
            1e-4,
        )
        .unwrap();
        assert_eq!(
            n, 1,
            "the stray and the existing issue are not held against it"
        );
        assert!(log_e < 20f64.ln());
        // 10 in 10 million is.
        let (log_e, _) = log_rare_e(std::slice::from_ref(&new), &[], 10_000_000, 1e-4).unwrap();
        assert!(log_e > 20f64.ln());
        assert_eq!(log_rare_e(&[new], &["n".to_owned()], 10_000, 1e-4), None);
        assert_eq!(log_rare_e(&[stray, old], &[], 10_000, 1e-4), None);
    }
}

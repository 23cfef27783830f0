//! A release's issues as the API shows them: classified, with samples.

use crate::error::Error;
use crate::lookup::{resolve, ReleaseRef};
use bellwether_model::issue::IssueSample;
use bellwether_model::release::Deployment;
use bellwether_store::ReleaseStore;

use super::{classify, IssueSummary};

/// The issues of one release, in [`classify`]'s order, each with its samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseIssues {
    pub deployment: Deployment,
    pub issues: Vec<(IssueSummary, Vec<IssueSample>)>,
}

/// Resolves `release` like the stats endpoint does (an omitted environment must be
/// unambiguous) and reads its issues.
pub fn release_issues(
    store: &dyn ReleaseStore,
    release: &ReleaseRef,
) -> Result<ReleaseIssues, Error> {
    let deployment = resolve(store, release)?;
    let mut issues = Vec::new();
    for summary in classify(store, &deployment)? {
        let samples = store.issue_samples(&deployment.release, &summary.fingerprint)?;
        issues.push((summary, samples));
    }
    Ok(ReleaseIssues { deployment, issues })
}

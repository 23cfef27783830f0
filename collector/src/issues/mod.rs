//! Issues of a release: its error fingerprints, each classified against the service's
//! recent history in the same environment.
//!
//! - **new**: not seen in the baseline nor in the recent releases — the last
//!   [`LOOKBACK_RELEASES`] deployments before this one, and any deployment started within
//!   [`LOOKBACK_MS`] before it (at most [`MAX_LOOKBACK_RELEASES`] in all), newest first by
//!   start time;
//! - **regressed**: seen in that history (or in this same release before it was deployed
//!   again), absent from the previous release, and back now;
//! - **existing**: the previous release had it too.
//!
//! [`classify_one`] and [`lookback`] are pure; [`classify`] reads the store;
//! [`release_issues`] adds samples for the API. The store
//! keeps at most `MAX_FINGERPRINTS_PER_RELEASE` fingerprints per release and counts the
//! rest under `other` (see [`bellwether_model::issue`]); `other` is classified like any
//! fingerprint.

mod classify;
mod report;

#[cfg(test)]
mod tests;

pub use classify::{classify, classify_against, classify_one, lookback, History};
pub use report::{release_issues, ReleaseIssues};

use std::collections::BTreeSet;

use bellwether_model::issue::FirstSeen;

/// Deployments before a release that always count as its history.
pub const LOOKBACK_RELEASES: usize = 5;
/// Deployments started this long before a release count as its history too.
pub const LOOKBACK_MS: i64 = 14 * 24 * 3600 * 1000;
/// Most deployments looked at, however many started within [`LOOKBACK_MS`].
pub const MAX_LOOKBACK_RELEASES: usize = 50;

/// How a fingerprint of a release relates to the releases before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IssueStatus {
    New,
    Regressed,
    Existing,
}

impl IssueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::New => "new",
            IssueStatus::Regressed => "regressed",
            IssueStatus::Existing => "existing",
        }
    }
}

/// One fingerprint of a release, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueSummary {
    pub fingerprint: String,
    pub title: String,
    pub exception_type: String,
    pub status: IssueStatus,
    /// Errors in this release, de-duplicated per (trace, fingerprint).
    pub count: u64,
    /// Instances of this release that reported it.
    pub instances: BTreeSet<String>,
    /// First seen in the service (any environment, any release).
    pub first_seen: FirstSeen,
    /// First and last seen in this release.
    pub first_seen_in_release_unix_ms: i64,
    pub last_seen_unix_ms: i64,
}

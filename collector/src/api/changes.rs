//! JSON shapes of a release's change set and lead time, in `POST /api/v1/deployments`
//! and in the deployment and release answers.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use bellwether_model::change::{Change, ChangeSet, LeadTime};
use bellwether_model::time::{parse_rfc3339, rfc3339_utc};

/// One commit of a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeJson {
    pub sha: String,
    pub author: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_email: Option<String>,
    /// RFC 3339; answers give it in UTC.
    pub committed_at: String,
    pub subject: String,
    #[serde(default)]
    pub files: Vec<String>,
}

impl From<Change> for ChangeJson {
    fn from(c: Change) -> Self {
        ChangeJson {
            sha: c.sha,
            author: c.author,
            author_email: c.author_email,
            committed_at: rfc3339_utc(c.committed_at_unix_ms),
            subject: c.subject,
            files: c.files,
        }
    }
}

/// The change set of a request: `changes` and the counts of what the sender left off.
pub fn change_set(
    changes: Option<Vec<ChangeJson>>,
    changes_truncated: u64,
    files_truncated: u64,
) -> Result<Option<ChangeSet>, Error> {
    let Some(changes) = changes else {
        if changes_truncated > 0 || files_truncated > 0 {
            return Err(Error::invalid(
                "changes_truncated and files_truncated count what `changes` leaves off: give changes",
            ));
        }
        return Ok(None);
    };
    let changes = changes
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let committed_at_unix_ms = parse_rfc3339(&c.committed_at).ok_or_else(|| {
                Error::invalid(format!(
                    "changes[{i}].committed_at: {:?} is not an RFC 3339 time",
                    c.committed_at
                ))
            })?;
            Ok(Change {
                sha: c.sha,
                author: c.author,
                author_email: c.author_email.filter(|e| !e.is_empty()),
                committed_at_unix_ms,
                subject: c.subject,
                files: c.files,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Some(ChangeSet {
        changes,
        changes_truncated,
        files_truncated,
    }))
}

/// Commit-to-deploy time of a release's changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadTimeJson {
    /// When the oldest commit was made (RFC 3339, UTC).
    pub oldest_committed_at: String,
    /// From the oldest commit to the deploy.
    pub oldest_seconds: i64,
    /// The median over the commits of commit-to-deploy.
    pub median_seconds: i64,
    /// Commits the figures rest on.
    pub commits: usize,
    /// False when the sender left commits off (`changes_truncated`): the oldest commit
    /// of the range is then unknown.
    pub complete: bool,
}

impl From<LeadTime> for LeadTimeJson {
    fn from(l: LeadTime) -> Self {
        LeadTimeJson {
            oldest_committed_at: rfc3339_utc(l.oldest_committed_at_unix_ms),
            oldest_seconds: l.oldest_ms / 1000,
            median_seconds: l.median_ms / 1000,
            commits: l.commits,
            complete: l.complete,
        }
    }
}

/// The change set fields of a deployment answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesFields {
    /// Commits the release adds, newest first; null when none were recorded, and in the
    /// release list (which gives only the counts and the lead time).
    #[serde(default)]
    pub changes: Option<Vec<ChangeJson>>,
    /// Every commit of the range, kept or left off; null when none were recorded.
    #[serde(default)]
    pub change_count: Option<u64>,
    #[serde(default)]
    pub changes_truncated: u64,
    #[serde(default)]
    pub files_truncated: u64,
    #[serde(default)]
    pub lead_time: Option<LeadTimeJson>,
}

impl ChangesFields {
    pub fn new(set: Option<ChangeSet>, deployed_at_unix_ms: i64) -> Self {
        let Some(set) = set else {
            return Self::default();
        };
        ChangesFields {
            change_count: Some(set.commit_count()),
            changes_truncated: set.changes_truncated,
            files_truncated: set.files_truncated,
            lead_time: set.lead_time(deployed_at_unix_ms).map(LeadTimeJson::from),
            changes: Some(set.changes.into_iter().map(ChangeJson::from).collect()),
        }
    }
}

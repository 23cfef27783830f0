//! A release's change set: the commits it adds over the previous release of its service
//! in its environment, with the files each changed; the bounds on what one deployment
//! keeps of it; and the lead time it gives (commit to deploy).
//!
//! Commits are kept newest first, as `git log` lists them. A change set larger than the
//! bounds is cut by the sender, which counts what it left off in `changes_truncated`
//! and `files_truncated`; the collector refuses one that exceeds them.

use serde::{Deserialize, Serialize};

/// Most commits one deployment keeps.
pub const MAX_CHANGES: usize = 1_000;
/// Most files kept per commit.
pub const MAX_FILES_PER_CHANGE: usize = 100;
/// Most files kept over the whole change set.
pub const MAX_FILES_TOTAL: usize = 10_000;
/// Longest commit id (a SHA-256 object name in hex).
pub const MAX_SHA_BYTES: usize = 64;
/// Longest author name or email.
pub const MAX_AUTHOR_BYTES: usize = 256;
/// Longest subject line.
pub const MAX_SUBJECT_BYTES: usize = 1_024;
/// Longest file path.
pub const MAX_PATH_BYTES: usize = 1_024;
/// Most bytes of file paths [`ChangeSet::bounded`] keeps over the change set, so that a
/// deployment with its changes stays well below the API's 2 MiB request limit.
pub const MAX_PATH_BYTES_TOTAL: usize = 1 << 20;

/// One commit of a change set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub sha: String,
    pub author: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_email: Option<String>,
    pub committed_at_unix_ms: i64,
    pub subject: String,
    /// Files the commit changed (none for a merge commit).
    #[serde(default)]
    pub files: Vec<String>,
}

/// The commits a release adds, newest first, and what was left off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub changes: Vec<Change>,
    /// Commits of the range not kept (beyond [`MAX_CHANGES`]).
    #[serde(default)]
    pub changes_truncated: u64,
    /// Files not kept (beyond [`MAX_FILES_PER_CHANGE`] or [`MAX_FILES_TOTAL`]).
    #[serde(default)]
    pub files_truncated: u64,
}

/// How long a release's changes waited to be deployed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeadTime {
    /// When the oldest commit kept was made.
    pub oldest_committed_at_unix_ms: i64,
    /// From the oldest commit kept to the deploy.
    pub oldest_ms: i64,
    /// The median over the commits kept of commit-to-deploy.
    pub median_ms: i64,
    /// Commits it rests on.
    pub commits: usize,
    /// False when commits were left off: the oldest commit of the range is then unknown.
    pub complete: bool,
}

/// Why a change set is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChangeError(pub String);

impl ChangeSet {
    /// Every commit counted, kept or left off.
    pub fn commit_count(&self) -> u64 {
        (self.changes.len() as u64).saturating_add(self.changes_truncated)
    }

    /// The lead time for a deploy at `deployed_at_unix_ms`; `None` without commits.
    /// A commit dated after the deploy (a skewed clock) counts as zero.
    pub fn lead_time(&self, deployed_at_unix_ms: i64) -> Option<LeadTime> {
        let mut waits: Vec<i64> = self
            .changes
            .iter()
            .map(|c| {
                deployed_at_unix_ms
                    .saturating_sub(c.committed_at_unix_ms)
                    .max(0)
            })
            .collect();
        if waits.is_empty() {
            return None;
        }
        waits.sort_unstable();
        let n = waits.len();
        let median_ms = if n % 2 == 1 {
            waits[n / 2]
        } else {
            // The mean of the middle two, without overflow.
            let (a, b) = (waits[n / 2 - 1], waits[n / 2]);
            a + (b - a) / 2
        };
        let oldest_committed_at_unix_ms = self
            .changes
            .iter()
            .map(|c| c.committed_at_unix_ms)
            .min()
            .unwrap_or(deployed_at_unix_ms);
        Some(LeadTime {
            oldest_committed_at_unix_ms,
            oldest_ms: waits[n - 1],
            median_ms,
            commits: n,
            complete: self.changes_truncated == 0,
        })
    }

    /// What the bounds let a sender keep of `changes` (newest first), out of `total`
    /// commits in the range: the newest [`MAX_CHANGES`] commits, the first
    /// [`MAX_FILES_PER_CHANGE`] files of each while [`MAX_FILES_TOTAL`] and
    /// [`MAX_PATH_BYTES_TOTAL`] allow, text cut to its bound; the rest counted.
    pub fn bounded(mut changes: Vec<Change>, total: u64) -> ChangeSet {
        let kept = changes.len().min(MAX_CHANGES);
        changes.truncate(kept);
        let changes_truncated = total.saturating_sub(kept as u64);
        let mut files_truncated = 0u64;
        let (mut files_left, mut bytes_left) = (MAX_FILES_TOTAL, MAX_PATH_BYTES_TOTAL);
        for change in &mut changes {
            if change.author.trim().is_empty() {
                change.author = "(unknown)".to_owned();
            }
            truncate_to(&mut change.author, MAX_AUTHOR_BYTES);
            if let Some(email) = &mut change.author_email {
                truncate_to(email, MAX_AUTHOR_BYTES);
            }
            truncate_to(&mut change.subject, MAX_SUBJECT_BYTES);
            let files = std::mem::take(&mut change.files);
            let offered = files.len() as u64;
            for path in files {
                let fits = change.files.len() < MAX_FILES_PER_CHANGE
                    && files_left > 0
                    && path.len() <= bytes_left;
                if fits && !path.trim().is_empty() && path.len() <= MAX_PATH_BYTES {
                    files_left -= 1;
                    bytes_left -= path.len();
                    change.files.push(path);
                }
            }
            files_truncated += offered - change.files.len() as u64;
        }
        ChangeSet {
            changes,
            changes_truncated,
            files_truncated,
        }
    }

    /// Checks the bounds and the fields of every commit.
    pub fn validate(&self) -> Result<(), ChangeError> {
        let fail = |message: String| Err(ChangeError(message));
        if self.changes.len() > MAX_CHANGES {
            return fail(format!(
                "changes: {} commits, at most {MAX_CHANGES} (count the rest in changes_truncated)",
                self.changes.len()
            ));
        }
        let mut files_total = 0usize;
        let mut seen = std::collections::HashSet::new();
        for (i, change) in self.changes.iter().enumerate() {
            let at = |field: &str| format!("changes[{i}].{field}");
            let sha = &change.sha;
            if sha.len() < 4
                || sha.len() > MAX_SHA_BYTES
                || !sha.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return fail(format!(
                    "{}: {sha:?} is not a commit id (4 to {MAX_SHA_BYTES} hex digits)",
                    at("sha")
                ));
            }
            if !seen.insert(sha.to_ascii_lowercase()) {
                return fail(format!("{}: commit {sha} is listed twice", at("sha")));
            }
            text(&at("author"), &change.author, MAX_AUTHOR_BYTES, false)?;
            if let Some(email) = &change.author_email {
                text(&at("author_email"), email, MAX_AUTHOR_BYTES, true)?;
            }
            text(&at("subject"), &change.subject, MAX_SUBJECT_BYTES, true)?;
            if change.files.len() > MAX_FILES_PER_CHANGE {
                return fail(format!(
                    "{}: {} files, at most {MAX_FILES_PER_CHANGE} (count the rest in files_truncated)",
                    at("files"),
                    change.files.len()
                ));
            }
            for (j, path) in change.files.iter().enumerate() {
                text(
                    &format!("changes[{i}].files[{j}]"),
                    path,
                    MAX_PATH_BYTES,
                    false,
                )?;
            }
            files_total += change.files.len();
        }
        if files_total > MAX_FILES_TOTAL {
            return fail(format!(
                "changes: {files_total} files in all, at most {MAX_FILES_TOTAL} (count the rest in files_truncated)"
            ));
        }
        Ok(())
    }
}

fn text(field: &str, value: &str, max: usize, empty_ok: bool) -> Result<(), ChangeError> {
    if !empty_ok && value.trim().is_empty() {
        return Err(ChangeError(format!("{field} must not be empty")));
    }
    if value.len() > max {
        return Err(ChangeError(format!("{field} exceeds {max} bytes")));
    }
    if value.contains('\0') {
        return Err(ChangeError(format!("{field} must not contain NUL")));
    }
    Ok(())
}

/// Cuts `value` to at most `max` bytes at a character boundary.
pub fn truncate_to(value: &mut String, max: usize) {
    if value.len() > max {
        let mut end = max;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
}

#[cfg(test)]
#[path = "change_tests.rs"]
mod tests;

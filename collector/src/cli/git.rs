//! Change sets from a local git checkout, for `bellwether deploy --git`: the commits
//! from the previous deployment's commit of the service and environment to the one
//! being deployed, read with the `git` binary (the one the pipeline already has, which
//! understands every repository format and transport the checkout was made with).
//!
//! `git log -z` separates fields and file names with NUL, which no subject, name or
//! path can contain, so odd subjects and paths read back whole.
//!
//! The range, and what is said about it:
//! - first deployment (no previous commit known): the deployed commit alone;
//! - previous commit not in the clone (a shallow clone, another repository): the
//!   deployed commit alone, with a warning (and in a shallow clone, no files for a
//!   commit whose parents the clone lacks: git would list its whole tree);
//! - previous commit not an ancestor (history rewritten, e.g. a force-push): the
//!   commits since the merge base of the two, with a warning;
//! - the deployed commit older than the previous one (a rollback), or the same: none.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use bellwether_model::change::{Change, ChangeSet, MAX_CHANGES};

/// Starts every commit's header in the log: a record separator, then the sha.
const RECORD: u8 = 0x1e;
const FORMAT: &str = "--format=%x1e%H%x00%ct%x00%an%x00%ae%x00%s";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git ({0}); install git, or leave off --git")]
    NotInstalled(String),
    #[error("{0}")]
    NotARepository(String),
    #[error("commit {commit} is not in the repository at {dir}")]
    UnknownCommit { commit: String, dir: String },
    #[error("git {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("git log output not understood: {0}")]
    Parse(String),
}

/// The previous deployment of the service in the environment, as the collector knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Previous {
    pub version: String,
    pub commit: String,
}

/// A change set and what was decided on the way (printed for the pipeline's log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The deployed commit's full sha.
    pub commit: String,
    pub changes: ChangeSet,
    /// How the range was chosen.
    pub note: String,
    /// Set when the change set is not what was asked for (history missing or rewritten).
    pub warning: Option<String>,
}

pub struct Repo {
    dir: PathBuf,
}

impl Repo {
    /// The repository at (or above) `dir`.
    pub fn open(dir: &Path) -> Result<Repo, GitError> {
        if !dir.is_dir() {
            return Err(GitError::NotARepository(format!(
                "repository directory {} does not exist",
                dir.display()
            )));
        }
        let repo = Repo {
            dir: dir.to_path_buf(),
        };
        match repo.git(&["rev-parse", "--git-dir"]) {
            Ok(_) => Ok(repo),
            Err(GitError::Failed { stderr, .. }) => Err(GitError::NotARepository(format!(
                "{} is not a git repository ({stderr})",
                dir.display()
            ))),
            Err(e) => Err(e),
        }
    }

    fn run(&self, args: &[&str]) -> Result<std::process::Output, GitError> {
        Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .output()
            .map_err(|e| GitError::NotInstalled(e.to_string()))
    }

    /// Runs git; its stdout, or its stderr as the error.
    fn git(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let out = self.run(args)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(GitError::Failed {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    fn text(&self, args: &[&str]) -> Result<String, GitError> {
        Ok(String::from_utf8_lossy(&self.git(args)?).trim().to_owned())
    }

    /// The full sha of `rev`, or `None` if the repository does not have it.
    pub fn resolve(&self, rev: &str) -> Result<Option<String>, GitError> {
        let spec = format!("{rev}^{{commit}}");
        let out = self.run(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ])?;
        let sha = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((out.status.success() && !sha.is_empty()).then_some(sha))
    }

    fn is_ancestor(&self, ancestor: &str, of: &str) -> Result<bool, GitError> {
        let out = self.run(&["merge-base", "--is-ancestor", ancestor, of])?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(GitError::Failed {
                args: format!("merge-base --is-ancestor {ancestor} {of}"),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            }),
        }
    }

    fn merge_base(&self, a: &str, b: &str) -> Result<Option<String>, GitError> {
        let out = self.run(&["merge-base", a, b])?;
        let sha = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((out.status.success() && !sha.is_empty()).then_some(sha))
    }

    /// The commits whose parents a shallow clone lacks (none in a full clone).
    fn shallow_boundary(&self) -> Result<HashSet<String>, GitError> {
        let path = PathBuf::from(self.text(&["rev-parse", "--git-path", "shallow"])?);
        let path = if path.is_absolute() {
            path
        } else {
            self.dir.join(path)
        };
        Ok(std::fs::read_to_string(path)
            .map(|text| text.lines().map(|l| l.trim().to_owned()).collect())
            .unwrap_or_default())
    }

    fn is_shallow(&self) -> bool {
        self.text(&["rev-parse", "--is-shallow-repository"])
            .is_ok_and(|answer| answer == "true")
    }

    /// The newest [`MAX_CHANGES`] commits of `range` (`a..b`, or one commit with
    /// `-1`), bounded, out of all the range holds.
    fn changes(&self, range: &[&str], total: u64) -> Result<ChangeSet, GitError> {
        let max = format!("--max-count={MAX_CHANGES}");
        let mut args = vec![
            "log",
            "-z",
            "--no-color",
            "--no-renames",
            "--no-ext-diff",
            "--root",
            "--name-only",
            FORMAT,
            &max,
        ];
        args.extend_from_slice(range);
        let mut changes = parse_log(&self.git(&args)?)?;
        // A shallow clone's boundary commits look like root commits, whose "changes" are
        // their whole tree: their files are unknown, so none are listed.
        let boundary = self.shallow_boundary()?;
        for change in &mut changes {
            if boundary.contains(&change.sha) {
                change.files.clear();
            }
        }
        let total = total.max(changes.len() as u64);
        Ok(ChangeSet::bounded(changes, total))
    }

    fn count(&self, range: &str) -> Result<u64, GitError> {
        let text = self.text(&["rev-list", "--count", range])?;
        text.parse()
            .map_err(|_| GitError::Parse(format!("rev-list --count gave {text:?}")))
    }

    /// The change set of deploying `commit` after `previous`.
    pub fn changes_since(
        &self,
        previous: Option<&Previous>,
        commit: &str,
    ) -> Result<Found, GitError> {
        let head = self
            .resolve(commit)?
            .ok_or_else(|| GitError::UnknownCommit {
                commit: commit.to_owned(),
                dir: self.dir.display().to_string(),
            })?;
        let short = |sha: &str| sha.chars().take(12).collect::<String>();
        let alone = |note: String, warning: Option<String>| -> Result<Found, GitError> {
            Ok(Found {
                changes: self.changes(&["-1", &head], 1)?,
                commit: head.clone(),
                note,
                warning,
            })
        };
        let Some(previous) = previous else {
            return alone(
                format!(
                    "first deployment here: the change set is commit {} alone",
                    short(&head)
                ),
                None,
            );
        };
        let Some(prev) = self.resolve(&previous.commit)? else {
            let hint = if self.is_shallow() {
                " (the clone is shallow: fetch the whole history, e.g. fetch-depth: 0; the files of a commit whose parent the clone lacks are not listed)"
            } else {
                ""
            };
            return alone(
                String::new(),
                Some(format!(
                    "commit {} of the previous deployment ({}) is not in the repository{hint}: the change set is commit {} alone",
                    previous.commit,
                    previous.version,
                    short(&head)
                )),
            );
        };
        let range = |base: &str| -> Result<ChangeSet, GitError> {
            let range = format!("{base}..{head}");
            let total = self.count(&range)?;
            self.changes(&[&range], total)
        };
        if self.is_ancestor(&prev, &head)? {
            let changes = range(&prev)?;
            let note = format!(
                "{} commits since {} ({})",
                changes.commit_count(),
                short(&prev),
                previous.version
            );
            return Ok(Found {
                commit: head,
                changes,
                note,
                warning: None,
            });
        }
        if self.is_ancestor(&head, &prev)? {
            return Ok(Found {
                note: format!(
                    "commit {} is older than {} ({}), a rollback: no new commits",
                    short(&head),
                    short(&prev),
                    previous.version
                ),
                commit: head,
                changes: ChangeSet::default(),
                warning: None,
            });
        }
        match self.merge_base(&prev, &head)? {
            Some(base) => Ok(Found {
                changes: range(&base)?,
                warning: Some(format!(
                    "commit {} of the previous deployment ({}) is not an ancestor of {} (history rewritten, e.g. a force-push): the change set is the commits since their merge base {}",
                    short(&prev),
                    previous.version,
                    short(&head),
                    short(&base)
                )),
                commit: head,
                note: String::new(),
            }),
            None => alone(
                String::new(),
                Some(format!(
                    "commit {} of the previous deployment ({}) shares no history with {}: the change set is commit {} alone",
                    short(&prev),
                    previous.version,
                    short(&head),
                    short(&head)
                )),
            ),
        }
    }
}

/// Reads `git log -z --name-only` output in [`FORMAT`]: each commit is a header of
/// NUL-separated fields that starts with [`RECORD`], then its file names, each ended by
/// NUL (the first after a newline).
pub fn parse_log(raw: &[u8]) -> Result<Vec<Change>, GitError> {
    let mut changes: Vec<Change> = Vec::new();
    let mut tokens = raw.split(|b| *b == 0).peekable();
    let mut first_file = false;
    while let Some(token) = tokens.next() {
        if let Some(sha) = header_sha(token) {
            let mut field = |name: &str| {
                tokens
                    .next()
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .ok_or_else(|| GitError::Parse(format!("commit {sha} has no {name}")))
            };
            let time = field("commit time")?;
            let author = field("author")?;
            let author_email = field("author email")?;
            let subject = field("subject")?;
            let seconds: i64 = time
                .parse()
                .map_err(|_| GitError::Parse(format!("commit {sha} has time {time:?}")))?;
            changes.push(Change {
                sha,
                author,
                author_email: (!author_email.is_empty()).then_some(author_email),
                committed_at_unix_ms: seconds.saturating_mul(1000),
                subject,
                files: Vec::new(),
            });
            first_file = true;
            continue;
        }
        let name = match token.strip_prefix(b"\n") {
            Some(rest) if first_file => rest,
            _ => token,
        };
        first_file = false;
        if name.is_empty() {
            continue;
        }
        let Some(change) = changes.last_mut() else {
            return Err(GitError::Parse(
                "file names before the first commit".to_owned(),
            ));
        };
        change
            .files
            .push(String::from_utf8_lossy(name).into_owned());
    }
    Ok(changes)
}

/// The sha of a header token: the record separator and 40 or 64 hex digits.
fn header_sha(token: &[u8]) -> Option<String> {
    let sha = token.strip_prefix(&[RECORD])?;
    let hex = matches!(sha.len(), 40 | 64) && sha.iter().all(u8::is_ascii_hexdigit);
    hex.then(|| String::from_utf8_lossy(sha).into_owned())
}

#[cfg(test)]
#[path = "git_tests.rs"]
mod tests;

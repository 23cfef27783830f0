//! Suspect commits: when an issue is flagged, the release's commits whose changed files
//! are the files of the issue's in-app stack frames, best first (the top in-app frame
//! beats deeper ones, a newer commit an older one at the same frame). They go into the
//! verdict's evidence, so the alert that the verdict dispatches and the API and UI that
//! read the same verdict name the same commits.

use bellwether_model::change::ChangeSet;
use bellwether_model::health::Evidence;
use bellwether_model::issue::IssueSample;
use bellwether_model::release::Deployment;
use bellwether_stacktrace::{Frame, ParsedException, Runtime};
use bellwether_store::{ReleaseStore, StoreError};
use serde::{Deserialize, Serialize};

/// Commits named per issue, at most.
pub const MAX_SUSPECTS: usize = 3;

/// One commit suspected of causing an issue, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspect {
    pub sha: String,
    pub subject: String,
    pub author: String,
    /// The changed file that matched a frame.
    pub file: String,
    /// E.g. "changed src/billing/tax.py, the top in-app frame".
    pub reason: String,
}

fn normalize(path: &str) -> String {
    let path = path.replace('\\', "/");
    path.trim_start_matches("./").to_owned()
}

/// The paths a frame's source file may have in the repository: the file as printed and,
/// for the JVM (which prints the file name only), the class's package path with it.
fn frame_paths(runtime: Runtime, frame: &Frame) -> Vec<String> {
    let Some(file) = frame.file.as_deref().map(normalize) else {
        return Vec::new();
    };
    let mut paths = vec![file.clone()];
    if runtime == Runtime::Java && !file.contains('/') {
        if let Some(module) = &frame.module {
            let class = module.split('$').next().unwrap_or(module);
            if let Some((package, _)) = class.rsplit_once('.') {
                paths.push(format!("{}/{file}", package.replace('.', "/")));
            }
        }
    }
    paths
}

/// Whether the changed file `changed` (a repository path) is the frame's `path`: equal,
/// or one a suffix of the other at a directory boundary. A file at the repository's root
/// matches only a frame path one directory deep (`/app/tax.py`), and a frame's bare file
/// name never matches a longer changed path: a name alone says too little.
fn same_file(path: &str, changed: &str) -> bool {
    path == changed
        || (path.ends_with(&format!("/{changed}"))
            && (changed.contains('/') || path.matches('/').count() <= 2))
        || (path.contains('/') && changed.ends_with(&format!("/{path}")))
}

/// The commits of `changes` that changed a file of `exception`'s in-app frames, best
/// first, at most [`MAX_SUSPECTS`].
pub fn suspect_commits(exception: &ParsedException, changes: &ChangeSet) -> Vec<Suspect> {
    let in_app: Vec<&Frame> = exception.frames.iter().filter(|f| f.in_app).collect();
    let mut found: Vec<(usize, usize, Suspect)> = Vec::new();
    for (order, change) in changes.changes.iter().enumerate() {
        let best = in_app.iter().enumerate().find_map(|(depth, frame)| {
            let paths = frame_paths(exception.runtime, frame);
            change
                .files
                .iter()
                .find(|changed| paths.iter().any(|p| same_file(p, &normalize(changed))))
                .map(|changed| (depth, *frame, changed))
        });
        if let Some((depth, frame, changed)) = best {
            let reason = if depth == 0 {
                format!("changed {changed}, the top in-app frame")
            } else {
                format!(
                    "changed {changed}, in-app frame {} ({})",
                    depth + 1,
                    exception.qualified_name(frame)
                )
            };
            found.push((
                depth,
                order,
                Suspect {
                    sha: change.sha.clone(),
                    subject: change.subject.clone(),
                    author: change.author.clone(),
                    file: changed.clone(),
                    reason,
                },
            ));
        }
    }
    found.sort_by_key(|(depth, order, _)| (*depth, *order));
    found
        .into_iter()
        .take(MAX_SUSPECTS)
        .map(|(_, _, s)| s)
        .collect()
}

/// The suspect commits of an issue from its stack `samples` and the release's
/// `changes`: the first sample whose stack parses decides.
pub fn issue_suspects(samples: &[IssueSample], changes: Option<&ChangeSet>) -> Vec<Suspect> {
    let Some(changes) = changes.filter(|c| !c.changes.is_empty()) else {
        return Vec::new();
    };
    samples
        .iter()
        .find_map(|s| bellwether_stacktrace::parse(&s.stack))
        .map(|exception| suspect_commits(&exception, changes))
        .unwrap_or_default()
}

/// Evidence naming the suspect commits of each flagged issue of `deployment` whose stack
/// sample matches its change set; nothing without a change set.
pub(super) fn suspect_evidence(
    store: &dyn ReleaseStore,
    deployment: &Deployment,
    flagged: &[String],
) -> Result<Vec<Evidence>, StoreError> {
    let Some(changes) = deployment
        .changes
        .as_ref()
        .filter(|c| !c.changes.is_empty())
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for fingerprint in flagged {
        let samples = store.issue_samples(&deployment.release, fingerprint)?;
        let suspects = issue_suspects(&samples, Some(changes));
        let Some(exception_type) = samples
            .iter()
            .find_map(|s| bellwether_stacktrace::parse(&s.stack))
            .map(|e| e.exception_type)
            .filter(|_| !suspects.is_empty())
        else {
            continue;
        };
        let named: Vec<String> = suspects
            .iter()
            .map(|s| {
                let short: String = s.sha.chars().take(7).collect();
                format!("{short} \"{}\" by {} ({})", s.subject, s.author, s.reason)
            })
            .collect();
        out.push(
            Evidence::new(
                "suspect_commits",
                format!("{}: suspect commits {}", exception_type, named.join("; ")),
            )
            .with("fingerprint", fingerprint.as_str())
            .with("suspects", &suspects),
        );
    }
    Ok(out)
}

#[cfg(test)]
#[path = "suspects_tests.rs"]
mod tests;

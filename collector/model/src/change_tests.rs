use super::*;

fn change(sha: &str, committed_at_unix_ms: i64, files: &[&str]) -> Change {
    Change {
        sha: sha.to_owned(),
        author: "Ada".to_owned(),
        author_email: Some("ada@example.com".to_owned()),
        committed_at_unix_ms,
        subject: format!("commit {sha}"),
        files: files.iter().map(|f| (*f).to_owned()).collect(),
    }
}

fn set(changes: Vec<Change>) -> ChangeSet {
    ChangeSet {
        changes,
        ..ChangeSet::default()
    }
}

fn error(set: &ChangeSet) -> String {
    set.validate().err().map(|e| e.0).unwrap_or_default()
}

#[test]
fn lead_time_is_oldest_and_median_to_deploy() {
    let hour = 3_600_000;
    let deployed = 10 * hour;
    // Newest first, as git lists them: 1 h, 3 h, 6 h before the deploy.
    let three = set(vec![
        change("aaaa", 9 * hour, &[]),
        change("bbbb", 7 * hour, &[]),
        change("cccc", 4 * hour, &[]),
    ]);
    let lead = three.lead_time(deployed);
    assert_eq!(
        lead,
        Some(LeadTime {
            oldest_committed_at_unix_ms: 4 * hour,
            oldest_ms: 6 * hour,
            median_ms: 3 * hour,
            commits: 3,
            complete: true,
        })
    );
    // An even count takes the mean of the middle two.
    let mut four = three.clone();
    four.changes.push(change("dddd", 2 * hour, &[]));
    four.changes_truncated = 2;
    let lead = four.lead_time(deployed);
    assert_eq!(lead.map(|l| l.median_ms), Some(4 * hour + hour / 2));
    assert_eq!(lead.map(|l| l.oldest_ms), Some(8 * hour));
    assert_eq!(lead.map(|l| l.complete), Some(false));
    assert_eq!(four.commit_count(), 6);
    // A commit after the deploy (clock skew) waits zero; no commits, no lead time.
    let skewed = set(vec![change("eeee", deployed + hour, &[])]);
    assert_eq!(skewed.lead_time(deployed).map(|l| l.median_ms), Some(0));
    assert_eq!(ChangeSet::default().lead_time(deployed), None);
}

#[test]
fn validate_names_the_offending_field() {
    assert_eq!(error(&set(vec![change("abcd1234", 0, &["src/a.rs"])])), "");
    assert_eq!(
        error(&set(vec![change("xyz!", 0, &[])])),
        "changes[0].sha: \"xyz!\" is not a commit id (4 to 64 hex digits)"
    );
    assert_eq!(
        error(&set(vec![change("abcd", 0, &[]), change("ABCD", 0, &[])])),
        "changes[1].sha: commit ABCD is listed twice"
    );
    let mut nameless = change("abcd", 0, &[]);
    nameless.author = " ".to_owned();
    assert_eq!(
        error(&set(vec![nameless])),
        "changes[0].author must not be empty"
    );
    let mut long = change("abcd", 0, &[]);
    long.subject = "s".repeat(MAX_SUBJECT_BYTES + 1);
    assert_eq!(
        error(&set(vec![long])),
        "changes[0].subject exceeds 1024 bytes"
    );
    assert_eq!(
        error(&set(vec![change("abcd", 0, &["ok", ""])])),
        "changes[0].files[1] must not be empty"
    );
}

#[test]
fn validate_enforces_the_bounds() {
    let many: Vec<Change> = (0..=MAX_CHANGES)
        .map(|i| change(&format!("{i:08x}"), 0, &[]))
        .collect();
    assert_eq!(
        error(&set(many)),
        "changes: 1001 commits, at most 1000 (count the rest in changes_truncated)"
    );
    let files: Vec<String> = (0..=MAX_FILES_PER_CHANGE)
        .map(|i| format!("f{i}"))
        .collect();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    assert_eq!(
        error(&set(vec![change("abcd", 0, &refs)])),
        "changes[0].files: 101 files, at most 100 (count the rest in files_truncated)"
    );
    let hundred = &refs[..MAX_FILES_PER_CHANGE];
    let wide: Vec<Change> = (0..=MAX_FILES_TOTAL / MAX_FILES_PER_CHANGE)
        .map(|i| change(&format!("{i:08x}"), 0, hundred))
        .collect();
    assert_eq!(
        error(&set(wide)),
        "changes: 10100 files in all, at most 10000 (count the rest in files_truncated)"
    );
}

#[test]
fn bounded_keeps_the_newest_and_counts_the_rest() {
    let files: Vec<String> = (0..150).map(|i| format!("src/f{i}.rs")).collect();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let changes: Vec<Change> = (0..1_200)
        .map(|i| {
            change(
                &format!("{i:08x}"),
                0,
                if i == 0 { &refs } else { &refs[..2] },
            )
        })
        .collect();
    let bounded = ChangeSet::bounded(changes, 1_500);
    assert_eq!(bounded.changes.len(), MAX_CHANGES);
    assert_eq!(bounded.changes[0].sha, "00000000");
    assert_eq!(bounded.changes_truncated, 500);
    assert_eq!(bounded.changes[0].files.len(), MAX_FILES_PER_CHANGE);
    assert_eq!(bounded.changes[0].files[99], "src/f99.rs");
    assert_eq!(bounded.files_truncated, 50);
    assert_eq!(bounded.validate(), Ok(()));
}

#[test]
fn bounded_cuts_text_and_drops_unfit_paths() {
    let mut odd = change("abcd", 0, &["", "ok.rs"]);
    odd.files.push("p".repeat(MAX_PATH_BYTES + 1));
    odd.author = String::new();
    // A multi-byte character straddling the bound is dropped whole.
    odd.subject = format!("{}é", "s".repeat(MAX_SUBJECT_BYTES - 1));
    let bounded = ChangeSet::bounded(vec![odd], 1);
    let kept = &bounded.changes[0];
    assert_eq!(kept.files, ["ok.rs"]);
    assert_eq!(bounded.files_truncated, 2);
    assert_eq!(kept.author, "(unknown)");
    assert_eq!(kept.subject.len(), MAX_SUBJECT_BYTES - 1);
    assert_eq!(bounded.changes_truncated, 0);
    assert_eq!(bounded.validate(), Ok(()));
}

#[test]
fn bounded_keeps_paths_within_the_byte_budget() {
    let long = "d/".repeat(250) + "file.rs";
    let paths: Vec<String> = (0..100).map(|i| format!("{long}{i}")).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let changes: Vec<Change> = (0..100)
        .map(|i| change(&format!("{i:08x}"), 0, &refs))
        .collect();
    let bounded = ChangeSet::bounded(changes, 100);
    let bytes: usize = bounded
        .changes
        .iter()
        .flat_map(|c| &c.files)
        .map(String::len)
        .sum();
    assert!(bytes <= MAX_PATH_BYTES_TOTAL, "{bytes}");
    let kept: u64 = bounded.changes.iter().map(|c| c.files.len() as u64).sum();
    assert!(kept > 1_000, "{kept}");
    assert_eq!(kept + bounded.files_truncated, 100 * 100);
}

#[test]
fn old_records_without_files_read_back() -> Result<(), serde_json::Error> {
    let old = r#"{"sha":"abcd","author":"Ada","committed_at_unix_ms":5,"subject":"x"}"#;
    let read: Change = serde_json::from_str(old)?;
    assert!(read.files.is_empty());
    assert_eq!(read.author_email, None);
    let set: ChangeSet = serde_json::from_str(r#"{"changes":[]}"#)?;
    assert_eq!(set, ChangeSet::default());
    Ok(())
}

#[test]
fn deployments_stored_before_change_sets_read_back() -> Result<(), serde_json::Error> {
    use crate::release::{Deployment, DeploymentRecord, ReleaseKey, Source};
    let old = r#"{"release":{"service":"api","environment":"prod","version":"1"},
        "started_at_unix_ms":5,"commit":"abcd","deploy_id":null,"pipeline_url":null,
        "notes":null,"team":null,"source":"recorded"}"#;
    let mut read: Deployment = serde_json::from_str(old)?;
    assert_eq!(read.changes, None);
    assert_eq!(read.source, Source::Recorded);
    // Written back without changes, the record keeps its old shape.
    assert!(!serde_json::to_string(&read)?.contains("changes"));
    // A recording with changes replaces them; one without keeps them.
    let with = DeploymentRecord {
        release: ReleaseKey::new("api", "prod", "1"),
        changes: Some(set(vec![change("abcd", 1, &["a"])])),
        ..DeploymentRecord::default()
    };
    read.merge_record(&with);
    assert_eq!(read.changes, with.changes);
    read.merge_record(&DeploymentRecord {
        notes: Some("again".into()),
        ..DeploymentRecord::default()
    });
    assert_eq!(read.changes, with.changes);
    Ok(())
}

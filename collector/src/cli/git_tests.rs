use super::*;

const A: &str = "2a1ae9fd6293208ce3c784b03bb4880bcf10abb1";
const B: &str = "c00561488b35572656215359a021a34a8ae5e247";
const C: &str = "8fc7d4b0b830670d06b7c1a45de5d3e35e267701";

/// One commit as `git log -z --name-only` writes it in [`FORMAT`].
fn commit(sha: &str, time: i64, author: &str, subject: &str, files: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![RECORD];
    for field in [sha, &time.to_string(), author, "a@example.com", subject] {
        out.extend_from_slice(field.as_bytes());
        out.push(0);
    }
    if !files.is_empty() {
        out.push(b'\n');
        for file in files {
            out.extend_from_slice(file);
            out.push(0);
        }
    }
    out
}

#[test]
fn parses_commits_files_and_empty_commits() -> Result<(), GitError> {
    let mut raw = commit(
        A,
        1_700_000_000,
        "Ada Lovelace",
        "fix: tax",
        &[b"src/billing/tax.py"],
    );
    raw.extend(commit(B, 1_699_999_000, "Bob", "empty", &[]));
    raw.extend(commit(
        C,
        1_699_998_000,
        "Ada Lovelace",
        "two",
        &[b"a.rs", b"dir/b.rs"],
    ));
    let changes = parse_log(&raw)?;
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0].sha, A);
    assert_eq!(changes[0].author, "Ada Lovelace");
    assert_eq!(changes[0].author_email.as_deref(), Some("a@example.com"));
    assert_eq!(changes[0].committed_at_unix_ms, 1_700_000_000_000);
    assert_eq!(changes[0].subject, "fix: tax");
    assert_eq!(changes[0].files, ["src/billing/tax.py"]);
    assert!(changes[1].files.is_empty());
    assert_eq!(changes[2].files, ["a.rs", "dir/b.rs"]);
    assert_eq!(parse_log(b"")?, []);
    Ok(())
}

#[test]
fn odd_subjects_and_paths_read_back_whole() -> Result<(), GitError> {
    // Separators git's own formats use, quotes, a leading newline in a file name.
    let subject = "weird \u{1f} \u{1e} \"subject\" | %s";
    let raw = commit(
        A,
        1,
        "Ｚoë",
        subject,
        &[b"we ird\"name", b"\nstarts-with-newline", b"\xff.bin"],
    );
    let changes = parse_log(&raw)?;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].subject, subject);
    assert_eq!(changes[0].author, "Ｚoë");
    assert_eq!(
        changes[0].files,
        ["we ird\"name", "\nstarts-with-newline", "\u{fffd}.bin"]
    );
    Ok(())
}

#[test]
fn broken_output_is_an_error_not_a_panic() {
    let mut cut = commit(A, 1, "Ada", "x", &[]);
    cut.truncate(45);
    let err = parse_log(&cut).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(format!("git log output not understood: commit {A} has no author email").as_str())
    );
    let bad_time = commit(A, 1, "Ada", "x", &[]);
    let bad_time = [&bad_time[..42], b"x", &bad_time[43..]].concat();
    assert!(parse_log(&bad_time).is_err());
    let err = parse_log(b"\nfile\0").err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("git log output not understood: file names before the first commit")
    );
    // A record separator without a whole sha is a file name, not a commit.
    let mut raw = commit(A, 1, "Ada", "x", &[b"f"]);
    raw.extend_from_slice(b"\x1eabc\0");
    assert_eq!(
        parse_log(&raw).ok().map(|c| c[0].files.clone()),
        Some(vec!["f".to_owned(), "\u{1e}abc".to_owned()])
    );
}

#[test]
fn a_missing_directory_or_repository_is_named() {
    let missing = Path::new("/nonexistent/bellwether-repo");
    let err = Repo::open(missing).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("repository directory /nonexistent/bellwether-repo does not exist")
    );
}

//! Change sets end to end: a real git repository made here (two authors, set dates,
//! `src/billing/tax.py` and `src/cart/cart.py`), a real `bellwether serve`, and
//! `bellwether deploy --git` for successive releases: the first is its commit alone,
//! each next one exactly the commits in between, with files and lead time; a rewritten
//! history (force-push) and a shallow clone are named, not crashed on; bad input is a
//! usage error (exit 2) or a 400.

use anyhow::{Context, Result};
use bellwether_e2e::git_repo::{git, Author, GitRepo};
use bellwether_e2e::{http_post_json, run_cli, Collector};
use serde_json::{json, Value};

const ADA: Author = Author {
    name: "Ada Lovelace",
    email: "ada@example.com",
};
const BOB: Author = Author {
    name: "Bob Stone",
    email: "bob@example.com",
};
const HOUR: i64 = 3_600;

const T0: i64 = 1_764_000_000;

/// `bellwether deploy --git` of checkout `version` to production: (exit code, stdout, stderr).
fn deploy(collector: &Collector, version: &str, extra: &[&str]) -> Result<(i32, String, String)> {
    let url = collector.url();
    let mut args = vec![
        "deploy",
        "--url",
        &url,
        "--service",
        "checkout",
        "--environment",
        "production",
        "--version",
        version,
        "--git",
    ];
    args.extend_from_slice(extra);
    let (status, stdout, stderr) = run_cli(&args)?;
    Ok((status.code().unwrap_or(-1), stdout, stderr))
}

/// The release as `GET /api/v1/releases/checkout/{version}/stats` gives it.
async fn release(collector: &Collector, version: &str) -> Result<Value> {
    let stats = collector
        .get(&format!(
            "/api/v1/releases/checkout/{version}/stats?environment=production"
        ))
        .await?;
    Ok(stats["release"].clone())
}

/// (sha, author, files) of each stored change, newest first.
fn changes(release: &Value) -> Vec<(String, String, Vec<String>)> {
    release["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let files = c["files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect();
            (
                c["sha"].as_str().unwrap_or_default().to_owned(),
                c["author"].as_str().unwrap_or_default().to_owned(),
                files,
            )
        })
        .collect()
}

fn change(sha: &str, author: Author, files: &[&str]) -> (String, String, Vec<String>) {
    (
        sha.to_owned(),
        author.name.to_owned(),
        files.iter().map(|f| (*f).to_owned()).collect(),
    )
}

/// The deploy time the collector stored, in seconds.
fn deployed_at(release: &Value) -> Result<i64> {
    Ok(release["started_at_unix_ms"]
        .as_i64()
        .context("started_at_unix_ms")?
        / 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_git_records_the_commits_between_releases() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let collector = Collector::start(&tmp.path().join("data"))?;
    let repo = GitRepo::init(&tmp.path().join("repo"))?;
    // 2025-11-24T16:00:00Z: lead times are measured from the deploy the collector stored.
    let t0 = T0;

    let c1 = repo.commit(
        ADA,
        t0,
        "initial checkout service",
        &[
            ("src/billing/tax.py", "RATE = 0.2\n"),
            ("src/cart/cart.py", "ITEMS = []\n"),
        ],
    )?;
    let c2 = repo.commit(
        BOB,
        t0 + HOUR,
        "cart: totals",
        &[("src/cart/cart.py", "ITEMS = [1]\n")],
    )?;

    // The first deployment: the deployed commit alone, and it says so.
    let (code, stdout, stderr) = deploy(
        &collector,
        "1.0.0",
        &["--repo", &repo.dir.to_string_lossy(), "--commit", &c2],
    )?;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("first deployment here"), "{stdout}");
    assert!(stdout.contains("1 commits, 1 files"), "{stdout}");
    let first = release(&collector, "1.0.0").await?;
    assert_eq!(changes(&first), [change(&c2, BOB, &["src/cart/cart.py"])]);
    assert_eq!(first["commit"], c2.as_str());
    assert_eq!(first["change_count"], 1);
    let lead = deployed_at(&first)? - (t0 + HOUR);
    assert_eq!(first["lead_time"]["oldest_seconds"], lead);
    assert_eq!(first["lead_time"]["median_seconds"], lead);
    assert!(!changes(&first).iter().any(|(sha, ..)| *sha == c1));

    // Three more commits, two authors; the second release is exactly them.
    let c3 = repo.commit(
        ADA,
        t0 + 4 * HOUR,
        "fix(billing): round tax",
        &[("src/billing/tax.py", "RATE = 0.21\n")],
    )?;
    let c4 = repo.commit(
        BOB,
        t0 + 6 * HOUR,
        "cart: \"quoted\" subject | with %s and ünïcode",
        &[
            ("src/cart/cart.py", "ITEMS = [1, 2]\n"),
            ("docs/odd name.md", "x\n"),
        ],
    )?;
    let c5 = repo.commit(ADA, t0 + 9 * HOUR, "empty: release notes only", &[])?;
    // Without --commit, HEAD is deployed and recorded by its full sha.
    let (code, stdout, stderr) = deploy(
        &collector,
        "1.1.0",
        &["--repo", &repo.dir.to_string_lossy()],
    )?;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("3 commits since"), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");
    let second = release(&collector, "1.1.0").await?;
    assert_eq!(second["commit"], c5.as_str());
    assert_eq!(
        changes(&second),
        [
            change(&c5, ADA, &[]),
            change(&c4, BOB, &["docs/odd name.md", "src/cart/cart.py"]),
            change(&c3, ADA, &["src/billing/tax.py"]),
        ]
    );
    let stored = &second["changes"][1];
    assert_eq!(
        stored["subject"],
        "cart: \"quoted\" subject | with %s and ünïcode"
    );
    assert_eq!(stored["author_email"], BOB.email);
    assert_eq!(
        second["changes"][2]["committed_at"],
        "2025-11-24T20:00:00.000Z"
    );
    assert_eq!(second["change_count"], 3);
    assert_eq!(second["changes_truncated"], 0);
    assert_eq!(second["files_truncated"], 0);
    let at = deployed_at(&second)?;
    assert_eq!(second["lead_time"]["oldest_seconds"], at - (t0 + 4 * HOUR));
    assert_eq!(second["lead_time"]["median_seconds"], at - (t0 + 6 * HOUR));
    assert_eq!(
        second["lead_time"]["oldest_committed_at"],
        "2025-11-24T20:00:00.000Z"
    );
    assert_eq!(second["lead_time"]["commits"], 3);
    assert_eq!(second["lead_time"]["complete"], true);

    // The list gives counts and lead time, not the commits; the CLI table shows them.
    let list = collector.get("/api/v1/releases?service=checkout").await?;
    let listed = &list["releases"][0];
    assert_eq!(listed["version"], "1.1.0");
    assert_eq!(listed["change_count"], 3);
    assert!(listed["changes"].is_null(), "{listed}");
    assert_eq!(listed["lead_time"], second["lead_time"]);
    let url = collector.url();
    let (status, table, _) = run_cli(&["releases", "--url", &url, "--service", "checkout"])?;
    assert!(status.success());
    let row = table
        .lines()
        .find(|l| l.contains("1.1.0"))
        .unwrap_or_default();
    assert!(table.starts_with("SERVICE"), "{table}");
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.contains("CHANGES  LEAD_TIME")),
        "{table}"
    );
    assert!(row.split_whitespace().any(|cell| cell == "3"), "{row}");

    // Recording 1.1.0 again compares with 1.0.0, not with itself.
    let (code, stdout, _) = deploy(
        &collector,
        "1.1.0",
        &["--repo", &repo.dir.to_string_lossy()],
    )?;
    assert_eq!(code, 0);
    assert!(stdout.contains("3 commits since"), "{stdout}");
    assert_eq!(changes(&release(&collector, "1.1.0").await?).len(), 3);

    // A force-push: c4 and c5 replaced by c6 on top of c3. The change set starts at
    // their merge base, with a warning.
    repo.git(&["reset", "-q", "--hard", &c3])?;
    let c6 = repo.commit(
        BOB,
        t0 + 9 * HOUR + 60,
        "cart: redone",
        &[("src/cart/cart.py", "ITEMS = [3]\n")],
    )?;
    let (code, stdout, stderr) = deploy(
        &collector,
        "1.2.0",
        &["--repo", &repo.dir.to_string_lossy()],
    )?;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("is not an ancestor of"), "{stderr}");
    assert!(stderr.contains("force-push"), "{stderr}");
    assert!(
        stderr.contains(&format!("merge base {}", &c3[..12])),
        "{stderr}"
    );
    let third = release(&collector, "1.2.0").await?;
    assert_eq!(changes(&third), [change(&c6, BOB, &["src/cart/cart.py"])]);

    // A shallow clone that lacks the previous commit: the deployed commit alone, and
    // the warning says why.
    let c7 = repo.commit(
        ADA,
        t0 + 9 * HOUR + 120,
        "billing: vat",
        &[("src/billing/tax.py", "RATE = 0.19\n")],
    )?;
    let shallow = tmp.path().join("shallow");
    let source = format!("file://{}", repo.dir.display());
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &source,
            &shallow.to_string_lossy(),
        ],
    )?;
    let (code, stdout, stderr) =
        deploy(&collector, "1.3.0", &["--repo", &shallow.to_string_lossy()])?;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "commit {c6} of the previous deployment (1.2.0) is not in the repository"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("the clone is shallow"), "{stderr}");
    let fourth = release(&collector, "1.3.0").await?;
    // The clone lacks c7's parent: git would call its whole tree changed, so no files.
    assert_eq!(changes(&fourth), [change(&c7, ADA, &[])]);

    // A rollback to an older commit adds nothing.
    let (code, stdout, _) = deploy(
        &collector,
        "1.3.1",
        &["--repo", &repo.dir.to_string_lossy(), "--commit", &c3],
    )?;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("a rollback: no new commits"), "{stdout}");
    let rollback = release(&collector, "1.3.1").await?;
    assert_eq!(rollback["changes"], json!([]));
    assert_eq!(rollback["change_count"], 0);
    assert!(rollback["lead_time"].is_null());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_git_names_a_bad_checkout_and_the_api_refuses_bad_changes() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let collector = Collector::start(&tmp.path().join("data"))?;
    let repo = GitRepo::init(&tmp.path().join("repo"))?;
    repo.commit(ADA, 1_700_000_000, "one", &[("a.txt", "a\n")])?;

    let missing = tmp.path().join("missing");
    let (code, _, stderr) = deploy(&collector, "1", &["--repo", &missing.to_string_lossy()])?;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain)?;
    let (code, _, stderr) = deploy(&collector, "1", &["--repo", &plain.to_string_lossy()])?;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a git repository"), "{stderr}");
    let (code, _, stderr) = deploy(
        &collector,
        "1",
        &[
            "--repo",
            &repo.dir.to_string_lossy(),
            "--commit",
            "deadbeef",
        ],
    )?;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("commit deadbeef is not in the repository"),
        "{stderr}"
    );
    let (code, _, stderr) = run_cli(&[
        "deploy",
        "--service",
        "a",
        "--environment",
        "b",
        "--version",
        "1",
        "--repo",
        ".",
    ])
    .map(|(s, o, e)| (s.code().unwrap_or(-1), o, e))?;
    assert_eq!(code, 2, "--repo without --git: {stderr}");
    // Nothing was recorded by the failed runs.
    let list = collector.get("/api/v1/releases").await?;
    assert_eq!(list["releases"], json!([]));

    let url = format!("{}/api/v1/deployments", collector.url());
    let good = json!({"sha": "abcd1234", "author": "Ada", "committed_at": "2024-05-01T12:00:00+02:00", "subject": "s", "files": ["a.rs"]});
    let base = |changes: Value| json!({"service": "api", "environment": "prod", "version": "1", "changes": changes});
    let cases = [
        (base(json!([{"sha": "abcd", "author": "Ada", "committed_at": "yesterday", "subject": "s"}])), "changes[0].committed_at: \"yesterday\" is not an RFC 3339 time"),
        (base(json!([{"sha": "abcd", "author": "Ada", "committed_at": "2024-05-01T12:00:00Z", "subject": "s", "branch": "main"}])), "unknown field `branch`"),
        (base(json!([{"sha": "not-hex", "author": "Ada", "committed_at": "2024-05-01T12:00:00Z", "subject": "s"}])), "changes[0].sha: \"not-hex\" is not a commit id"),
        (base(json!([good, good])), "changes[1].sha: commit abcd1234 is listed twice"),
        (base(json!((0..1001).map(|i| json!({"sha": format!("{i:08x}"), "author": "A", "committed_at": "2024-05-01T12:00:00Z", "subject": "s"})).collect::<Vec<_>>())), "changes: 1001 commits, at most 1000"),
        (json!({"service": "api", "environment": "prod", "version": "1", "changes_truncated": 5}), "give changes"),
        (base(json!("abcd")), "invalid deployment"),
    ];
    for (body, expected) in cases {
        let (status, answer) = http_post_json(&url, &body).await?;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{message} (expected {expected})"
        );
    }
    let list = collector.get("/api/v1/releases").await?;
    assert_eq!(list["releases"], json!([]));

    // A good body is stored, its time given back in UTC, and counts kept.
    let body = json!({"service": "api", "environment": "prod", "version": "1", "changes": [good], "changes_truncated": 7, "files_truncated": 2});
    let (status, answer) = http_post_json(&url, &body).await?;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        answer["changes"][0]["committed_at"],
        "2024-05-01T10:00:00.000Z"
    );
    assert_eq!(answer["changes"][0]["files"], json!(["a.rs"]));
    assert_eq!(answer["change_count"], 8);
    assert_eq!(answer["changes_truncated"], 7);
    assert_eq!(answer["files_truncated"], 2);
    assert_eq!(answer["lead_time"]["complete"], false);
    // Recorded again without changes, the change set stays.
    let again = json!({"service": "api", "environment": "prod", "version": "1", "notes": "retry"});
    let (status, answer) = http_post_json(&url, &again).await?;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["change_count"], 8);
    Ok(())
}

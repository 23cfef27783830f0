//! `bellwether demo --exit-when-done` tells its story and exits 0, naming the release it
//! caught.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bellwether_e2e::clean_command;

#[tokio::test]
async fn the_demo_tells_its_story_and_exits() -> Result<()> {
    let mut cmd = tokio::process::Command::from(clean_command("bellwether")?);
    cmd.args(["demo", "--exit-when-done"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(180), cmd.spawn()?.wait_with_output())
        .await
        .context("the demo did not finish within 180 s")??;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    for expected in [
        "deploy checkout 1.5.0",
        "verdict of checkout 1.5.0: healthy",
        "PASS: checkout 1.5.0 in prod is healthy",
        "verdict of checkout 1.6.0: unhealthy",
        "alert error_spike (critical) for checkout 1.6.0 → team payments",
        "alert new_issue (error) for checkout 1.6.0 → team billing",
        "webhook → team payments: [FIRING] checkout 1.6.0",
        "FAIL: checkout 1.6.0 in prod is unhealthy",
        "verdict of checkout 1.6.1: healthy",
        "superseded by 1.6.1",
        "checkout 1.6.0 was detected unhealthy",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    assert!(
        stdout.contains("/releases/checkout/1.6.0?environment=prod"),
        "{stdout}"
    );
    // The story itself must stay under two minutes (the process start is included here).
    assert!(
        took < Duration::from_secs(120),
        "the demo took {took:?}:\n{stdout}"
    );
    Ok(())
}

//! `bellwether serve --check-config` on routing configs, through the real binary.

use std::path::Path;
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const GOOD: &str = r#"
[routing]
default_team = "platform"

[[routing.services]]
match = "checkout*"
team = "payments"

[[routing.code]]
path = "src/billing/**"
team = "billing"

[[teams]]
name = "payments"
receivers = ["payments-hook"]

[[teams]]
name = "billing"
receivers = ["payments-hook"]

[[teams]]
name = "platform"
receivers = ["payments-hook"]

[[receivers]]
name = "payments-hook"
type = "webhook"
url = "http://127.0.0.1:9/bellwether"
secret_env = "BW_TEST_PAYMENTS_HOOK_SECRET"
"#;

fn check(dir: &Path, text: &str, secret: Option<&str>) -> Result<Output, std::io::Error> {
    let path = dir.join("bellwether.toml");
    std::fs::write(&path, text)?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_bellwether"));
    command
        .arg("serve")
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .env_remove("BELLWETHER_CONFIG")
        .env_remove("BW_TEST_PAYMENTS_HOOK_SECRET");
    if let Some(secret) = secret {
        command.env("BW_TEST_PAYMENTS_HOOK_SECRET", secret);
    }
    command.output()
}

fn fails_with(dir: &Path, text: &str, secret: Option<&str>, needles: &[&str]) -> TestResult {
    let out = check(dir, text, secret)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    // Never the secret value.
    assert!(!stderr.contains("hunter2"), "{stderr}");
    Ok(())
}

#[test]
fn good_config_passes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = check(dir.path(), GOOD, Some("hunter2"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("config ok: 3 teams, 1 receivers"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"));
    Ok(())
}

#[test]
fn unknown_key_is_named_with_its_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let text = GOOD.replace("secret_env =", "sekret_env =");
    fails_with(
        dir.path(),
        &text,
        Some("hunter2"),
        &["sekret_env", "line 29"],
    )
}

#[test]
fn bad_glob_is_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let text = GOOD.replace("src/billing/**", "src/[billing");
    fails_with(
        dir.path(),
        &text,
        Some("hunter2"),
        &[
            "routing.code[0].path",
            "bad glob",
            "unclosed character class",
        ],
    )
}

#[test]
fn team_without_receivers_is_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let text = GOOD.replace(
        "name = \"billing\"\nreceivers = [\"payments-hook\"]",
        "name = \"billing\"\nreceivers = []",
    );
    fails_with(
        dir.path(),
        &text,
        Some("hunter2"),
        &["teams[1].receivers", "team \"billing\" has no receivers"],
    )
}

#[test]
fn missing_secret_variable_is_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    fails_with(
        dir.path(),
        GOOD,
        None,
        &[
            "receivers[0].secret_env",
            "environment variable BW_TEST_PAYMENTS_HOOK_SECRET is not set",
        ],
    )
}

#[test]
fn owners_explains_who_is_paged_and_why() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bellwether.toml");
    std::fs::write(&path, GOOD)?;
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args([
            "owners",
            "--service",
            "checkout-api",
            "--path",
            "src/billing/tax.rs",
        ])
        .arg("--config")
        .arg(&path)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "team payments (by service rule `checkout*` at routing.services[0] (line 5))"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "new errors in src/billing/tax.rs: team billing (by code rule `src/billing/**`"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("receiver payments-hook (webhook)"),
        "{stdout}"
    );
    Ok(())
}

//! The `bellwether` binary with authentication: refusing to serve exposed without tokens,
//! tokens from the config file, and `--token` / `BELLWETHER_TOKEN` on the CLI.

use std::process::Stdio;
use std::time::Duration;

use bellwether_testkit::process::Supervised;
use tokio::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const BIN: &str = env!("CARGO_BIN_EXE_bellwether");
const DEADLINE: Duration = Duration::from_secs(30);
const DEPLOY_TOKEN: &str = "deploy-token-0123456789";

#[tokio::test]
async fn exposed_without_tokens_is_refused_unless_insecure() -> TestResult {
    let dir = tempfile::tempdir()?;
    let output = tokio::time::timeout(
        DEADLINE,
        Command::new(BIN)
            .args(["serve", "--http-addr", "0.0.0.0:0", "--otlp-grpc-addr"])
            .args([
                "127.0.0.1:0",
                "--otlp-http-addr",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .env_remove("BELLWETHER_CONFIG")
            .stdin(Stdio::null())
            .output(),
    )
    .await??;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("0.0.0.0:0") && stderr.contains("--insecure"),
        "{stderr}"
    );
    // Nothing was served, nothing was written.
    assert!(!dir.path().join("data").exists());
    Ok(())
}

#[tokio::test]
async fn cli_sends_its_token() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bellwether.toml");
    std::fs::write(
        &config,
        "[[auth.tokens]]\nname = \"ci\"\nscopes = [\"deploy\"]\ntoken_env = \"CI_TOKEN\"\n",
    )?;
    let mut command = std::process::Command::new(BIN);
    command
        .args([
            "serve",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
        ])
        .args(["127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("CI_TOKEN", DEPLOY_TOKEN)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut server = Supervised::spawn(command)?;
    let http = server.wait_for_listeners(&["http"])?["http"];
    let url = format!("http://{http}");
    let deploy = |token: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(["deploy", "--service", "pay", "--environment", "prod"])
            .args(["--version", "v1", "--url", &url])
            .env_remove("BELLWETHER_TOKEN")
            .stdin(Stdio::null());
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        command.output()
    };
    let refused = tokio::time::timeout(DEADLINE, deploy(None)).await??;
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("missing bearer token"), "{message}");
    let accepted = tokio::time::timeout(DEADLINE, deploy(Some(DEPLOY_TOKEN))).await??;
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    // The environment variable works too.
    let listed = tokio::time::timeout(
        DEADLINE,
        Command::new(BIN)
            .args(["releases", "--json", "--url", &url])
            .env("BELLWETHER_TOKEN", DEPLOY_TOKEN)
            .stdin(Stdio::null())
            .output(),
    )
    .await??;
    assert_eq!(listed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"pay\""));

    server.terminate()?;
    let log = server.stderr_text();
    assert!(!log.contains(DEPLOY_TOKEN), "the token was logged");
    Ok(())
}

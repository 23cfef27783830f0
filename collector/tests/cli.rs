//! The `bellwether` binary: serve, deploy and releases as a pipeline would run them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bellwether_testkit::process::Supervised;
use tokio::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const BIN: &str = env!("CARGO_BIN_EXE_bellwether");
const DEADLINE: Duration = Duration::from_secs(30);

/// Starts `bellwether serve` on ephemeral ports; returns the child and kind → address.
fn serve(
    data_dir: &std::path::Path,
) -> Result<(Supervised, HashMap<String, SocketAddr>), Box<dyn std::error::Error + Send + Sync>> {
    let mut command = std::process::Command::new(BIN);
    command
        .args([
            "serve",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .env_remove("BELLWETHER_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut child = Supervised::spawn(command)?;
    let addrs = child.wait_for_listeners(&["otlp-grpc", "otlp-http", "http"])?;
    Ok((child, addrs))
}

async fn cli(
    args: &[&str],
) -> Result<(i32, String, String), Box<dyn std::error::Error + Send + Sync>> {
    let output = tokio::time::timeout(
        DEADLINE,
        Command::new(BIN)
            .args(args)
            .env_remove("BELLWETHER_URL")
            .output(),
    )
    .await??;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn deploy_and_releases_against_a_served_collector() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut child, addrs) = serve(dir.path())?;
    let url = format!("http://{}", addrs["http"]);

    let (code, stdout, stderr) = cli(&[
        "deploy",
        "--service",
        "checkout",
        "--environment",
        "production",
        "--version",
        "1.4.2",
        "--commit",
        "abc123",
        "--deploy-id",
        "d-1",
        "--notes",
        "canary",
        "--team",
        "payments",
        "--url",
        &url,
    ])
    .await?;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("checkout") && stdout.contains("1.4.2") && stdout.contains("abc123"),
        "{stdout}"
    );

    let (code, stdout, stderr) = cli(&["releases", "--service", "checkout", "--url", &url]).await?;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("1.4.2") && stdout.contains("recorded"),
        "{stdout}"
    );

    let (code, stdout, _) = cli(&["releases", "--json", "--url", &url]).await?;
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(json["releases"][0]["deploy_id"], "d-1");

    // The API rejects an empty service: exit 1 with its message.
    let (code, _, stderr) = cli(&[
        "deploy",
        "--service",
        "",
        "--environment",
        "p",
        "--version",
        "1",
        "--url",
        &url,
    ])
    .await?;
    assert_eq!(code, 1);
    assert!(stderr.contains("service must not be empty"), "{stderr}");

    // Usage error: exit 2.
    let (code, _, _) = cli(&["deploy", "--service", "x", "--url", &url]).await?;
    assert_eq!(code, 2);

    // SIGTERM stops the server cleanly.
    let pid = child.id();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let exit = child.wait_exit(DEADLINE)?;
    assert!(exit.success(), "{exit:?}");

    // Data survives into a new process.
    let (child, addrs) = serve(dir.path())?;
    let (code, stdout, _) =
        cli(&["releases", "--url", &format!("http://{}", addrs["http"])]).await?;
    assert_eq!(code, 0);
    assert!(stdout.contains("1.4.2"), "{stdout}");
    drop(child);
    Ok(())
}

#[tokio::test]
async fn unreachable_collector_exits_2() -> TestResult {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, stderr) = cli(&[
        "deploy",
        "--service",
        "a",
        "--environment",
        "b",
        "--version",
        "c",
        "--url",
        &url,
    ])
    .await?;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
    let (code, _, _) = cli(&["releases", "--url", "ftp://x"]).await?;
    assert_eq!(code, 2);
    Ok(())
}

#[tokio::test]
async fn bad_configuration_names_the_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bellwether.toml");
    std::fs::write(&config, "http_adr = \"127.0.0.1:0\"\n")?;
    let config = config.to_string_lossy().into_owned();
    let (code, _, stderr) = cli(&["serve", "--config", &config]).await?;
    assert_eq!(code, 2);
    assert!(stderr.contains("http_adr"), "{stderr}");
    let (code, _, stderr) = cli(&["serve", "--http-addr", "nowhere"]).await?;
    assert_eq!(code, 2);
    assert!(stderr.contains("http_addr"), "{stderr}");
    Ok(())
}
